"""Mode coverage of the GAN family on grid25 / ring8, over seeds: a Markdown table.

Trains every model entry on every dataset for every seed (the deepgen Python API, one run
directory each under ``--out``) and prints, per (data, model): modes covered and % high-quality
samples (the protocol of :mod:`deepgen.evaluation.modes`: 2500 samples, within 3 std of the
nearest center, a mode covered with >= 10 % of its fair share), mean ± std over the seeds, then
each seed.  Each model trains for its own default number of steps (the training config's
default, 2000, unless the model's ``train_defaults`` say otherwise) unless ``--steps`` is given.
Runs whose ``scores.json`` already exists are reused (``--fresh`` retrains them), so an
interrupted table can be finished by running the same command again.

    OMP_NUM_THREADS=1 python scripts/mode_coverage_table.py --out runs/modes
    OMP_NUM_THREADS=1 python scripts/mode_coverage_table.py --data ring8 --models gan,mad-gan --seeds 0 --steps 500
    OMP_NUM_THREADS=1 python scripts/mode_coverage_table.py --data grid25 --models infogan:categories=25:continuous=0 \
        --steps 10000 --batch-size 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

from deepgen.training.config import TrainConfig
from deepgen.workflows.compare import parse_model_entry, run_dir_name
from deepgen.workflows.train import train

MODELS = "gan,gan:label_smoothing=0.1,wgan,wgan-gp,mad-gan"


def run_one(data: str, entry: str, seed: int, steps: int | None, out: Path, fresh: bool,
            batch_size: int | None = None) -> dict:
    """Train (or reuse) one run; returns its ``modes`` scores with ``steps``, ``batch_size``, ``wall_s``."""
    name, params, label = parse_model_entry(entry)
    run_dir = out / f"{data}-s{seed}" / run_dir_name(label)
    fields = {"model": name, "data": data, "seed": seed, "model_params": params}
    if steps is not None:
        fields["steps"] = steps
    if batch_size is not None:
        fields["batch_size"] = batch_size
    cfg = TrainConfig.from_dict(fields, source=f"mode table ({label})")
    scores_file = run_dir / "scores.json"
    if scores_file.exists() and not fresh:
        scores = json.loads(scores_file.read_text())
        trained = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("train", {})
        if scores.get("steps") == cfg.steps and trained.get("batch_size") == cfg.batch_size:
            wall = scores.get("steps", 0) / scores["train_steps_per_s"] if scores.get("train_steps_per_s") else None
            return {**scores["modes"], "steps": cfg.steps, "batch_size": cfg.batch_size, "wall_s": wall,
                    "reused": True}
    t0 = time.perf_counter()
    scores = train(cfg, run_dir, overwrite=True)
    return {**scores["modes"], "steps": cfg.steps, "batch_size": cfg.batch_size, "wall_s": time.perf_counter() - t0}


def mean_std(values: list[float]) -> str:
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def table(results: dict[tuple[str, str], list[dict]]) -> str:
    lines = ["| data | model | steps | modes covered | high quality % | per seed: modes (hq %) | train s per run |",
             "|---|---|---|---|---|---|---|"]
    for (data, label), runs in results.items():
        modes = [r["modes_covered"] for r in runs]
        hq = [r["high_quality_pct"] for r in runs]
        per_seed = " / ".join(f"{r['modes_covered']} ({r['high_quality_pct']:.1f})" for r in runs)
        walls = [r["wall_s"] for r in runs if r.get("wall_s")]
        wall = f"{statistics.fmean(walls):.0f}" if walls else "—"
        lines.append(f"| {data} | {label} | {runs[0]['steps']} | {mean_std(modes)} / {runs[0]['n_modes']} | "
                     f"{mean_std(hq)} | {per_seed} | {wall} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="grid25,ring8", help="comma-separated datasets with known modes")
    p.add_argument("--models", default=MODELS, help="comma-separated entries NAME[:key=value...] (as for compare)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=None, help="training steps of every run (default: each model's own)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size of every run (default: the training default)")
    p.add_argument("--out", default="runs/mode-table", help="folder of the run directories")
    p.add_argument("--fresh", action="store_true", help="retrain runs that already have scores")
    args = p.parse_args(argv)
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[tuple[str, str], list[dict]] = {}
    t0 = time.perf_counter()
    for data in args.data.split(","):
        for entry in args.models.split(","):
            for seed in seeds:
                r = run_one(data, entry, seed, args.steps, out, args.fresh, args.batch_size)
                results.setdefault((data, entry), []).append(r)
                print(f"# {data} {entry} seed {seed}: {r['modes_covered']}/{r['n_modes']} modes, "
                      f"{r['high_quality_pct']:.1f} % high quality, {r['steps']} steps, "
                      f"{(r['wall_s'] or 0):.0f} s", file=sys.stderr, flush=True)
    print(table(results))
    reused = sum(r.get("reused", False) for runs in results.values() for r in runs)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s ({reused} of {sum(map(len, results.values()))} runs reused "
          f"from {out}); protocol: deepgen.evaluation.modes (2500 samples, "
          "3 std, >= 10 % of a mode's fair share)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
