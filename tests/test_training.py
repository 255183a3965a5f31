"""Training through Lightning: run directory contents, reproducibility, resume, DDP with two processes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from deepgen.data import load_data
from deepgen.evaluation.scoring import score_model
from deepgen.io import load_tensors
from deepgen.models.pretrained import load_model
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import MetricsTable
from deepgen.training.schedule import lr_factor
from deepgen.workflows.train import train
from deepgen.training.state import load_training_state

TINY = dict(model="realnvp", data="moons", batch_size=64, lr=5e-3, warmup_steps=5, eval_every=20, log_every=5, progress=False,
            model_params={"couplings": 2, "hidden": 16})


def tiny(**kw):
    return TrainConfig.from_dict({**TINY, **kw})


@pytest.fixture(scope="module")
def run40(tmp_path_factory):
    out = tmp_path_factory.mktemp("run40")
    scores = train(tiny(steps=40), out, verbose=False)
    return out, scores


def test_run_directory_contents(run40):
    out, scores = run40
    for name in ("config.yaml", "model.safetensors", "training_state.safetensors", "metrics.csv",
                 "scores.json", "samples.png", "training_curves.png", "test_scores.csv"):
        assert (out / name).is_file(), name
    assert any(f.startswith("events.") for f in os.listdir(out / "tensorboard"))
    table = MetricsTable.read(out / "metrics.csv")
    steps, val = table.column("val/nll_nats")
    assert steps == [20, 40] and all(v == v for v in val)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert scores["density"] == "exact" and scores["n"] == 2000 and scores["split"] == "test"


def test_score_reproduces_the_training_figure_exactly(run40):
    out, scores = run40
    again = score_model(load_model(out), load_data("moons"), "test", seed=0)
    assert again["nll_nats"] == scores["nll_nats"]
    assert again["bits_per_dim"] == scores["bits_per_dim"]
    assert json.loads((out / "scores.json").read_text())["nll_nats"] == scores["nll_nats"]


def test_training_reduces_nll(run40):
    out, scores = run40
    fresh = score_model(
        __import__("deepgen").build_model("realnvp", load_data("moons").spec, {"couplings": 2, "hidden": 16}),
        load_data("moons"), "test")
    assert scores["nll_nats"] < fresh["nll_nats"] - 0.3


def test_same_seed_same_weights(run40, tmp_path):
    out, _ = run40
    train(tiny(steps=40), tmp_path, verbose=False)
    a, b = load_tensors(out / "model.safetensors"), load_tensors(tmp_path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_step_count_and_schedule(run40, tmp_path, capsys):
    out, _ = run40
    train(tiny(steps=20), tmp_path, verbose=False)
    _, step, _ = load_training_state(tmp_path / "training_state.safetensors")
    assert step == 20
    resumed = train(tiny(steps=40), tmp_path, resume=True, verbose=True)
    _, step, _ = load_training_state(tmp_path / "training_state.safetensors")
    assert step == 40 and resumed["steps"] == 40
    table = MetricsTable.read(tmp_path / "metrics.csv")
    assert table.column("val/nll_nats")[0] == [20, 40]
    # the learning-rate schedule is a function of the absolute step, so it matches the uninterrupted run
    full = MetricsTable.read(out / "metrics.csv")
    assert table.column("lr")[1][-1] == pytest.approx(full.column("lr")[1][-1])
    # more steps on resume: the cosine decay is recomputed over the new total (lr back up from 0 at step 20)
    steps, lrs = table.column("lr")
    assert lrs[steps.index(20)] == 0.0  # the end of the saved 20-step schedule
    assert lrs[steps.index(25)] == pytest.approx(5e-3 * lr_factor(25, 5, 40, "cosine"))
    assert lrs[steps.index(25)] == pytest.approx(full.column("lr")[1][full.column("lr")[0].index(25)])
    now = 5e-3 * lr_factor(20, 5, 40, "cosine")
    assert (f"resume: 20 -> 40 steps; the cosine schedule now decays to 0 at step 40 "
            f"(lr at step 20: 0.0e+00 on the saved schedule -> {now:.1e} now)\n") in capsys.readouterr().err


def test_ddp_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "deepgen", "train", "--model", "realnvp", "--data", "moons", "--steps", "20",
           "--eval-every", "10", "--batch-size", "32", "--param", "couplings=2", "--param", "hidden=8",
           "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads((out / "scores.json").read_text())
    assert scores["world_size"] == 2
    assert MetricsTable.read(out / "metrics.csv").column("val/nll_nats")[0] == [10, 20]


def test_validation_does_not_change_training(tmp_path):
    """Validation draws its own randomness: weights are identical with and without it."""
    train(tiny(steps=30, eval_every=10), tmp_path / "a", verbose=False)
    train(tiny(steps=30, eval_every=30), tmp_path / "b", verbose=False)
    a, b = load_tensors(tmp_path / "a" / "model.safetensors"), load_tensors(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gan_trains_through_the_same_entry_point(tmp_path):
    scores = train(TrainConfig.from_dict({"model": "gan", "data": "ring8", "steps": 30, "eval_every": 15,
                                          "progress": False}), tmp_path, verbose=False)
    assert scores["density"] == "none" and "nll_nats" not in scores
    assert scores["modes"]["n_modes"] == 8 and "energy_distance" in scores
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "training_state.safetensors").is_file()
