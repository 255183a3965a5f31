"""deepgen's image models on a GPU at large batches, bf16 autocast: steps/s and achieved FLOP/s against the peak.

Run from the repository root (``make bench-gpu`` runs the first)::

    PYTHONPATH=src .venv/bin/python benchmarks/gpu.py                  # realnvp, glow, vae on digits, batch 256..4096
    PYTHONPATH=src .venv/bin/python benchmarks/gpu.py --cpu-smoke      # the same code on the CPU at a tiny size
    ... benchmarks/gpu.py --models glow --batches 1024,4096 --steps 100 --no-autocast

On a machine without CUDA it prints one line saying so and exits 0 (``--cpu-smoke`` runs anyway, on the CPU).

What is measured, per (model, batch):

* a plain training loop on the built-in 8x8 digits (17 levels; the model dequantizes them itself), the
  model built by ``deepgen.models.registry.build_model`` with its defaults and ``fit_preprocessing`` on the
  training split, the optimizer and schedule of ``deepgen train`` (``deepgen.training.schedule.make_optimizer``:
  Adam, lr 1e-3, warm-up then cosine), gradient-norm clipping at 5.  Each step draws ``batch`` rows of the
  training split (1257 images, kept on the GPU) with replacement, so any batch size can be measured;
  ``loss = model.loss((x,))["loss"]`` runs under ``torch.autocast(device, torch.bfloat16)`` (``--no-autocast``:
  float32), then backward, clipping, step.  ``--warmup`` steps are run first (cuDNN autotuning, allocator);
* ``steps/s``: ``--steps`` timed steps over their wall time (CUDA synchronised before and after);
* ``FLOP/step``: the floating-point operations of one training step (forward and backward of the loss;
  the optimizer's element-wise update is not counted), counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matrix products and convolutions: the ops that run on tensor cores);
* ``TFLOP/s`` = FLOP/step x steps/s, and ``% of peak`` against the GPU's dense bf16 tensor-core peak from
  :data:`PEAK_BF16_TFLOPS` (by ``torch.cuda.get_device_name``; "unknown" for other GPUs);
* ``peak mem``: ``torch.cuda.max_memory_allocated`` over the timed steps; a batch that runs out of GPU memory
  is reported as OOM and larger batches of that model are skipped (as after any other error, which is
  reported in the table: one model failing does not lose the others' figures).

Then, unless ``--no-train-path``, one ``deepgen.workflows.train.train`` call per model (what
``deepgen train --model M --data digits --precision bf16-mixed --accelerator gpu`` runs, with every default)
at the largest batch the data allow (``min(largest --batches, training rows)``), for the steps/s users get
through Lightning (``train_steps_per_s`` of scores.json) and the test NLL.

Prints tables, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

MODELS = ("realnvp", "glow", "vae")
BATCHES = (256, 512, 1024, 2048, 4096)

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name, first match wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
)
NO_GPU = ("no CUDA GPU found (torch.cuda.is_available() is False): nothing to measure; "
          "benchmarks/gpu.py --cpu-smoke runs the same code on the CPU at a tiny size")


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, or None when it is not in the table."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def training_step(model, opt, sched, x: torch.Tensor, autocast: bool, clip: float = 5.0) -> torch.Tensor:
    """One step of the loop: loss under bf16 autocast (or float32), backward, gradient-norm clipping, update."""
    amp = torch.autocast(x.device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with amp:
        loss = model.loss((x,))["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return loss.detach()


def flops_per_step(model, opt, sched, x: torch.Tensor, autocast: bool) -> int:
    """FLOPs of one training step (forward + backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        training_step(model, opt, sched, x, autocast)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, train_x: torch.Tensor, spec, batch: int, steps: int, warmup: int, autocast: bool,
            peak: float | None, seed: int = 0) -> dict:
    """steps/s, FLOP/step, achieved TFLOP/s and peak memory of one (model, batch) in the plain loop."""
    from deepgen.models.registry import build_model
    from deepgen.training.config import TrainConfig
    from deepgen.training.schedule import make_optimizer

    device = train_x.device
    torch.manual_seed(seed)
    model = build_model(name, spec)
    model.fit_preprocessing(train_x.cpu())
    model.to(device).train()
    opt, sched = make_optimizer(model.parameters(), TrainConfig(model=name, data="digits", steps=warmup + steps + 1))
    g = torch.Generator(device=device).manual_seed(seed)

    def batch_rows():
        return train_x[torch.randint(0, len(train_x), (batch,), device=device, generator=g)]

    flops = flops_per_step(model, opt, sched, batch_rows(), autocast)
    for _ in range(warmup):
        training_step(model, opt, sched, batch_rows(), autocast)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = training_step(model, opt, sched, batch_rows(), autocast)
    _sync(device)
    seconds = time.perf_counter() - t0
    sps = steps / seconds
    achieved = flops * sps / 1e12
    return {"model": name, "batch": batch, "steps_per_s": sps, "examples_per_s": sps * batch,
            "flop_per_step": flops, "tflops": achieved, "peak_fraction": achieved / peak if peak else None,
            "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 1e6 if device.type == "cuda" else None,
            "last_loss": float(loss), "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": seconds}


def train_path_row(name: str, batch: int, steps: int, device: torch.device, out: Path) -> dict:
    """``deepgen train --precision bf16-mixed`` (in-process ``train``) at ``batch``: steps/s and test NLL."""
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    cfg = TrainConfig(model=name, data="digits", steps=steps, batch_size=batch, precision="bf16-mixed",
                      accelerator="gpu" if device.type == "cuda" else "cpu", progress=False)
    t0 = time.perf_counter()
    scores = train(cfg, out, overwrite=True)
    return {"model": name, "batch": batch, "steps": steps, "steps_per_s": scores.get("train_steps_per_s"),
            "test_nll_nats": scores.get("nll_nats"), "bits_per_dim": scores.get("bits_per_dim"),
            "call_s": time.perf_counter() - t0}


def _f(v, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", type=_ints, help=f"default {','.join(map(str, BATCHES))}")
    ap.add_argument("--steps", type=int, help="timed steps per point (default 50)")
    ap.add_argument("--warmup", type=int, help="untimed steps before them (default 10)")
    ap.add_argument("--train-steps", type=int, help="steps of each deepgen train row (default 500)")
    ap.add_argument("--no-autocast", dest="autocast", action="store_false", help="float32 instead of bf16 autocast")
    ap.add_argument("--no-train-path", dest="train_path", action="store_false", help="skip the deepgen train rows")
    ap.add_argument("--cpu-smoke", action="store_true", help="run on the CPU at a tiny size (unless given: batches "
                    "8,16, 2 steps after 1, 3 train steps)")
    args = ap.parse_args(argv)
    args.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    defaults = {"batches": (8, 16), "steps": 2, "warmup": 1, "train_steps": 3} if args.cpu_smoke else \
        {"batches": BATCHES, "steps": 50, "warmup": 10, "train_steps": 500}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    from deepgen.data import load_data
    from deepgen.workflows.train import quiet_lightning

    quiet_lightning()
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    name = "cpu (smoke run)" if device.type == "cpu" else torch.cuda.get_device_name(device)
    peak = None if device.type == "cpu" else peak_tflops(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    splits = load_data("digits")
    train_x = splits.train.to(device)
    result = {"settings": {**vars(args), "device": name, "peak_bf16_tflops": peak, "torch": torch.__version__},
              "rows": [], "train_path": []}
    for model in args.models:
        for batch in args.batches:
            try:
                row = measure(model, train_x, splits.spec, batch, args.steps, args.warmup, args.autocast, peak)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                result["rows"].append({"model": model, "batch": batch, "oom": True})
                print(f"{model} batch {batch}: out of GPU memory; larger batches skipped", file=sys.stderr)
                break
            except Exception as exc:  # one model failing (e.g. an op without a bf16 kernel) must not lose the rest
                result["rows"].append({"model": model, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]})
                print(f"{model} batch {batch}: failed ({type(exc).__name__}: {exc}); larger batches skipped",
                      file=sys.stderr)
                break
            result["rows"].append(row)
            print(f"{model} batch {batch}: {row['steps_per_s']:.1f} steps/s, {row['tflops']:.2f} TFLOP/s, "
                  f"loss {row['last_loss']:.3f}", file=sys.stderr, flush=True)
    if args.train_path:
        batch = min(max(args.batches), len(splits.train))
        with tempfile.TemporaryDirectory() as tmp:
            for model in args.models:
                try:
                    row = train_path_row(model, batch, args.train_steps, device, Path(tmp) / model)
                except Exception as exc:
                    row = {"model": model, "batch": batch, "steps": args.train_steps, "steps_per_s": None,
                           "test_nll_nats": None, "bits_per_dim": None, "call_s": 0.0,
                           "error": f"{type(exc).__name__}: {exc}"[:300]}
                result["train_path"].append(row)
                print(f"deepgen train {model} batch {batch}: {_f(row['steps_per_s'])} steps/s, test NLL "
                      f"{_f(row['test_nll_nats'], '.2f')}", file=sys.stderr, flush=True)

    precision = "bf16 autocast" if args.autocast else "float32"
    print(f"\n{name}: plain training loop on digits (8x8), {precision}, {args.steps} timed steps after {args.warmup}; "
          f"peak {peak if peak else 'unknown'} TFLOP/s (dense bf16)\n")
    print("| model | batch | steps/s | examples/s | GFLOP/step | TFLOP/s | % of peak | peak mem MB | loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        if r.get("oom") or r.get("error"):
            print(f"| {r['model']} | {r['batch']} | {'OOM' if r.get('oom') else 'failed: ' + r['error']} | | | | | | |")
            continue
        frac = "unknown" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.2f}"
        mem = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        print(f"| {r['model']} | {r['batch']} | {r['steps_per_s']:.1f} | {r['examples_per_s']:.0f} | "
              f"{r['flop_per_step'] / 1e9:.2f} | {r['tflops']:.3f} | {frac} | {mem} | {r['last_loss']:.3f} |")
    if result["train_path"]:
        print("\n`deepgen train --precision bf16-mixed` (in-process train(), every other default)\n")
        print("| model | batch | steps | steps/s | test NLL nats | bits/dim | call s | error |")
        print("|---|---|---|---|---|---|---|---|")
        for r in result["train_path"]:
            print(f"| {r['model']} | {r['batch']} | {r['steps']} | {_f(r['steps_per_s'])} | "
                  f"{_f(r['test_nll_nats'], '.2f')} | {_f(r['bits_per_dim'], '.3f')} | {r['call_s']:.1f} | "
                  f"{r.get('error', '')} |")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
