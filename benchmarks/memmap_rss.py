"""Peak memory of ``deepgen train`` on a large .npy file: memory-mapped against read into memory.

Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/memmap_rss.py             # 1e7 and 1e6 rows
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/memmap_rss.py --quick     # 1e5 rows, 30 steps

What is measured.  A (N, 2) float32 .npy file (two moons plus Gaussian noise, written chunk by chunk
into a temporary folder: 80 MB for N = 1e7) is trained on by ``deepgen train --model realnvp --data FILE
--steps S`` in a child process (the CLI's ``main``, run by a small wrapper that also notes whether the
splits were memory-mapped and how many rows were read in one piece), once per path:

    memmap     the default for this file (DEEPGEN_MEMMAP_BYTES unset: files of >= 64 MiB are mapped),
               or forced with DEEPGEN_MEMMAP_BYTES=0 for a smaller file
    in-memory  forced with DEEPGEN_MEMMAP_BYTES=<larger than the file>

For each: the child's peak resident set size (``ru_maxrss`` from ``os.wait4``), the peaks of its
anonymous and file-backed resident memory (RssAnon / RssFile sampled from /proc every 50 ms: pages of
the memory map count as file-backed and the kernel may drop them), the training speed
(``train_steps_per_s`` from scores.json: the training loop only) and the wall time of the whole command
(loading, training, validation and test scoring of the 10 % splits, plots).  The last line of stdout is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Runs the CLI in the child and notes what the data path did (printed as one JSON line on stderr).
_CHILD = r"""
import atexit, json, sys
from deepgen.data import mapped
seen = {"memmap_views": 0, "largest_read_rows": 0, "reads_over_1e5_rows": 0}
_init, _read = mapped.RowView.__init__, mapped.RowView.read
def init(self, *a, **k):
    seen["memmap_views"] += 1
    _init(self, *a, **k)
def read(self, positions):
    n = len(range(len(self))[positions]) if isinstance(positions, slice) else len(positions)
    seen["largest_read_rows"] = max(seen["largest_read_rows"], n)
    seen["reads_over_1e5_rows"] += n > 100_000
    return _read(self, positions)
mapped.RowView.__init__, mapped.RowView.read = init, read
atexit.register(lambda: print("MEMMAP_NOTE " + json.dumps(seen), file=sys.stderr, flush=True))
from deepgen.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_moons(path: Path, n: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """n two-moons points plus N(0, 0.1^2) noise as a float32 (n, 2) .npy, written chunk by chunk."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 2))
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        t = rng.uniform(0, np.pi, m)
        upper = rng.random(m) < 0.5
        x = np.where(upper, np.cos(t), 1 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        out[start:start + m] = np.stack([x, y], 1) + rng.normal(0, 0.1, (m, 2))
    out.flush()
    del out


def _status_kb(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)
                    if k in ("VmRSS", "RssAnon", "RssFile")}
    except (OSError, ValueError):
        return {}


def run_child(data: Path, out: Path, steps: int, env_extra: dict, model: str) -> dict:
    """One ``deepgen train`` in a child process: its peak RSS, sampled peaks, speed, wall time, memmap note."""
    env = {**os.environ, **env_extra}
    if not env_extra:
        env.pop("DEEPGEN_MEMMAP_BYTES", None)
    cmd = [sys.executable, "-c", _CHILD, "train", "--model", model, "--data", str(data), "--steps", str(steps),
           "--out", str(out), "--overwrite"]
    log_out, log_err = out.parent / f"{out.name}.stdout", out.parent / f"{out.name}.stderr"
    t0 = time.perf_counter()
    with open(log_out, "w") as fo, open(log_err, "w") as fe:
        proc = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe)
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for k, v in _status_kb(proc.pid).items():
                peaks[k] = max(peaks[k], v)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    max_rss_mb = usage.ru_maxrss / 1024
    stderr = log_err.read_text()
    note = next((json.loads(line.split(" ", 1)[1]) for line in stderr.splitlines() if line.startswith("MEMMAP_NOTE")),
                {})
    scores = json.loads((out / "scores.json").read_text()) if (out / "scores.json").is_file() else {}
    if proc.returncode:
        print(stderr[-2000:], file=sys.stderr)
    return {"rc": proc.returncode, "peak_rss_mb": round(max_rss_mb, 1),
            "sampled_peak_rss_mb": round(peaks["VmRSS"] / 1024, 1),
            "sampled_peak_anon_mb": round(peaks["RssAnon"] / 1024, 1),
            "sampled_peak_file_mb": round(peaks["RssFile"] / 1024, 1),
            "train_steps_per_s": scores.get("train_steps_per_s"), "test_nll_nats": scores.get("nll_nats"),
            "wall_s": round(wall, 1), "memmap": note.get("memmap_views", 0) > 0, "note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, nargs="+", default=[1e7, 1e6], help="file sizes (rows of 2 floats)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--model", default="realnvp")
    ap.add_argument("--quick", action="store_true", help="1e5 rows, 30 steps")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.steps = [1e5], 30
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows):
            data = Path(tmp) / f"moons_{rows}.npy"
            write_moons(data, rows)
            size = data.stat().st_size
            default_maps = size - 128 >= 64 << 20
            variants = [("memmap", {} if default_maps else {"DEEPGEN_MEMMAP_BYTES": "0"}),
                        ("in-memory", {"DEEPGEN_MEMMAP_BYTES": str(size * 2)})]
            for name, env in variants:
                r = run_child(data, Path(tmp) / f"run_{rows}_{name}", args.steps, env, args.model)
                r.update(rows=rows, file_mb=round(size / 1e6, 1), path=name, env=env or "default")
                results.append(r)
                print(f"{rows:>9} rows ({r['file_mb']} MB), {name:9s} [{'memmap path' if r['memmap'] else 'in memory'}]"
                      f": peak RSS {r['peak_rss_mb']} MB (sampled: anon {r['sampled_peak_anon_mb']} MB + file "
                      f"{r['sampled_peak_file_mb']} MB), {r['train_steps_per_s'] and round(r['train_steps_per_s'], 1)} "
                      f"steps/s, wall {r['wall_s']} s, test NLL {r['test_nll_nats']}, largest read "
                      f"{r['note'].get('largest_read_rows')} rows, rc {r['rc']}", flush=True)
            data.unlink()
    print(json.dumps({"model": args.model, "steps": args.steps, "results": results}))


if __name__ == "__main__":
    main()
