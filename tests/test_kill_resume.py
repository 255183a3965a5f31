"""Promise 1: ``kill -9`` at any moment, then ``--resume``, ends with the weights of the uninterrupted run, bit
for bit (same machine, same thread count), and the run directory is usable after every kill.

Each case trains the same command twice in a subprocess (``deepgen train``): once uninterrupted, once killed with
SIGKILL at a random moment after its first checkpoint, then resumed with ``--resume``; the final weights, the
training state and the test NLL must be equal.  The data order after a resume continues the uninterrupted run's
(:mod:`deepgen.training.sampler`), also for the extra batches of a WGAN critic.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from deepgen.io import COMMIT_JOURNAL, finish_commit, load_tensors, save_tensors
from deepgen.training.sampler import StepBatches
from deepgen.training.state import load_training_state

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def deepgen(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "deepgen", *args], env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"deepgen {' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def kill_after_checkpoint(cmd, out, delay: float) -> int:
    """Start ``deepgen train`` and SIGKILL it ``delay`` seconds after its first checkpoint; the step it holds."""
    proc = subprocess.Popen([sys.executable, "-m", "deepgen", *cmd], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = out / "training_state.safetensors"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return load_training_state(state)[1]


def same_files(a, b, name) -> bool:
    x, y = load_tensors(a / name), load_tensors(b / name)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def kill_and_resume(tmp_path, train_args, delays):
    """``delays``: seconds after the first checkpoint, or a callable(duration of the full run) giving them."""
    full = tmp_path / "full"
    t0 = time.monotonic()
    deepgen("train", *train_args, "--no-progress", "--out", str(full))
    if callable(delays):
        delays = delays(time.monotonic() - t0)
    held = []
    for i, delay in enumerate(delays):
        run = tmp_path / f"killed{i}"
        cmd = ["train", *train_args, "--no-progress", "--out", str(run)]
        step = kill_after_checkpoint(cmd, run, delay)
        held.append(step)
        assert json.loads(deepgen("score", str(run)).stdout)["model"]  # usable right after the kill
        if step < int(train_args[train_args.index("--steps") + 1]):
            deepgen("train", "--resume", str(run), "--no-progress")
        assert same_files(full, run, "model.safetensors"), f"kill at checkpoint {step}: weights differ"
        assert same_files(full, run, "training_state.safetensors")
        # killed after the last checkpoint but before the report: the weights are final, `deepgen score` gives the figure
        scores = (json.loads((run / "scores.json").read_text()) if (run / "scores.json").is_file()
                  else json.loads(deepgen("score", str(run)).stdout))
        assert json.loads((full / "scores.json").read_text()).get("nll_nats") == scores.get("nll_nats")
    return held


# --- the pieces, fast ----------------------------------------------------------------------
def test_batch_order_is_a_function_of_the_step():
    whole = StepBatches(50, 8, seed=3)
    seen = [b.tolist() for _ in range(3) for b in whole]  # three epochs, 6 batches each (the last 2 rows dropped)
    assert len(seen) == 18 and all(len(b) == 8 for b in seen)
    assert sorted(i for b in seen[:6] for i in b) == sorted(set(i for b in seen[:6] for i in b))  # no repeats
    assert seen[:6] != seen[6:12]  # a new permutation each epoch
    for start in (0, 5, 6, 13):
        resumed = StepBatches(50, 8, seed=3, start=start)
        again = [b.tolist() for _ in range(3) for b in resumed][: 18 - start]
        assert again == seen[start:], start
        assert resumed.batch(start).tolist() == seen[start]
    assert [b.tolist() for b in StepBatches(50, 8, seed=3, stream=1)][:6] != seen[:6]
    assert [b.tolist() for b in StepBatches(50, 8, seed=4)][:6] != seen[:6]


def test_a_half_committed_checkpoint_is_completed(tmp_path):
    """A process killed between the renames of a checkpoint leaves a journal; the next use finishes it."""
    for name in ("model.safetensors", "training_state.safetensors"):
        save_tensors(tmp_path / name, {"step": torch.tensor([1])})
    for name in ("model.safetensors", "training_state.safetensors"):  # the new versions, written, not renamed
        save_tensors(tmp_path / f".{name}.abc.tmp", {"step": torch.tensor([2])})
    (tmp_path / COMMIT_JOURNAL).write_text(json.dumps([[".model.safetensors.abc.tmp", "model.safetensors"],
                                                       [".training_state.safetensors.abc.tmp",
                                                        "training_state.safetensors"]]))
    os.replace(tmp_path / ".model.safetensors.abc.tmp", tmp_path / "model.safetensors")  # killed after one
    (tmp_path / ".metrics.csv.zzz.tmp").write_text("half a file")  # a write cut short
    assert finish_commit(tmp_path)
    for name in ("model.safetensors", "training_state.safetensors"):
        assert load_tensors(tmp_path / name)["step"].item() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "training_state.safetensors"]
    assert not finish_commit(tmp_path)


def test_journal_naming_another_folder_is_refused(tmp_path):
    (tmp_path / COMMIT_JOURNAL).write_text(json.dumps([["../x.tmp", "model.safetensors"]]))
    with pytest.raises(Exception, match="cannot complete an interrupted checkpoint"):
        finish_commit(tmp_path)


def test_checkpoint_every_writes_on_its_cadence(tmp_path):
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    cfg = TrainConfig.from_dict({"model": "made", "data": "moons", "steps": 30, "eval_every": 100,
                                 "checkpoint_every": 7, "batch_size": 32, "log_every": 100,
                                 "model_params": {"hidden": 8}})
    train(cfg, tmp_path / "r")
    steps = [int(line.split(",")[0]) for line in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]]
    assert {7, 14, 21, 28, 30} <= set(steps)


def test_checkpoint_minutes_writes_on_the_clock(tmp_path, monkeypatch):
    from deepgen.training.config import TrainConfig
    from deepgen.workflows import run_writer, train as train_module

    saved = []
    original = run_writer.RunWriter.checkpoint

    def checkpoint(self, trainer, module):
        saved.append(module.absolute_step)
        return original(self, trainer, module)

    monkeypatch.setattr(run_writer.RunWriter, "checkpoint", checkpoint)
    cfg = TrainConfig.from_dict({"model": "made", "data": "moons", "steps": 12, "eval_every": 100,
                                 "checkpoint_minutes": 1e-9, "batch_size": 32, "model_params": {"hidden": 8},
                                 "steps_per_call": 1})
    train_module.train(cfg, tmp_path / "r")
    # every step is "a minute" later here; the last step is checkpointed by its validation and the end
    assert saved[:11] == list(range(1, 12)) and set(saved[11:]) == {12}
    # with several steps per call of the training step, the clock is read between calls
    saved.clear()
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "steps_per_call": 4, "log_every": 4})
    train_module.train(cfg, tmp_path / "r4")
    assert saved[:2] == [4, 8] and set(saved[2:]) == {12}


# --- the promise, end to end -------------------------------------------------------------------
def test_kill_9_then_resume_is_bit_identical(tmp_path):
    held = kill_and_resume(tmp_path, ["--model", "realnvp", "--data", "moons", "--steps", "240", "--eval-every", "100",
                                      "--checkpoint-every", "15", "--batch-size", "64"], delays=[1.0])
    assert held[0] >= 15


@pytest.mark.slow
@pytest.mark.parametrize("model,extra", [
    ("realnvp", ["--data", "digits", "--steps", "400", "--checkpoint-every", "25"]),
    ("wgan", ["--data", "ring8", "--steps", "300", "--checkpoint-every", "20"]),
    ("vae", ["--data", "digits", "--steps", "400", "--checkpoint-every", "25"]),
])
def test_kill_9_at_random_moments_then_resume_is_bit_identical(tmp_path, model, extra):
    rng = random.Random(model)
    held = kill_and_resume(tmp_path, ["--model", model, "--eval-every", "150", *extra],
                           delays=lambda seconds: [rng.uniform(0.0, 0.6 * seconds) for _ in range(3)])
    print(f"{model}: killed with checkpoints of steps {held}; every resume bit-identical")
