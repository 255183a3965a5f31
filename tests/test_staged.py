"""Staged training: a model that builds on a frozen trained run records the run and its
weights' hash; training leaves the frozen run untouched; loading checks the hash."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepgen.errors import CheckpointError
from deepgen.io import load_tensors, read_yaml
from deepgen.models.base import GenerativeModel
from deepgen.models.pretrained import load_model
from deepgen.models.registry import register, unregister
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train


class ShiftedFlow(GenerativeModel):
    """log p(x) = log p_base(x - b): a learned shift b on top of a frozen trained flow."""

    name = "shifted-test"
    family = "flow"
    density = "exact"
    capabilities = frozenset({"log_prob"})

    def __init__(self, spec, base_run: str = ""):
        super().__init__(spec, base_run=base_run)
        self.shift = nn.Parameter(torch.zeros(spec.shape))
        self.build_on("base", base_run)

    def log_prob(self, x, context=None):
        return self.frozen("base").log_prob(x - self.shift)

    def sample(self, n, context=None, temperature=1.0):
        return self.frozen("base").sample(n, temperature=temperature) + self.shift.detach()


@pytest.fixture
def registered():
    register(ShiftedFlow)
    yield
    unregister("shifted-test")


def tiny(**kw):
    return TrainConfig.from_dict({"data": "moons", "batch_size": 64, "warmup_steps": 0, "eval_every": 10,
                                  "progress": False, **kw})


def test_staged_run_records_and_checks_the_frozen_run(tmp_path, registered):
    base_dir = tmp_path / "base"
    train(tiny(model="realnvp", steps=10, model_params={"couplings": 2, "hidden": 8}), base_dir, verbose=False)
    base_weights = load_tensors(base_dir / "model.safetensors")

    staged_dir = tmp_path / "staged"
    train(tiny(model="shifted-test", steps=10, lr=0.05, model_params={"base_run": str(base_dir)}), staged_dir,
          verbose=False)
    record = read_yaml(staged_dir / "config.yaml")["model_config"]["builds_on"]["base"]
    assert record["run"] == str(base_dir.resolve()) and record["model"] == "realnvp"
    assert len(record["weights_sha256"]) == 64
    # the frozen run's weights are untouched and stay out of the staged run's weights
    after = load_tensors(base_dir / "model.safetensors")
    assert all(torch.equal(base_weights[k], after[k]) for k in base_weights)
    # (its own weights, and the standardisation statistics of continuous data)
    assert set(load_tensors(staged_dir / "model.safetensors")) == {"shift", "data_loc", "data_scale"}
    model = load_model(staged_dir)
    assert model.shift.abs().sum() > 0  # the staged model itself trained
    assert all(not p.requires_grad for p in model.frozen("base").parameters())

    # change the base run: loading the staged run refuses, naming the run
    base_weights["transform.bijections.0.conditioner.net.out.bias"] += 1.0
    from deepgen.io import save_tensors

    save_tensors(base_dir / "model.safetensors", base_weights)
    with pytest.raises(CheckpointError, match="has changed since training"):
        load_model(staged_dir)


def test_building_on_a_missing_run_is_a_clear_error(tmp_path, registered):
    from deepgen.data import load_data
    from deepgen.models.registry import build_model

    with pytest.raises(CheckpointError, match="train it first"):
        build_model("shifted-test", load_data("moons").spec, {"base_run": str(tmp_path / "nowhere")})


def test_frozen_model_follows_the_device_and_dtype(tmp_path, registered):
    base_dir = tmp_path / "base"
    train(tiny(model="realnvp", steps=2, model_params={"couplings": 2, "hidden": 8}), base_dir, verbose=False)
    from deepgen.data import load_data
    from deepgen.models.registry import build_model

    model = build_model("shifted-test", load_data("moons").spec, {"base_run": str(base_dir)}).double()
    assert next(model.frozen("base").parameters()).dtype == torch.float64
    x = torch.randn(5, 2, dtype=torch.float64)
    assert model.log_prob(x).dtype == torch.float64
