"""The time the reliability checks cost a normal training run (issue goal: < 3 %).

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/reliability_overhead.py            # realnvp + gan on digits
    PYTHONPATH=src .venv/bin/python benchmarks/reliability_overhead.py --quick    # smoke run

What is timed: ``deepgen.workflows.train.train`` (the code behind ``deepgen train``) with everything on
(the default: every update's loss and gradients checked for NaN/inf, the step-indexed batch order, the
commit journal and the finiteness check of every checkpoint), against the same run with the per-update
check replaced by a no-op (``NonFiniteGuard.check_update`` returning False: nothing checked, nothing
skipped).  The two variants alternate, ``--rounds`` times each, in one process, so a busy machine slows
both alike; the figure is the ratio of the medians of ``train_steps_per_s`` (the training loop only,
from scores.json).  As that ratio is noisy on a busy machine, the script also times every call of the
check itself inside the checked runs and reports its share of the training loop's time ("in checks"), a
figure the machine's load scales alike in numerator and denominator.  A third variant adds ``--checkpoint-every 50`` to show what extra checkpoints cost.
The last line of stdout is one JSON object with every timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepgen.training.config import TrainConfig
from deepgen.training.nonfinite import NonFiniteGuard
from deepgen.workflows.train import train


IN_CHECKS = {"seconds": 0.0}


def _timed_check(original):
    def check_update(self, module, optimizer, loss, terms):
        t0 = time.perf_counter()
        try:
            return original(self, module, optimizer, loss, terms)
        finally:
            IN_CHECKS["seconds"] += time.perf_counter() - t0
    return check_update


def one_run(model: str, data: str, steps: int, variant: str, out: Path) -> tuple[float, float]:
    """(training steps/s, share of the training loop spent inside the per-update checks)."""
    cfg = TrainConfig.from_dict({"model": model, "data": data, "steps": steps, "eval_every": steps,
                                 "checkpoint_every": 50 if variant == "checkpoint-every-50" else 0})
    original = NonFiniteGuard.check_update
    NonFiniteGuard.check_update = (_timed_check(original) if variant != "unchecked"
                                   else lambda self, module, optimizer, loss, terms: False)
    IN_CHECKS["seconds"] = 0.0
    try:
        scores = train(cfg, out, overwrite=True)
    finally:
        NonFiniteGuard.check_update = original
    rate = float(scores["train_steps_per_s"])
    return rate, IN_CHECKS["seconds"] / (steps / rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="realnvp,gan")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 steps, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 60, 2
    torch.set_num_threads(args.threads)
    variants = ("checked", "unchecked", "checkpoint-every-50")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            rates = {v: [] for v in variants}
            shares = []
            for r in range(args.rounds):
                for v in variants:
                    rate, share = one_run(model, args.data, args.steps, v, Path(tmp) / f"{model}-{v}")
                    rates[v].append(rate)
                    if v == "checked":
                        shares.append(share)
                    print(f"{model} round {r + 1}/{args.rounds} {v}: {rate:.1f} steps/s", file=sys.stderr)
            med = {v: statistics.median(x) for v, x in rates.items()}
            results[model] = {"steps_per_s": rates, "median_steps_per_s": med,
                              "share_in_checks_pct": 100.0 * statistics.median(shares),
                              "overhead_checks_pct": 100.0 * (med["unchecked"] / med["checked"] - 1.0),
                              "overhead_checkpoint_every_50_pct":
                                  100.0 * (med["checked"] / med["checkpoint-every-50"] - 1.0)}
    print(f"{'model':<10} {'checked':>10} {'unchecked':>10} {'ckpt/50':>10} {'checks cost':>12} "
          f"{'in checks':>10} {'ckpt/50 cost':>13}")
    for model, r in results.items():
        m = r["median_steps_per_s"]
        print(f"{model:<10} {m['checked']:>10.1f} {m['unchecked']:>10.1f} {m['checkpoint-every-50']:>10.1f} "
              f"{r['overhead_checks_pct']:>11.2f}% {r['share_in_checks_pct']:>9.2f}% "
              f"{r['overhead_checkpoint_every_50_pct']:>12.2f}%")
    print(json.dumps({"steps": args.steps, "rounds": args.rounds, "threads": args.threads, "data": args.data,
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
