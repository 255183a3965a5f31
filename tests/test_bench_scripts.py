"""The measuring parts of benchmarks/scaling.py and benchmarks/gpu.py: what they would get wrong silently."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu  # noqa: E402
import scaling  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_script_without_cuda_says_so_in_one_line_and_exits_0():
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [gpu.NO_GPU]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.0), ("NVIDIA L4", 121.0),
    ("Tesla T4", None), ("cpu", None),
])
def test_peak_of_a_gpu_is_found_by_its_most_specific_name(name, peak):
    assert gpu.peak_tflops(name) == peak


def test_flops_of_a_training_step_grow_with_the_batch_and_the_step_updates_the_weights(digits):
    """FlopCounterMode sees the forward and the backward (about 3x the forward's matmul/conv FLOPs), linear in
    the batch; and the counted step is a real step (the weights move)."""
    from deepgen.models.registry import build_model
    from deepgen.training.config import TrainConfig
    from deepgen.training.schedule import make_optimizer

    def setup():
        torch.manual_seed(0)
        model = build_model("realnvp", digits.spec)
        model.fit_preprocessing(digits.train)
        opt, sched = make_optimizer(model.parameters(), TrainConfig(model="realnvp", data="digits", steps=10,
                                                                    warmup_steps=0))
        return model, opt, sched

    model, opt, sched = setup()
    before = [p.detach().clone() for p in model.parameters()]
    f8 = gpu.flops_per_step(model, opt, sched, digits.train[:8], autocast=True)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    f16 = gpu.flops_per_step(*setup(), digits.train[:16], autocast=True)
    assert f8 > 0 and f16 == pytest.approx(2 * f8, rel=0.02)

    from torch.utils.flop_counter import FlopCounterMode

    model, _, _ = setup()
    with FlopCounterMode(display=False) as forward:
        with torch.no_grad():
            model.loss((digits.train[:8],))
    assert 2.5 * forward.get_total_flops() <= f8 <= 3.5 * forward.get_total_flops()


def test_peak_rss_reset_sees_an_allocation_made_after_it_and_forgets_one_freed_before_it():
    assert scaling.reset_peak_rss()
    big = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    big.sum()
    grown = scaling.rss_mb("VmHWM") - scaling.rss_mb()
    del big
    assert scaling.rss_mb("VmHWM") - scaling.rss_mb() >= 50 + grown  # the peak remembers it after the free
    assert scaling.reset_peak_rss()
    assert scaling.rss_mb("VmHWM") - scaling.rss_mb() < 10  # and forgets it after a reset


def test_child_process_tree_includes_grandchildren():
    outer = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                              "subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"])
    try:
        for _ in range(100):
            pids = scaling._tree_pids(outer.pid)
            if len(pids) == 2:
                break
            import time

            time.sleep(0.05)
        assert pids[0] == outer.pid and len(pids) == 2
        assert scaling._tree_pids(os.getpid())[:1] == [os.getpid()] and outer.pid in scaling._tree_pids(os.getpid())
    finally:
        for pid in reversed(scaling._tree_pids(outer.pid)):
            os.kill(pid, 9)
        outer.wait()


def test_loop_speed_takes_the_machinery_out_and_examples_are_per_loop_step():
    f = scaling.figures({"train_steps_per_s": 100.0, "machinery_s": 1.0, "nll_nats": 1.5}, steps=300, batch=64)
    assert f["loop_steps_per_s"] == pytest.approx(300 / 2.0)  # 3 s of fit, 1 s of it machinery
    assert f["examples_per_s"] == pytest.approx(64 * 150)
    same = scaling.figures({"train_steps_per_s": 100.0, "machinery_s": 0.0}, steps=300, batch=64)
    assert same["loop_steps_per_s"] == pytest.approx(100.0)
    assert scaling.figures({}, steps=300, batch=64)["loop_steps_per_s"] is None  # a failed run: no figure


def test_scaling_arguments_quick_and_unknown_part():
    quick = scaling.parse_args(["--quick", "--parts", "batch,ddp"])
    assert quick.steps == 30 and quick.parts == ("batch", "ddp") and quick.batches == (64, 1024)
    full = scaling.parse_args(["--rows", "1e4,1e7"])
    assert full.rows == (10_000, 10_000_000) and full.batches == scaling.BATCHES and full.models == ("realnvp", "maf")
    with pytest.raises(SystemExit) as exc:
        scaling.parse_args(["--parts", "batch,sizes"])
    assert exc.value.code == 2


def test_gaussian_mixture_file_has_the_asked_shape_and_clusters(tmp_path):
    path = tmp_path / "gmm.npy"
    scaling.write_gaussian_mixture(path, 4000, 16, components=8)
    x = np.load(path)
    assert x.shape == (4000, 16) and x.dtype == np.float32
    # 8 separated clusters: the total variance is far above the within-component variance (<= 1 per coordinate)
    assert x.var(0).mean() > 4


def test_child_memory_is_the_childs_not_the_forking_parents(tmp_path):
    """ru_maxrss of a child carries the parent's high-water mark across exec; the sampled VmHWM must not."""
    big = np.ones(300 * 2**20 // 8)  # 300 MiB resident in this (parent) process
    big.sum()
    sleeper = [sys.executable, "-c", "import time; time.sleep(0.5)"]  # ignores the train arguments appended to it
    r = scaling.child_point([], tmp_path / "run", 1, 1, 8, timeout=60, launcher=sleeper)
    del big
    assert r["rc"] == 0 and not r["dropped"]
    assert 1 < r["peak_rss_mb"] < 100 and r["tree_peak_rss_mb"] < 100
    assert r["steps_per_s"] is None  # no scores.json: no figures


def test_child_past_its_timeout_is_stopped_and_marked_dropped(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    r = scaling.child_point([], tmp_path / "run", 1, 1, 8, timeout=0.5, launcher=sleeper)
    assert r["dropped"] and r["rc"] == -15 and r["call_s"] < 10


def test_gpu_arguments_cpu_smoke_is_tiny_unless_told_otherwise():
    assert gpu.parse_args([]).batches == gpu.BATCHES and gpu.parse_args([]).steps == 50
    smoke = gpu.parse_args(["--cpu-smoke"])
    assert smoke.batches == (8, 16) and smoke.steps == 2 and smoke.train_steps == 3
    assert gpu.parse_args(["--cpu-smoke", "--batches", "4", "--steps", "5"]).batches == (4,)
