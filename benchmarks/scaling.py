"""How deepgen's training scales on a CPU: batch size, data dimension, dataset size, DDP against threads.

Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/scaling.py            # every part, 300 steps
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/scaling.py --quick    # smoke run (~2 min)
    ... benchmarks/scaling.py --parts batch,dim --models realnvp --steps 500           # a subset

What is measured is what users run: every point is one ``deepgen.workflows.train.train`` call (parts
``batch`` and ``dim``, in this process) or one ``deepgen train`` child process (parts ``rows`` and ``ddp``,
where memory or DDP needs a fresh process), with every default but the ones named.  Per point:

* ``steps/s``: scores.json's ``train_steps_per_s``, the steps over the wall time of Lightning's fit,
  which includes the run machinery (metrics rows, the validation pass over the whole validation split
  at the last step, its checkpoint and the sample picture);
* ``loop steps/s``: the same steps over that wall time less scores.json's ``machinery_s`` (the training
  steps alone), and ``examples/s`` = loop steps/s x batch size;
* ``peak RSS``: in-process points, the process's resident-set high-water mark (VmHWM) over the call,
  reset before it by writing 5 to /proc/self/clear_refs, and ``added`` = that peak minus the RSS just before
  the call (torch's CPU tensors bypass Python's allocator, so tracemalloc would not see them); child
  points, the largest VmHWM of the child's processes and the peak of their summed RSS, sampled from /proc every
  50 ms (not ``ru_maxrss``, which counts this script's own memory: see :func:`child_point`);
* ``call s``: wall time of the whole call or command (data, model, fit, test scoring, pictures);
* ``load``: the 1-minute load average when the point finished (the machine may be shared).

The parts (``--parts``, default all):

``batch``  RealNVP and MAF on the built-in moons (10^4 training rows), batch 64 ... 4096, 1 thread (``--threads``).
``dim``    RealNVP and MAF on a mixture of 8 Gaussians in D = 2 ... 256 dimensions (20 000 rows written to a
           temporary .npy file, split 80/10/10 by deepgen as any user's file), default batch (128), 1 thread
           (``--threads``); also the test NLL per dimension.
``rows``   RealNVP on 10^4 ... 10^7 rows of noisy two moons in a memory-mapped .npy (``DEEPGEN_MEMMAP_BYTES=0``
           maps every size; written by :func:`memmap_rss.write_moons`, run by memmap_rss's child wrapper),
           default batch, 1 thread.  The validation pass at the last step and the test scoring read 10 % of the
           rows each, so ``steps/s`` falls and ``call s`` grows with the file while ``loop steps/s`` should not.
``ddp``    RealNVP and MAF on moons at the same global batch (``--ddp-batches``): 2 DDP processes on the CPU
           (``--devices 2 --strategy ddp --accelerator cpu``, 1 thread each, ``--batch-size`` half the global batch:
           deepgen's ``--batch-size`` is per process; each process computes its half of every batch and the
           gradients are averaged over gloo) against 1 process with 2 threads and 1 process with 1 thread:
           wall time of the command, steps/s and test NLL.

Threads are set per point, in the child's ``OMP_NUM_THREADS`` and ``--threads`` (in-process: ``threads`` of
the config).  Prints one table per part, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memmap_rss import _CHILD as MEMMAP_CHILD, write_moons  # noqa: E402
from train_path import ROOT, load_average  # noqa: E402

PARTS = ("batch", "dim", "rows", "ddp")
BATCHES = (64, 128, 256, 512, 1024, 2048, 4096)
DIMS = (2, 8, 32, 64, 128, 256)
ROWS = (1e4, 1e5, 1e6, 1e7)
DDP_BATCHES = (256, 2048)
QUICK = {"steps": 30, "batches": (64, 1024), "dims": (2, 32), "rows": (1e4, 1e5), "ddp_batches": (256,)}


# --- memory of this process -----------------------------------------------------------------------------------
def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb(field: str = "VmRSS") -> float:
    """This process's VmRSS (now) or VmHWM (peak since the last reset), in MB (10^6 bytes)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


# --- the synthetic data of part "dim" ---------------------------------------------------------------------------
def write_gaussian_mixture(path: Path, n: int, dim: int, components: int = 8, seed: int = 0) -> None:
    """n rows of a mixture of ``components`` equally weighted Gaussians in ``dim`` dimensions, float32 .npy:
    means ~ N(0, 9 I), each component's coordinates independent with standard deviations ~ U(0.3, 1)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (components, dim))
    scales = rng.uniform(0.3, 1.0, (components, dim))
    k = rng.integers(0, components, n)
    x = means[k] + scales[k] * rng.normal(size=(n, dim))
    np.save(path, x.astype(np.float32))


# --- one in-process point ---------------------------------------------------------------------------------------
def figures(scores: dict, steps: int, batch: int) -> dict:
    """steps/s with and without the run machinery, examples/s, test NLL, from a run's scores."""
    sps = scores.get("train_steps_per_s")
    fit_s = steps / sps if sps else None
    loop_s = fit_s - (scores.get("machinery_s") or 0.0) if fit_s else None
    loop_sps = steps / loop_s if loop_s and loop_s > 0 else None
    return {"steps_per_s": sps, "loop_steps_per_s": loop_sps,
            "examples_per_s": loop_sps * batch if loop_sps else None,
            "machinery_s": scores.get("machinery_s"), "test_nll_nats": scores.get("nll_nats"),
            "threads": scores.get("threads"), "world_size": scores.get("world_size")}


def in_process_point(model: str, data: str, steps: int, batch: int, threads: int, out: Path) -> dict:
    """One ``train()`` call: its figures, the peak RSS over the call and what it added to the RSS before it."""
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    cfg = TrainConfig(model=model, data=data, steps=steps, batch_size=batch, threads=threads, progress=False)
    gc.collect()
    before = rss_mb()
    exact = reset_peak_rss()
    t0 = time.perf_counter()
    scores = train(cfg, out, overwrite=True)
    call = time.perf_counter() - t0
    peak = rss_mb("VmHWM")
    return {**figures(scores, steps, batch), "call_s": call, "rss_before_mb": before, "peak_rss_mb": peak,
            "added_mb": peak - before, "peak_since_point_start": exact, "load": load_average()}


# --- one child process ------------------------------------------------------------------------------------------
def _tree_pids(pid: int) -> list[int]:
    """pid and its descendants (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def proc_status_kb(pid: int, keys=("VmRSS", "VmHWM", "RssAnon", "RssFile")) -> dict[str, int]:
    """Fields of /proc/PID/status in KiB ({} once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f if ":" in line) if k in keys}
    except (OSError, ValueError):
        return {}


def child_point(args: list[str], out: Path, threads: int, steps: int, batch: int, timeout: float, world: int = 1,
                env_extra: dict | None = None, launcher: list[str] | None = None) -> dict:
    """``deepgen train ARGS --out OUT`` in a child process with ``threads`` threads per process: its figures, its
    memory and the command's wall time.  ``launcher`` defaults to ``python -m deepgen`` (so that Lightning's DDP
    launcher starts the other ranks the same way); ``batch`` is ``--batch-size`` (per process), ``world`` the
    number of processes (for examples/s).

    Memory is sampled from /proc every 50 ms: ``peak_rss_mb`` is the largest VmHWM (the high-water mark of the
    resident set since the process's exec) of any process of the tree, ``tree_peak_rss_mb`` the peak of the
    tree's summed VmRSS, ``peak_anon_mb`` / ``peak_file_mb`` the peaks of the main process's anonymous and
    file-backed resident memory (a memory map's pages are file-backed).  Not ``ru_maxrss`` from ``wait4``: Linux
    carries the high-water mark of the forking parent's memory across the exec into it (a child of a 500 MB
    parent reports >= 500 MB), which would report this script's own memory.

    A command still running after ``timeout`` seconds is stopped (SIGTERM to its process group, SIGKILL 20 s
    later) and the point is marked ``dropped``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads), **(env_extra or {})}
    cmd = [*(launcher or [sys.executable, "-m", "deepgen"]), "train", *args, "--threads", str(threads),
           "--steps", str(steps), "--batch-size", str(batch), "--out", str(out), "--overwrite", "--no-progress"]
    log = out.parent / f"{out.name}.log"
    peaks = {"hwm": 0, "tree": 0, "anon": 0, "file": 0}
    done, timed_out = threading.Event(), threading.Event()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def stop(sig):
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def sample():
        while not done.is_set():
            status = {p: proc_status_kb(p) for p in _tree_pids(proc.pid)}
            peaks["tree"] = max(peaks["tree"], sum(v.get("VmRSS", 0) for v in status.values()))
            peaks["hwm"] = max([peaks["hwm"], *(v.get("VmHWM", 0) for v in status.values())])
            peaks["anon"] = max(peaks["anon"], status.get(proc.pid, {}).get("RssAnon", 0))
            peaks["file"] = max(peaks["file"], status.get(proc.pid, {}).get("RssFile", 0))
            time.sleep(0.05)

    timers = [threading.Timer(timeout, stop, (signal.SIGTERM,)), threading.Timer(timeout + 20, stop, (signal.SIGKILL,))]
    threads_started = [*timers, threading.Thread(target=sample, daemon=True)]
    for t in threads_started:
        t.daemon = True
        t.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    for t in timers:
        t.cancel()
    done.set()
    threads_started[-1].join()
    text = log.read_text()
    scores = json.loads((out / "scores.json").read_text()) if (out / "scores.json").is_file() else {}
    note = next((json.loads(line.split(" ", 1)[1]) for line in text.splitlines() if line.startswith("MEMMAP_NOTE")), {})
    if rc and not timed_out.is_set():
        print(text[-2000:], file=sys.stderr)
    mb = 1024 / 1e6
    return {**figures(scores, steps, batch * world), "rc": rc, "dropped": timed_out.is_set(), "call_s": wall,
            "peak_rss_mb": peaks["hwm"] * mb, "tree_peak_rss_mb": peaks["tree"] * mb,
            "peak_anon_mb": peaks["anon"] * mb, "peak_file_mb": peaks["file"] * mb, "note": note,
            "load": load_average()}


# --- the parts ----------------------------------------------------------------------------------------------------
def part_batch(models, batches, steps, threads: int, tmp: Path, log) -> list[dict]:
    rows = []
    for model in models:
        for b in batches:
            r = {"model": model, "batch": b,
                 **in_process_point(model, "moons", steps, b, threads, tmp / f"b-{model}-{b}")}
            rows.append(r)
            log(f"batch {model} {b}: {r['steps_per_s']:.1f} steps/s (loop {r['loop_steps_per_s']:.1f}), peak RSS "
                f"{r['peak_rss_mb']:.0f} MB (+{r['added_mb']:.1f}), load {r['load']}")
    return rows


def part_dim(models, dims, steps, n: int, threads: int, tmp: Path, log) -> list[dict]:
    rows = []
    for d in dims:
        data = tmp / f"gmm_{d}.npy"
        write_gaussian_mixture(data, n, d)
        for model in models:
            r = {"model": model, "dim": d, "batch": 128,
                 **in_process_point(model, str(data), steps, 128, threads, tmp / f"d-{model}-{d}")}
            rows.append(r)
            log(f"dim {model} D={d}: {r['steps_per_s']:.1f} steps/s (loop {r['loop_steps_per_s']:.1f}), "
                f"NLL/D {r['test_nll_nats'] / d:.3f}, peak RSS {r['peak_rss_mb']:.0f} MB, load {r['load']}")
        data.unlink()
    return rows


def part_rows(model: str, sizes, steps, tmp: Path, log) -> list[dict]:
    rows = []
    for n in (int(s) for s in sizes):
        data = tmp / f"moons_{n}.npy"
        t0 = time.perf_counter()
        write_moons(data, n)
        write_s = time.perf_counter() - t0
        # memmap_rss's child wrapper: deepgen's CLI, noting whether the splits were memory-mapped and the reads
        r = child_point(["--model", model, "--data", str(data)], tmp / f"r-{n}", 1, steps, 128, timeout=1e9,
                        env_extra={"DEEPGEN_MEMMAP_BYTES": "0"}, launcher=[sys.executable, "-c", MEMMAP_CHILD])
        r = {"model": model, "rows": n, "file_mb": data.stat().st_size / 1e6, "write_s": write_s, "batch": 128,
             "memmap": r["note"].get("memmap_views", 0) > 0, **r}
        rows.append(r)
        log(f"rows {n}: {_f(r['steps_per_s'])} steps/s (loop {_f(r['loop_steps_per_s'])}), peak RSS "
            f"{r['peak_rss_mb']:.0f} MB (anon {r['peak_anon_mb']:.0f}, file {r['peak_file_mb']:.0f}), memmap "
            f"{r['memmap']}, call {r['call_s']:.1f} s, rc {r['rc']}, load {r['load']}")
        data.unlink()
    return rows


# name, processes, threads per process, extra arguments of deepgen train.  --batch-size is per process under DDP
# (deepgen.training.sampler.StepBatches: global batch = batch size x world size), so the DDP rows get half of it.
DDP_SETUPS = (
    ("DDP 2 processes x 1 thread", 2, 1, ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]),
    ("1 process x 2 threads", 1, 2, []),
    ("1 process x 1 thread", 1, 1, []),
)


def part_ddp(models, batches, steps, timeout: float, tmp: Path, log) -> list[dict]:
    rows = []
    for model in models:
        for b in batches:
            for name, world, threads, extra in DDP_SETUPS:
                out = tmp / f"ddp-{model}-{b}-{len(rows)}"
                r = {"model": model, "batch": b, "setup": name, "batch_per_process": b // world,
                     **child_point(["--model", model, "--data", "moons", *extra], out, threads, steps, b // world,
                                   timeout, world=world)}
                rows.append(r)
                if r["dropped"]:
                    log(f"ddp {model} batch {b}, {name}: DROPPED, still running after {timeout:.0f} s "
                        f"(load {r['load']})")
                    continue
                log(f"ddp {model} batch {b}, {name}: wall {r['call_s']:.1f} s, {r['steps_per_s'] or float('nan'):.1f}"
                    f" steps/s, NLL {r['test_nll_nats']}, world {r['world_size']}, rc {r['rc']}, load {r['load']}")
    return rows


# --- tables ---------------------------------------------------------------------------------------------------
def _f(v, fmt=".1f"):
    return "-" if v is None else format(v, fmt)


def print_tables(result: dict) -> None:
    s = result["settings"]
    p = result["parts"]
    if "batch" in p:
        print(f"\n(a) batch size: moons, {s['steps']} steps, {s['threads']} thread(s), in-process train()\n")
        print("| model | batch | steps/s | loop steps/s | examples/s | peak RSS MB | added MB | call s | load |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in p["batch"]:
            print(f"| {r['model']} | {r['batch']} | {_f(r['steps_per_s'])} | {_f(r['loop_steps_per_s'])} | "
                  f"{_f(r['examples_per_s'], '.0f')} | {r['peak_rss_mb']:.0f} | {r['added_mb']:.1f} | "
                  f"{r['call_s']:.1f} | {r['load']} |")
    if "dim" in p:
        print(f"\n(b) data dimension: mixture of 8 Gaussians, {s['dim_rows']} rows (.npy), batch 128, {s['steps']} "
              f"steps, {s['threads']} thread(s), in-process train()\n")
        print("| model | D | steps/s | loop steps/s | test NLL nats | NLL / D | peak RSS MB | added MB | call s "
              "| load |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in p["dim"]:
            nll = r["test_nll_nats"]
            print(f"| {r['model']} | {r['dim']} | {_f(r['steps_per_s'])} | {_f(r['loop_steps_per_s'])} | "
                  f"{_f(nll, '.2f')} | {_f(nll / r['dim'] if nll is not None else None, '.3f')} | "
                  f"{r['peak_rss_mb']:.0f} | {r['added_mb']:.1f} | {r['call_s']:.1f} | {r['load']} |")
    if "rows" in p:
        print(f"\n(c) dataset size: noisy two moons in a memory-mapped .npy (DEEPGEN_MEMMAP_BYTES=0), "
              f"{s['rows_model']}, batch 128, {s['steps']} steps, 1 thread, `deepgen train` child\n")
        print("| rows | file MB | memmap | steps/s | loop steps/s | peak RSS MB | file-backed MB | anonymous MB | "
              "largest read (rows) | test NLL | call s | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in p["rows"]:
            print(f"| {r['rows']:.0e} | {r['file_mb']:.1f} | {r['memmap']} | {_f(r['steps_per_s'])} | "
                  f"{_f(r['loop_steps_per_s'])} | {r['peak_rss_mb']:.0f} | {r['peak_file_mb']:.0f} | "
                  f"{r['peak_anon_mb']:.0f} | {r['note'].get('largest_read_rows')} | "
                  f"{_f(r['test_nll_nats'], '.4f')} | {r['call_s']:.1f} | {r['load']} |")
    if "ddp" in p:
        print(f"\n(d) DDP against threads: moons, same global batch, {s['steps']} steps, `deepgen train` child\n")
        print("| model | global batch | setup | command wall s | steps/s | loop steps/s | test NLL | peak RSS MB "
              "(largest process) | tree peak RSS MB | load |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        # (--batch-size of the DDP rows: half the global batch, see DDP_SETUPS)
        for r in p["ddp"]:
            if r["dropped"]:
                print(f"| {r['model']} | {r['batch']} | {r['setup']} | > {r['call_s']:.0f} (dropped: stopped) "
                      f"| - | - | - | - | - | {r['load']} |")
                continue
            print(f"| {r['model']} | {r['batch']} | {r['setup']} | {r['call_s']:.1f} | {_f(r['steps_per_s'])} | "
                  f"{_f(r['loop_steps_per_s'])} | {_f(r['test_nll_nats'], '.4f')} | {r['peak_rss_mb']:.0f} | "
                  f"{r['tree_peak_rss_mb']:.0f} | {r['load']} |")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(float(t)) for t in text.split(",") if t.strip())


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--models", default="realnvp,maf", help="models of parts batch, dim and ddp")
    ap.add_argument("--rows-model", default="realnvp", help="model of part rows")
    ap.add_argument("--steps", type=int, default=300, help="training steps of every point")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of parts batch and dim")
    ap.add_argument("--batches", type=_ints, default=BATCHES)
    ap.add_argument("--dims", type=_ints, default=DIMS)
    ap.add_argument("--dim-rows", type=int, default=20_000, help="rows of the Gaussian-mixture file of part dim")
    ap.add_argument("--rows", type=_ints, default=tuple(int(r) for r in ROWS), help="file sizes of part rows")
    ap.add_argument("--ddp-batches", type=_ints, default=DDP_BATCHES, help="global batch sizes of part ddp")
    ap.add_argument("--ddp-models", default="", help="models of part ddp (default: --models)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds after which a child point of part ddp is "
                    "stopped and reported as dropped")
    ap.add_argument("--quick", action="store_true", help="smoke run: 30 steps, 2 points per part")
    args = ap.parse_args(argv)
    args.parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(unknown)}; expected some of {', '.join(PARTS)}")
    args.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    args.ddp_models = tuple(m.strip() for m in args.ddp_models.split(",") if m.strip())
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from deepgen.workflows.train import quiet_lightning

    quiet_lightning()
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    result = {"settings": {**{k: v for k, v in vars(args).items()}, "torch": torch.__version__,
                           "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
              "parts": {}, "part_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if {"batch", "dim"} & set(args.parts):  # imports and first-call costs out of the first measured point
            warm = in_process_point(args.models[0], "moons", 20, 128, 1, tmp / "warm-up")
            log(f"warm-up call (not reported): {warm['call_s']:.1f} s, {warm['added_mb']:.0f} MB added")
        for part in args.parts:
            t0 = time.perf_counter()
            if part == "batch":
                result["parts"]["batch"] = part_batch(args.models, args.batches, args.steps, args.threads, tmp, log)
            elif part == "dim":
                result["parts"]["dim"] = part_dim(args.models, args.dims, args.steps, args.dim_rows, args.threads,
                                                 tmp, log)
            elif part == "rows":
                result["parts"]["rows"] = part_rows(args.rows_model, args.rows, args.steps, tmp, log)
            elif part == "ddp":
                result["parts"]["ddp"] = part_ddp(args.ddp_models or args.models, args.ddp_batches, args.steps,
                                                 args.timeout, tmp, log)
            result["part_seconds"][part] = round(time.perf_counter() - t0, 1)
            log(f"part {part} done in {result['part_seconds'][part]} s")
    print_tables(result)
    print(f"\nseconds per part: {result['part_seconds']}; load average at the end: {load_average()}")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
