"""The OOD table of issue 12: every OOD score x every built-in OOD set, per model on digits, over seeds.

For each model and seed it trains a run on ``digits`` (the deepgen Python API; one run directory each,
``RUNS/MODEL-sSEED``), trains its likelihood-ratio background (:func:`train_background`, its defaults:
15 % of the run's steps, at least 100, weight decay 1e-4, mu 0.2), and runs :func:`ood_command` with
every score that applies to the model against every built-in set (``noise``, ``constant``, ``inverted``,
``hflip``, ``vflip``, ``blur``, ``shift``; the sets are drawn with the run's seed).  One model (default
realnvp) is also trained with classes 5..9 excluded (``RUNS/MODEL-heldout-sSEED``), which adds the set
``heldout-classes``; its in-distribution is then the test digits 0..4.  The ``ensemble`` score (WAIC over
the seeds' runs of one model) is run once per model, with the first seed's run as the fitted one and the
sets of seed 0.

Then it prints, as Markdown: per model, AUROC mean ± sd over seeds for every (score, set), with the
per-(score, seed) mean over the sets (mean ± sd over seeds); FPR at 95 % TPR of each model's best score
(the highest mean AUROC over the sets); a summary with test bits/dim, wall times and the goals of the
issue (best score >= 0.99 mean AUROC over the suite, >= 0.8 on hflip and vflip); and one JSON line with
every figure.

Each finished run keeps its figures in ``RUN/ood/table-lines.json``; a later invocation reuses them (and
a trained run whose ``scores.json`` has the asked steps, and a trained background), so an interrupted
table is finished by running the same command again, and two invocations on different ``--models`` /
``--seeds`` can share one ``--runs-dir`` (a last one with ``--no-train`` then aggregates everything).

    OMP_NUM_THREADS=1 python scripts/ood_table.py --runs-dir runs/ood-table
    OMP_NUM_THREADS=1 python scripts/ood_table.py --models realnvp,vae --seeds 0 --heldout ''
    OMP_NUM_THREADS=1 python scripts/ood_table.py --quick          # smoke run: 30 steps, seed 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from deepgen.io import read_yaml, strict_json, write_json
from deepgen.models.pretrained import CONFIG_FILE
from deepgen.ood.suite import background_run, ood_command
from deepgen.training.config import TrainConfig
from deepgen.workflows.ood_background import train_background
from deepgen.workflows.train import train

# Training settings per model: README "Models" (digits).  realnvp: the default model at 2000 steps, as the
# first OOD table (2.03 bits/dim); glow: 1000 steps (92.8 nats); gated-pixelcnn: its train_defaults (1000
# steps, lr 3e-3, batch 64; the best autoregressive model on digits, 78.7 nats); vae: 2000 steps (its
# default 3000 is where the validation IWAE bottoms out; 2000 for the budget).
MODELS = {
    "realnvp": {"steps": 2000},
    "glow": {"steps": 1000},
    "gated-pixelcnn": {"steps": 1000},
    "vae": {"steps": 2000},
}
HELDOUT_CLASSES = [5, 6, 7, 8, 9]
QUICK_STEPS, QUICK_BACKGROUND_STEPS = 30, 20
FLIPS = ("hflip", "vflip")
GOAL_MEAN, GOAL_FLIP = 0.99, 0.8
LINES_FILE = Path("ood") / "table-lines.json"


def run_config(model: str, seed: int, steps: int, heldout: bool) -> TrainConfig:
    fields = {"model": model, "data": "digits", "seed": seed, **MODELS.get(model, {}), "steps": steps}
    if heldout:
        fields["exclude_classes"] = HELDOUT_CLASSES
    return TrainConfig.from_dict(fields, source=f"ood table ({model}, seed {seed})")


def trained(run_dir: Path, cfg: TrainConfig) -> dict | None:
    """The scores of a finished run trained with ``cfg``'s steps and excluded classes, else None."""
    scores_file = run_dir / "scores.json"
    if not scores_file.is_file() or not (run_dir / CONFIG_FILE).is_file():
        return None
    scores = json.loads(scores_file.read_text())
    saved = read_yaml(run_dir / CONFIG_FILE).get("train") or {}
    same = (scores.get("steps") == cfg.steps and saved.get("model") == cfg.model and saved.get("seed") == cfg.seed
            and list(saved.get("exclude_classes") or []) == list(cfg.exclude_classes))
    return scores if same else None


def run_one(model: str, seed: int, steps: int, heldout: bool, runs_dir: Path, background_steps: int | None,
            no_train: bool, fresh: bool) -> dict | None:
    """Train (or reuse) one run and its background, run the suite; returns its record (None: skipped)."""
    run_dir = runs_dir / (f"{model}-heldout-s{seed}" if heldout else f"{model}-s{seed}")
    cached = run_dir / LINES_FILE
    if cached.is_file() and not fresh:
        record = json.loads(cached.read_text())
        if record.get("steps") == steps:
            return record
    cfg = run_config(model, seed, steps, heldout)
    scores = None if fresh else trained(run_dir, cfg)
    walls = {}
    if scores is None:
        if no_train:
            print(f"ood_table: {run_dir} not trained; skipped (--no-train)", file=sys.stderr)
            return None
        print(f"ood_table: training {run_dir} ({steps} steps)", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        scores = train(cfg, run_dir, overwrite=True)
        walls["train_s"] = time.perf_counter() - t0
    elif scores.get("train_steps_per_s"):
        walls["train_s"] = scores["steps"] / scores["train_steps_per_s"]  # training steps only, reused run
    if background_run(run_dir) is None or fresh:
        print(f"ood_table: training the background of {run_dir}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        train_background(run_dir, steps=background_steps, overwrite=True)
        walls["background_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lines = ood_command(run_dir, seed=seed, verbose=False)
    walls["ood_s"] = time.perf_counter() - t0
    bg = json.loads((run_dir / "ood" / "background" / "scores.json").read_text())
    record = {"model": model, "seed": seed, "steps": steps, "heldout": heldout, "run": str(run_dir),
              "bits_per_dim": scores.get("bits_per_dim"), "nll_nats": scores.get("nll_nats"),
              "background_steps": bg.get("steps"), "background_bits_per_dim": bg.get("bits_per_dim"),
              **walls, "lines": lines}
    write_json(cached, record)
    return record


def run_ensemble(label: str, records: list[dict], runs_dir: Path, fresh: bool) -> list[dict] | None:
    """The ``ensemble`` score over the runs of ``records`` (one model, >= 2 seeds), cached in its folder."""
    if len(records) < 2:
        return None
    out = runs_dir / f"{label}-ensemble"
    runs = [r["run"] for r in records]
    cached = out / "table-lines.json"
    if cached.is_file() and not fresh:
        saved = json.loads(cached.read_text())
        if saved.get("runs") == runs:
            return saved["lines"]
    t0 = time.perf_counter()
    lines = ood_command(runs[0], scores=["ensemble"], ensemble=runs[1:], seed=0, out=out, verbose=False)
    write_json(cached, {"runs": runs, "lines": lines, "ood_s": time.perf_counter() - t0})
    return lines


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    m, s = mean_sd(values)
    return f"{m:.3f}" if len(values) == 1 else f"{m:.3f} ± {s:.3f}"


def aggregate(records: list[dict], key: str = "auroc") -> dict:
    """{score: {set: [value per seed]}} of one model's records (seeds in order)."""
    out: dict = {}
    for r in records:
        for line in r["lines"]:
            out.setdefault(line["score"], {}).setdefault(line["ood"], []).append(line[key])
    return out


def set_means(records: list[dict], score: str, key: str = "auroc") -> list[float]:
    """Per seed, the mean over the sets of ``score``'s ``key``."""
    return [statistics.fmean(line[key] for line in r["lines"] if line["score"] == score) for r in records]


def model_table(label: str, records: list[dict], ensemble: list[dict] | None) -> tuple[str, str]:
    """The Markdown AUROC table of one model and its best score."""
    cells = aggregate(records)
    sets = list(dict.fromkeys(s for per_set in cells.values() for s in per_set))
    seeds = ", ".join(str(r["seed"]) for r in records)
    bpd = fmt([r["bits_per_dim"] for r in records])
    text = [f"**{label}** ({records[0]['steps']} steps; seeds {seeds}; test {bpd} bits/dim). AUROC, "
            f"mean ± sd over seeds:", "", "| score | " + " | ".join(sets) + " | mean over sets |",
            "|---" * (len(sets) + 2) + "|"]
    means = {s: set_means(records, s) for s in cells}
    best = max(means, key=lambda s: statistics.fmean(means[s]))
    for s, per_set in cells.items():
        row = [fmt(per_set[o]) if o in per_set else "—" for o in sets]
        name = f"**{s}**" if s == best else s
        text.append(f"| {name} | " + " | ".join(row) + f" | {fmt(means[s])} |")
    if ensemble:
        per = {line["ood"]: line["auroc"] for line in ensemble}
        row = [f"{per[o]:.3f}" if o in per else "—" for o in sets]
        text.append(f"| ensemble ({len(records)} seeds) | " + " | ".join(row)
                    + f" | {statistics.fmean(per.values()):.3f} |")
    return "\n".join(text), best


def fpr_table(best: dict[str, str], by_model: dict[str, list[dict]]) -> str:
    sets = list(dict.fromkeys(line["ood"] for recs in by_model.values() for r in recs for line in r["lines"]))
    text = ["FPR at 95 % TPR of each model's best score (share of in-distribution test digits flagged when 95 % "
            "of the OOD set is; lower is better), mean ± sd over seeds:", "",
            "| model | score | " + " | ".join(sets) + " | mean over sets |", "|---" * (len(sets) + 3) + "|"]
    for label, recs in by_model.items():
        cells = aggregate(recs, "fpr_at_95_tpr")[best[label]]
        row = [fmt(cells[o]) if o in cells else "—" for o in sets]
        text.append(f"| {label} | {best[label]} | " + " | ".join(row)
                    + f" | {fmt(set_means(recs, best[label], 'fpr_at_95_tpr'))} |")
    return "\n".join(text)


def summary_table(best: dict[str, str], by_model: dict[str, list[dict]]) -> tuple[str, dict]:
    text = ["| model | steps | seeds | test bits/dim | train s / run | background s / run | ood s / run | best score "
            "| mean AUROC over sets | hflip | vflip | goals (>= 0.99 mean, >= 0.8 flips) |",
            "|---" * 12 + "|"]
    goals = {}
    for label, recs in by_model.items():
        s = best[label]
        cells = aggregate(recs)[s]
        mean = statistics.fmean(set_means(recs, s))
        flips = {f: statistics.fmean(cells[f]) for f in FLIPS if f in cells}
        met = {"mean": mean >= GOAL_MEAN, "flips": all(v >= GOAL_FLIP for v in flips.values())}
        goals[label] = {"best_score": s, "mean_auroc": mean, **{f"{f}_auroc": v for f, v in flips.items()}, **met}

        def wall(key):
            v = [r[key] for r in recs if r.get(key) is not None]
            return f"{statistics.fmean(v):.0f}" if v else "—"
        verdict = ("met" if met["mean"] and met["flips"] else
                   "mean " + ("met" if met["mean"] else "not met") + ", flips " + ("met" if met["flips"] else "not met"))
        text.append(f"| {label} | {recs[0]['steps']} | {len(recs)} | {fmt([r['bits_per_dim'] for r in recs])} | "
                    f"{wall('train_s')} | {wall('background_s')} | {wall('ood_s')} | {s} | {fmt(set_means(recs, s))} | "
                    + " | ".join(fmt(cells[f]) if f in cells else "—" for f in FLIPS) + f" | {verdict} |")
    return "\n".join(text), goals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default: %(default)s)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    p.add_argument("--steps", action="append", default=[], metavar="MODEL=N",
                   help="training steps of a model (repeatable; defaults: " +
                   ", ".join(f"{m} {c['steps']}" for m, c in MODELS.items()) + ")")
    p.add_argument("--heldout", default="realnvp", help="model also trained without classes 5..9 for the set "
                   "heldout-classes ('' = none; default: %(default)s)")
    p.add_argument("--heldout-seeds", default=None, help="seeds of the held-out-classes runs (default: --seeds)")
    p.add_argument("--runs-dir", default="runs/ood-table", help="folder of the run directories (default: %(default)s)")
    p.add_argument("--no-train", action="store_true", help="train nothing: aggregate the runs already trained")
    p.add_argument("--no-ensemble", action="store_true", help="skip the ensemble score")
    p.add_argument("--fresh", action="store_true", help="retrain and rescore runs that already have figures")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_STEPS} steps, backgrounds "
                   f"{QUICK_BACKGROUND_STEPS} steps, seed 0, runs under RUNS/quick")
    p.add_argument("--json-out", default=None, help="also write the JSON line to this file")
    args = p.parse_args(argv)

    models = [m for m in args.models.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    heldout_seeds = [int(s) for s in args.heldout_seeds.split(",") if s] if args.heldout_seeds is not None else seeds
    steps = {m: c["steps"] for m, c in MODELS.items()}
    for item in args.steps:
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            p.error(f"--steps {item}: expected MODEL=N with N >= 1")
        steps[name] = int(n)
    for model in models + ([args.heldout] if args.heldout else []):
        if model not in steps:
            p.error(f"--models: no steps for '{model}'; give --steps {model}=N")
    runs_dir, background_steps = Path(args.runs_dir), None
    if args.quick:
        seeds, heldout_seeds, background_steps = seeds[:1], seeds[:1], QUICK_BACKGROUND_STEPS
        steps = {m: QUICK_STEPS for m in set(steps) | set(models)}
        runs_dir = runs_dir / "quick"

    jobs = [(m, s, False) for s in seeds for m in models]  # seed-major: one seed of every model comes first
    if args.heldout:
        jobs += [(args.heldout, s, True) for s in heldout_seeds]
    by_model: dict[str, list[dict]] = {}
    t_all = time.perf_counter()
    for model, seed, heldout in jobs:
        record = run_one(model, seed, steps[model], heldout, runs_dir, background_steps, args.no_train, args.fresh)
        if record is not None:
            label = f"{model} (classes 0-4)" if heldout else model
            by_model.setdefault(label, []).append(record)
    if not by_model:
        print("ood_table: no run to report", file=sys.stderr)
        return 1
    ensembles = {} if args.no_ensemble else {
        label: run_ensemble(label.split(" ")[0] + ("-heldout" if "classes" in label else ""), recs, runs_dir,
                            args.fresh) for label, recs in by_model.items()}

    best, blocks = {}, []
    for label, recs in by_model.items():
        text, best[label] = model_table(label, recs, ensembles.get(label))
        blocks.append(text)
    summary, goals = summary_table(best, by_model)
    print("\n\n".join(blocks + [fpr_table(best, by_model), summary]))
    result = {
        "models": {label: {"steps": recs[0]["steps"], "seeds": [r["seed"] for r in recs],
                           "bits_per_dim": [r["bits_per_dim"] for r in recs],
                           "walls": [{k: r.get(k) for k in ("train_s", "background_s", "ood_s")} for r in recs],
                           "auroc": aggregate(recs), "fpr_at_95_tpr": aggregate(recs, "fpr_at_95_tpr"),
                           "mean_over_sets": {s: set_means(recs, s) for s in aggregate(recs)},
                           "ensemble": {line["ood"]: line["auroc"] for line in (ensembles.get(label) or [])},
                           "goals": goals[label]}
                   for label, recs in by_model.items()},
        "wall_s": time.perf_counter() - t_all}
    line = strict_json(result)
    print(line)
    if args.json_out:
        write_json(Path(args.json_out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
