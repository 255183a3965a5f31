"""What users run, against the fastest peer: ``deepgen train`` vs zuko's flows in a plain PyTorch loop.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/train_path.py            # 3 rounds, realnvp/maf/nsf
    PYTHONPATH=src .venv/bin/python benchmarks/train_path.py --quick    # 1 round, 300 steps

The setting of issue 13: deepgen's moons split, batch 256, Adam lr 1e-3, 2000 steps, on CPU.  Per model:

* ``zuko``: zuko's flow of the same size (RealNVP: ``zuko.flows.RealNVP(2, transforms=8,
  hidden_features=(64, 64))``, deepgen's default 8 couplings of 64x2; MAF: 5 transforms of 128x2;
  NSF: 5 transforms of 64x2 with 8 bins), trained by a plain loop (a random batch of rows each
  step, ``loss = -flow().log_prob(x).mean()``, zero_grad, backward, step; zuko's defaults
  otherwise, constant lr), once with torch's default threads (``zuko``: 2 on a 2-core machine) and
  once with one thread (``zuko-1t``); the ratio is against the faster of the two.  Its test NLL is
  its mean -log p on deepgen's test split.
* ``deepgen train``: :func:`deepgen.workflows.train.train` with the same model, data, batch,
  lr and steps and every default (warm-up + cosine schedule, gradient clipping, validation every
  500 steps with checkpoints and the sample picture, metrics rows, and its automatic thread count:
  one thread for vector data): what ``deepgen train --model M --data moons --steps 2000
  --batch-size 256`` runs, its automatic ``--steps-per-call`` (25 here) included).  ``one step per call``
  is the same with ``steps_per_call=1`` (Lightning's own loop around every step, as before that option;
  ``--no-one-step`` skips it).  steps/s is its
  ``train_steps_per_s`` (the time inside Lightning's fit, validations included); "call s" is
  the whole call (data, model, fit, final test scoring and pictures).

The rows of one model alternate (zuko, deepgen, zuko, deepgen, ...) for ``--rounds`` rounds,
so drifting background load hits both alike; the table shows medians and the ratio of medians.
No ``OMP_WAIT_POLICY`` is set: PASSIVE (sleeping) OpenMP threads make every op of these small models
wait for a wake-up (a 2-thread RealNVP step ran 4.5x slower with it on an idle machine).

Then the start-up figures of the command line, each a fresh subprocess: ``deepgen --help``,
``deepgen list``, three input errors (an unknown model, a missing file, a CSV with a text cell),
and ``deepgen train`` end to end with its ``time_to_first_step_s`` from scores.json.
Prints tables, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepgen.data import load_data
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train

ROOT = Path(__file__).resolve().parent.parent
DEEPGEN = [sys.executable, "-m", "deepgen"]

# deepgen's default size of each model, and zuko's flow of that size.
PEERS = {
    "realnvp": lambda zuko: zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64)),
    "maf": lambda zuko: zuko.flows.MAF(2, transforms=5, hidden_features=(128, 128)),
    "nsf": lambda zuko: zuko.flows.NSF(2, bins=8, transforms=5, hidden_features=(64, 64)),
}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def zuko_row(model: str, steps: int, batch: int, seed: int, threads: int) -> dict:
    import zuko

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _zuko_row(zuko, model, steps, batch, seed)
    finally:
        torch.set_num_threads(previous)


def _zuko_row(zuko, model: str, steps: int, batch: int, seed: int) -> dict:
    splits = load_data("moons")
    x, test = splits.train, splits.test
    torch.manual_seed(seed)
    flow = PEERS[model](zuko)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        rows = x[torch.randint(0, len(x), (batch,), generator=g)]
        loss = -flow().log_prob(rows).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        nll = -flow().log_prob(test).mean().item()
    return {"steps_per_s": steps / seconds, "nll_nats": nll, "seconds": seconds, "load": load_average()}


def deepgen_row(model: str, steps: int, batch: int, seed: int, out: Path, compile: bool = False,
                steps_per_call: int = 0) -> dict:
    cfg = TrainConfig(model=model, data="moons", steps=steps, batch_size=batch, lr=1e-3, seed=seed, progress=False,
                      compile=compile, steps_per_call=steps_per_call)
    t0 = time.perf_counter()
    scores = train(cfg, out, overwrite=True)
    call = time.perf_counter() - t0
    return {"steps_per_s": scores["train_steps_per_s"], "nll_nats": scores["nll_nats"], "call_s": call,
            "machinery_share": scores.get("machinery_share"), "threads": scores.get("threads"),
            "first_step_s": scores.get("first_step_s"), "steady_steps_per_s": scores.get("steady_steps_per_s"),
            "compiled": scores.get("compiled"), "load": load_average()}


def timed(cmd: list[str], env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0, done.returncode, (done.stderr.strip().splitlines() or [""])[-1]


def startup_rows(steps: int, batch: int, tmp: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    bad = tmp / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    cases = [
        ("deepgen --help", [*DEEPGEN, "--help"]),
        ("deepgen list", [*DEEPGEN, "list"]),
        ("error: unknown model", [*DEEPGEN, "train", "--model", "realnvpp", "--data", "moons", "--out", str(tmp / "e1")]),
        ("error: missing file", [*DEEPGEN, "train", "--model", "realnvp", "--data", str(tmp / "nope.npy"),
                                 "--out", str(tmp / "e2")]),
        ("error: text in a CSV", [*DEEPGEN, "train", "--model", "realnvp", "--data", str(bad), "--out", str(tmp / "e3")]),
    ]
    rows = []
    for name, cmd in cases:
        seconds, rc, last = timed(cmd, env)
        rows.append({"what": name, "seconds": seconds, "exit": rc, "says": last[:100], "load": load_average()})
    run = tmp / "cli-run"
    seconds, rc, last = timed([*DEEPGEN, "train", "--model", "realnvp", "--data", "moons", "--steps", str(steps),
                               "--batch-size", str(batch), "--out", str(run), "--no-progress"], env)
    scores = json.loads((run / "scores.json").read_text()) if rc == 0 else {}
    rows.append({"what": f"deepgen train realnvp moons {steps} steps (whole command)", "seconds": seconds, "exit": rc,
                 "says": f"first step after {scores.get('time_to_first_step_s')} s, "
                         f"{scores.get('train_steps_per_s', float('nan')):.0f} steps/s, "
                         f"machinery {100 * (scores.get('machinery_share') or 0):.1f} %",
                 "time_to_first_step_s": scores.get("time_to_first_step_s"), "load": load_average()})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="realnvp,maf,nsf")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="zuko's default-threads row (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1 round of 300 steps")
    ap.add_argument("--no-startup", action="store_true", help="skip the command-line start-up figures")
    ap.add_argument("--no-compile", action="store_true", help="skip the `deepgen train --compile` rows")
    ap.add_argument("--no-one-step", action="store_true", help="skip the `deepgen train --steps-per-call 1` rows")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 300
    default_threads = args.threads or torch.get_num_threads()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = {"settings": {**vars(args), "zuko_threads": default_threads,
                           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                           "torch": torch.__version__}, "models": {}, "startup": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # a fresh TorchInductor cache: round 1 of --compile pays the whole compilation, later rounds hit the cache
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor-cache")
        for model in models:
            rows = {"zuko": [], "zuko-1t": [], "deepgen": [], "deepgen-1": [], "compiled": []}
            for r in range(args.rounds):
                rows["zuko"].append(zuko_row(model, args.steps, args.batch_size, args.seed + r, default_threads))
                rows["zuko-1t"].append(zuko_row(model, args.steps, args.batch_size, args.seed + r, 1))
                rows["deepgen"].append(deepgen_row(model, args.steps, args.batch_size, args.seed + r,
                                                   tmp / f"{model}-{r}"))
                if not args.no_one_step:
                    rows["deepgen-1"].append(deepgen_row(model, args.steps, args.batch_size, args.seed + r,
                                                         tmp / f"{model}-1-{r}", steps_per_call=1))
                if not args.no_compile:
                    rows["compiled"].append(deepgen_row(model, args.steps, args.batch_size, args.seed + r,
                                                        tmp / f"{model}-c{r}", compile=True))
                print(f"{model} round {r + 1}: zuko {rows['zuko'][-1]['steps_per_s']:.1f} / 1 thread "
                      f"{rows['zuko-1t'][-1]['steps_per_s']:.1f} steps/s, deepgen train "
                      f"{rows['deepgen'][-1]['steps_per_s']:.1f} steps/s"
                      + (f" (one step per call {rows['deepgen-1'][-1]['steps_per_s']:.1f})" if rows["deepgen-1"] else "")
                      + (f", --compile {rows['compiled'][-1]['steady_steps_per_s']:.1f} steady steps/s after a "
                         f"{rows['compiled'][-1]['first_step_s']:.1f} s first step" if rows["compiled"] else "")
                      + f" (load {load_average()})", file=sys.stderr)
            med = {k: {f: statistics.median(row[f] for row in v) for f in ("steps_per_s", "nll_nats")}
                   for k, v in rows.items() if v}
            best = max(("zuko", "zuko-1t"), key=lambda k: med[k]["steps_per_s"])
            result["models"][model] = {"rows": rows, "median": med, "fastest_peer": best,
                                       "speed_ratio": med["deepgen"]["steps_per_s"] / med[best]["steps_per_s"],
                                       "nll_difference": med["deepgen"]["nll_nats"] - med[best]["nll_nats"]}
            if rows["deepgen-1"]:
                result["models"][model]["one_step_ratio"] = med["deepgen-1"]["steps_per_s"] / med[best]["steps_per_s"]
            if rows["compiled"]:
                c = rows["compiled"]
                med["compiled"]["steady_steps_per_s"] = statistics.median(r["steady_steps_per_s"] for r in c)
                result["models"][model]["compiled_steady_ratio"] = (med["compiled"]["steady_steps_per_s"]
                                                                    / med[best]["steps_per_s"])
        if not args.no_startup:
            result["startup"] = startup_rows(args.steps, args.batch_size, tmp)

    print(f"\n`deepgen train` vs zuko's plain loop: moons, batch {args.batch_size}, {args.steps} steps, "
          f"{args.rounds} alternating rounds (medians); zuko at {default_threads} threads and at 1\n")
    print("| model | zuko steps/s | zuko 1-thread steps/s | deepgen train steps/s (threads) | ratio to the faster zuko |"
          " one step per call: steps/s, ratio | zuko test NLL | deepgen test NLL | deepgen call s | machinery |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, m in result["models"].items():
        d, med = m["rows"]["deepgen"], m["median"]
        print(f"| {model} | {med['zuko']['steps_per_s']:.1f} | {med['zuko-1t']['steps_per_s']:.1f} | "
              f"{med['deepgen']['steps_per_s']:.1f} ({d[0].get('threads')}) | **{m['speed_ratio']:.2f}x** | "
              + (f"{med['deepgen-1']['steps_per_s']:.1f}, {m['one_step_ratio']:.2f}x | " if "deepgen-1" in med else "- | ")
              + f"{med[m['fastest_peer']]['nll_nats']:.4f} | {med['deepgen']['nll_nats']:.4f} | "
              f"{statistics.median(r['call_s'] for r in d):.1f} | "
              f"{100 * statistics.median(r['machinery_share'] or 0 for r in d):.1f} % |")
    if not args.no_compile:
        print("\n`deepgen train --compile` (torch.compile of the training loss) on the same rounds: steady steps/s "
              "leaves out the first step, which compiles (round 1 with an empty TorchInductor cache, later rounds "
              "from the cache); the whole fit and the whole call count it\n")
        print("| model | steady steps/s | ratio to the faster zuko | whole-fit steps/s | first step s, each round | "
              "call s, each round | test NLL |")
        print("|---|---|---|---|---|---|---|")
        for model, m in result["models"].items():
            c, med = m["rows"]["compiled"], m["median"]
            firsts = " / ".join(format(r["first_step_s"], ".1f") for r in c)
            calls = " / ".join(format(r["call_s"], ".1f") for r in c)
            print(f"| {model} | {med['compiled']['steady_steps_per_s']:.1f} | **{m['compiled_steady_ratio']:.2f}x** | "
                  f"{med['compiled']['steps_per_s']:.1f} | {firsts} | {calls} | {med['compiled']['nll_nats']:.4f} |")
    if result["startup"]:
        print("\n| command (fresh process) | seconds | exit | last line |")
        print("|---|---|---|---|")
        for row in result["startup"]:
            print(f"| {row['what']} | {row['seconds']:.2f} | {row['exit']} | {row['says']} |")
    print(f"\nload average at the end: {load_average()}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
