"""Several optimizer steps per call of Lightning's training step (--steps-per-call): the same run, cheaper."""

import pytest
import torch

from deepgen.data import load_data
from deepgen.errors import ConfigError
from deepgen.io import load_tensors
from deepgen.models.registry import build_model
from deepgen.training.adapters import adapter_for
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import MetricsTable
from deepgen.training.sampler import StepBatches
from deepgen.training.state import load_training_state
from deepgen.training.steps_per_call import choose_steps_per_call
from deepgen.workflows.train import train

TINY = dict(model="realnvp", data="moons", batch_size=64, lr=5e-3, warmup_steps=5, eval_every=20, log_every=5,
            model_params={"couplings": 2, "hidden": 16})


def tiny(**kw):
    return TrainConfig.from_dict({**TINY, **kw})


def test_several_steps_per_call_train_exactly_like_one(tmp_path):
    """43 steps (8 calls of 5, then one of 3) give the weights, optimizer state and metrics rows of 43 calls of 1."""
    one = train(tiny(steps=43, steps_per_call=1), tmp_path / "one")
    five = train(tiny(steps=43, steps_per_call=5), tmp_path / "five")
    a, b = load_tensors(tmp_path / "one" / "model.safetensors"), load_tensors(tmp_path / "five" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    (opt_a,), step_a, _ = load_training_state(tmp_path / "one" / "training_state.safetensors")
    (opt_b,), step_b, _ = load_training_state(tmp_path / "five" / "training_state.safetensors")
    assert step_a == step_b == 43
    assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"])
    ta, tb = MetricsTable.read(tmp_path / "one" / "metrics.csv"), MetricsTable.read(tmp_path / "five" / "metrics.csv")
    for column in ("train/loss", "lr", "val/nll_nats"):
        assert ta.column(column) == tb.column(column), column
    assert ta.column("train/loss")[0][:3] == [1, 5, 10]  # the first row is still step 1's
    assert one["nll_nats"] == five["nll_nats"]


def _module(name, data="moons", **cfg):
    spec = load_data(data).spec
    config = TrainConfig.from_dict({"model": name, "data": data, **cfg})
    return config, adapter_for(build_model(name, spec, {}), config), spec


@pytest.mark.parametrize("cfg, offset, expected", [
    ({}, 0, 25),  # eval 500, log 25
    ({"eval_every": 20, "log_every": 5}, 0, 5),
    ({"checkpoint_every": 7}, 0, 1),
    ({}, 30, 5),  # resumed at step 30: calls end on multiples of 5
    ({"eval_every": 100, "log_every": 50}, 0, 25),
    ({"eval_every": 60, "log_every": 30}, 0, 15),
    ({"steps_per_call": 5}, 0, 5),
    ({"steps_per_call": 1}, 0, 1),
    ({"devices": 2}, 0, 1),  # several processes: one step per call
])
def test_automatic_choice(cfg, offset, expected):
    config, module, spec = _module("realnvp", **cfg)
    assert choose_steps_per_call(config, module, spec, offset) == expected


def test_images_and_adversarial_models_take_one_step_per_call():
    config, module, spec = _module("made", data="digits")
    assert choose_steps_per_call(config, module, spec) == 1  # images: steps long enough already
    config, module, spec = _module("made", data="digits", steps_per_call=5)
    assert choose_steps_per_call(config, module, spec) == 5  # asked for
    config, module, spec = _module("gan")
    assert choose_steps_per_call(config, module, spec) == 1
    config, module, spec = _module("gan", steps_per_call=5)
    with pytest.raises(ConfigError, match="--steps-per-call .* 5: --model gan cannot take it"):
        choose_steps_per_call(config, module, spec)


def test_steps_per_call_must_divide_the_cadences():
    with pytest.raises(ConfigError, match=r"--steps-per-call / field 'steps_per_call' must divide --eval-every"):
        TrainConfig.from_dict({"model": "realnvp", "data": "moons", "steps_per_call": 8})
    with pytest.raises(ConfigError, match=r"must divide field 'log_every' \(25\), got 10"):
        TrainConfig.from_dict({"model": "realnvp", "data": "moons", "steps_per_call": 10, "eval_every": 100})
    with pytest.raises(ConfigError, match=r"--steps-per-call / field 'steps_per_call' must be >= 0, got -1"):
        TrainConfig.from_dict({"model": "realnvp", "data": "moons", "steps_per_call": -1})


@pytest.mark.parametrize("n, batch, start", [(50, 8, 0), (50, 8, 3), (20, 32, 2), (64, 8, 5)])
def test_grouped_batches_are_the_consecutive_batches(n, batch, start):
    single = StepBatches(n, batch, seed=3)
    grouped = StepBatches(n, batch, seed=3, start=start, group=4)
    items = [t for _ in range(3) for t in grouped]  # three passes: groups run across epochs
    assert len(items) == 3 * len(grouped)
    for i, item in enumerate(items):
        expected = torch.cat([single.batch(start + 4 * i + j) for j in range(4)])
        assert torch.equal(item, expected)


@pytest.mark.parametrize("flush", [True, False])
def test_denormals_are_flushed_while_training_only(tmp_path, monkeypatch, flush):
    calls = []
    real = torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda mode: calls.append(mode) or real(mode))
    train(tiny(steps=5, flush_denormal=flush), tmp_path / "r")
    assert calls == ([True, False] if flush else [])
    assert torch.tensor(1e-39).item() != 0.0  # torch's default again: denormals kept
