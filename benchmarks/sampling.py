"""Sampling throughput of every registered model: samples per second, one batched call, on CPU.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/sampling.py                  # every model, n = 1000
    PYTHONPATH=src .venv/bin/python benchmarks/sampling.py --models made,nade,fvsbn --repeats 5

What is measured: ``model.sample(n)`` drawing n samples in one call (eval mode, no gradients), timed after
a warm-up call of 8 samples, ``--repeats`` times (each under the same seed); the table gives the median
and the best of the repeats.  It is the function ``deepgen compare`` uses for its samples/s column
(:func:`deepgen.workflows.compare.sampling_rate`).

The models are UNTRAINED: built with their default hyper-parameters on their natural built-in data (the
8x8 ``digits``, 17 levels, for every model that takes images; ``moons`` for 2-D vector-only models;
``edges2digits`` / ``mixtures`` for translators, whose samples are translations of the test split's
domain-A examples).  A sampler's cost is the same for trained weights, with one exception noted in the
table: FFJORD's adaptive ODE solver takes as many steps as the learned dynamics need, so its figure for
a trained model may differ (usually it is lower).

Threads: ``torch.set_num_threads(--threads)`` (default 1: a sampling step is a small op on 1000 rows, which a
second thread does not speed up, and waiting for it costs a lot on a shared machine); no ``OMP_WAIT_POLICY``
(idle OpenMP threads sleep instead of spinning: on a shared CPU, spinning threads that lose their core stall
every op).  The 1-minute load average is printed with every row: compare figures only at similar loads.
The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


import torch  # noqa: E402

from deepgen.data import load_data  # noqa: E402
from deepgen.models.registry import build_model, get_model_class, model_names  # noqa: E402
from deepgen.workflows.compare import sampling_rate  # noqa: E402

# natural built-in data per kind of model
IMAGE_DATA, VECTOR_DATA = "digits", "moons"
TRANSLATION_DATA = {"image": "edges2digits", "vector": "mixtures"}
NOTES = {"ffjord": "adaptive ODE solver: cost depends on the learned dynamics (untrained here)"}


def natural_data(cls) -> str:
    """The built-in data a model is benchmarked on."""
    if "translate" in cls.capabilities:
        return TRANSLATION_DATA["image" if "image" in cls.data_shapes else "vector"]
    return IMAGE_DATA if "image" in cls.data_shapes else VECTOR_DATA


def context_for(model, splits, n: int) -> torch.Tensor | None:
    """A translator's n domain-A inputs (the test split's, cycled); None for every other model."""
    if not model.can("translate"):
        return None
    from deepgen.evaluation.translation import sources

    source = sources(splits, "test")
    return source[torch.arange(n) % len(source)]


def measure(name: str, n: int, repeats: int, seed: int, cache: dict) -> dict:
    """One row: the median and best samples/s of ``repeats`` timed calls of ``sample(n)``."""
    cls = get_model_class(name)
    data = natural_data(cls)
    if data not in cache:
        cache[data] = load_data(data)
    splits = cache[data]
    torch.manual_seed(seed)
    model = build_model(name, splits.spec, {}).eval()
    context = context_for(model, splits, n)
    rates = [sampling_rate(model, n, seed, context)[0] for _ in range(repeats)]
    return {"model": name, "family": cls.family, "data": data, "n": n, "samples_per_s": statistics.median(rates),
            "best_samples_per_s": max(rates), "rates": rates, "load_1min": os.getloadavg()[0],
            "note": NOTES.get(name, "")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: every registered model)")
    parser.add_argument("--n", type=int, default=1000, help="samples per timed call (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per model (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else model_names()
    print(f"sampling {args.n} samples per call, median of {args.repeats} calls after a warm-up; untrained models; "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, torch {torch.__version__}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    rows, cache, started = [], {}, time.perf_counter()
    header = f"{'model':<15} {'family':<15} {'data':<13} {'samples/s':>10} {'best':>10} {'s/call':>8} {'load':>5}  note"
    print(header)
    print("-" * len(header))
    for name in names:
        try:
            row = measure(name, args.n, args.repeats, args.seed, cache)
        except Exception as exc:  # a model that cannot sample here is reported, not fatal
            row = {"model": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
            print(f"{name:<15} ERROR {row['error']}")
        else:
            print(f"{name:<15} {row['family']:<15} {row['data']:<13} {row['samples_per_s']:>10,.0f} "
                  f"{row['best_samples_per_s']:>10,.0f} {args.n / row['samples_per_s']:>8.3f} "
                  f"{row['load_1min']:>5.2f}  {row['note']}")
        rows.append(row)
        sys.stdout.flush()
    print(json.dumps({"benchmark": "sampling", "n": args.n, "repeats": args.repeats, "threads": args.threads,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"), "torch": torch.__version__,
                      "trained": False, "wall_s": round(time.perf_counter() - started, 1), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
