"""Stopping training: SIGINT / SIGTERM save the current step and say how to resume (CLI exit
codes 130 / 143); a NaN or infinite loss is skipped, a run of them rolls back with the learning rate
halved, a persistent one stops with one line and leaves the last checkpoint."""

from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from deepgen.errors import TrainingError, TrainingInterrupted
from deepgen.io import load_tensors
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.registry import register, unregister
from deepgen.training.config import TrainConfig
from deepgen.training.state import load_training_state
from deepgen.workflows.train import train


class Trouble(GenerativeModel):
    """A Gaussian with a learned mean whose n-th training loss is NaN (``nan_at``; from the n-th on:
    ``nan_from``), whose n-th batch gets a NaN value (``nan_batch_at``), whose mean becomes NaN at the
    n-th loss (``nan_param_at``), or that sends itself signals during its n-th training loss
    (``signal_at``, ``signals`` times)."""

    name = "trouble-test"
    family = "flow"
    density = "exact"
    capabilities = frozenset({"log_prob"})

    def __init__(self, spec, nan_at: int = 0, signal_at: int = 0, signum: int = 2, signals: int = 1,
                 nan_from: int = 0, nan_batch_at: int = 0, nan_param_at: int = 0):
        super().__init__(spec, nan_at=nan_at, signal_at=signal_at, signum=signum, signals=signals,
                         nan_from=nan_from, nan_batch_at=nan_batch_at, nan_param_at=nan_param_at)
        self.loc = nn.Parameter(torch.zeros(spec.shape))
        self.calls = 0

    def log_prob(self, x, context=None):
        return (-0.5 * (x - self.loc) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)

    def sample(self, n, context=None, temperature=1.0):
        return self.loc.detach() + temperature * torch.randn(n, *self.spec.shape)

    def loss(self, batch):
        x, _ = unpack_batch(batch)
        self.calls += 1
        if self.calls == self.params["nan_batch_at"]:
            x = x.clone()
            x[0, 0] = float("nan")
        if self.calls == self.params["nan_param_at"]:
            with torch.no_grad():
                self.loc.fill_(float("nan"))
        nll = -self.log_prob(x).mean()
        out = {"loss": nll, "nll": nll.detach(), "kl": torch.zeros(())}
        if self.calls == self.params["nan_at"] or 0 < self.params["nan_from"] <= self.calls:
            out = {"loss": nll * float("nan"), "nll": nll.detach(), "kl": torch.tensor(float("inf"))}
        if self.calls == self.params["signal_at"]:
            for _ in range(self.params["signals"]):
                os.kill(os.getpid(), self.params["signum"])
        return out


@pytest.fixture
def trouble():
    register(Trouble)
    yield
    unregister("trouble-test")


def cfg(**kw):
    return TrainConfig.from_dict({"model": "trouble-test", "data": "moons", "steps": 1000, "batch_size": 32,
                                  "eval_every": 1000, "warmup_steps": 0, "lr": 1e-3, "progress": False, **kw})


def saved_step(out):
    return load_training_state(out / "training_state.safetensors")[1]


# --- signals through the Python API ---------------------------------------------------
def test_sigterm_saves_the_current_step_and_raises(tmp_path, trouble):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg(model_params={"signal_at": 5, "signum": int(signal.SIGTERM)}), tmp_path)
    exc = info.value
    assert exc.exit_code == 143
    head, resume = str(exc).split("\n")
    assert head == (f"interrupted at step 5 of 1000 (SIGTERM); saved {tmp_path} "
                    "(model.safetensors, training_state.safetensors, metrics.csv)")
    assert resume == f"resume with: deepgen train --resume {shlex.quote(str(tmp_path))} --steps 1000"
    assert saved_step(tmp_path) == 5 and (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1].split(",")[0] == "5"  # its row is there
    assert not (tmp_path / "scores.json").exists()
    # Lightning's handlers and ours are gone again
    assert {s: signal.getsignal(s) for s in before} == before


def test_second_signal_before_the_step_ends_aborts_without_saving(tmp_path, trouble):
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg(model_params={"signal_at": 3, "signals": 2}), tmp_path)
    assert info.value.exit_code == 130
    assert str(info.value).startswith("aborted at step 2 of 1000 (second SIGINT) without saving; ")
    assert "holds no checkpoint yet" in str(info.value)
    assert not (tmp_path / "model.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- non-finite losses ------------------------------------------------------------------
def finite_file(path) -> bool:
    return all(torch.isfinite(t).all() for t in load_tensors(path).values())


def test_a_nan_batch_is_skipped_and_counted(tmp_path, trouble):
    scores = train(cfg(steps=12, eval_every=4, model_params={"nan_batch_at": 5}), tmp_path)
    assert scores["nonfinite_steps"] == {"skipped_steps": 1, "rollbacks": 0, "lr_scale": 1.0}
    assert saved_step(tmp_path) == 12 and finite_file(tmp_path / "model.safetensors")


def test_skipping_leaves_weights_and_optimizer_untouched(tmp_path, trouble):
    """A skipped step changes nothing: 5 steps whose 5th is NaN end with the weights of 4 clean steps."""
    train(cfg(steps=4, eval_every=4, lr_schedule="constant"), tmp_path / "four")
    train(cfg(steps=5, eval_every=5, lr_schedule="constant", model_params={"nan_at": 5}), tmp_path / "five")
    four, five = (load_tensors(tmp_path / d / "model.safetensors") for d in ("four", "five"))
    assert torch.equal(four["loc"], five["loc"])


def test_a_nan_parameter_rolls_back_to_the_checkpoint_with_half_the_lr(tmp_path, trouble):
    scores = train(cfg(steps=16, eval_every=4, nan_patience=3, model_params={"nan_param_at": 6}), tmp_path)
    # steps 6, 7, 8 skipped (the mean is NaN), then back to the weights of step 4 at half the learning rate
    assert scores["nonfinite_steps"] == {"skipped_steps": 3, "rollbacks": 1, "lr_scale": 0.5}
    assert finite_file(tmp_path / "model.safetensors")
    states = load_training_state(tmp_path / "training_state.safetensors")[0]
    assert states[0]["param_groups"][0]["initial_lr"] == pytest.approx(0.5e-3)


def test_a_persistent_nan_stops_after_the_rollbacks_with_one_line(tmp_path, trouble, capfd):
    with pytest.raises(TrainingError) as info:
        train(cfg(eval_every=4, nan_patience=2, max_rollbacks=1, model_params={"nan_from": 6}), tmp_path)
    # steps 6, 7 skipped -> rollback to step 4 (then checkpointed at 8); steps 8, 9 skipped -> stop
    assert str(info.value) == ("step 9: the training loss is nan (non-finite: loss=nan, kl=inf); 2 steps in a row "
                               "after 1 rollback(s) to step 8, each halving the learning rate (now 0.0005); lower "
                               "--lr (now 0.001) or --grad-clip (now 5), or check the data for extreme values; "
                               "the run holds the checkpoint of step 8")
    assert saved_step(tmp_path) == 8 and finite_file(tmp_path / "model.safetensors")
    assert not (tmp_path / "scores.json").exists()
    assert capfd.readouterr().err == ""  # progress off: nothing on stderr


def test_nan_player_loss_stops_an_adversarial_run(tmp_path, monkeypatch):
    from deepgen.models.adversarial.gan import GAN

    calls = {"n": 0}
    original = GAN.player_loss

    def player_loss(self, name, batch, shared):
        out = original(self, name, batch, shared)
        if name == "generator" and self.training:
            calls["n"] += 1
            if calls["n"] >= 3:
                out = {**out, "loss": out["loss"] * float("inf")}
        return out

    monkeypatch.setattr(GAN, "player_loss", player_loss)
    config = TrainConfig.from_dict({"model": "gan", "data": "ring8", "steps": 1000, "eval_every": 1000,
                                    "grad_clip": 0, "progress": False, "nan_patience": 2, "max_rollbacks": 0})
    with pytest.raises(TrainingError) as info:
        train(config, tmp_path)
    msg = str(info.value)
    assert msg.startswith("step 4: the generator loss is inf (non-finite: generator_loss=inf); 2 steps in a row "
                          "(--nan-patience 2, --max-rollbacks 0); lower --lr (now ")
    assert "or set --grad-clip (now off)" in msg and msg.endswith("no checkpoint was saved yet")
    assert "\n" not in msg and not (tmp_path / "training_state.safetensors").exists()


# --- the command line, in a subprocess ----------------------------------------------------
def _start(out, *extra):
    cmd = [sys.executable, "-m", "deepgen", "train", "--model", "made", "--data", "moons", "--steps", "100000",
           "--eval-every", "1000000", "--param", "hidden=16", "--param", "num_masks=1", "--no-progress",
           "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    # the TensorBoard file is created inside trainer.fit, after the handlers are in place
    while not (out / "tensorboard").is_dir() or not any((out / "tensorboard").iterdir()):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
    time.sleep(0.5)  # a few steps
    return proc


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_cli_signal_saves_and_the_printed_command_resumes(tmp_path, signum, code):
    out = tmp_path / "run"
    proc = _start(out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    step = saved_step(out)
    assert step > 0
    name = signal.Signals(signum).name
    assert f"interrupted at step {step} of 100000 ({name}); saved {out} " in err
    command = err.split("resume with: ", 1)[1].splitlines()[0]
    assert command == f"deepgen train --resume {out} --steps 100000"
    if signum == signal.SIGTERM:
        return
    # the printed command, with a smaller budget, continues from the saved step
    from deepgen.cli import main

    argv = shlex.split(command)[1:]
    argv[argv.index("--steps") + 1] = str(step + 3)
    assert main(argv + ["--no-progress"]) == 0
    assert saved_step(out) == step + 3
