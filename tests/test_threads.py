"""How many CPU threads a run uses: --threads, else OMP_NUM_THREADS, else 1 for vector data and torch's
setting for images; train() puts the caller's setting back afterwards and records its own in scores.json."""

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train, training_threads

VECTORS, IMAGES = DataSpec("moons", (2,), None), DataSpec("digits", (1, 8, 8), 17)


def test_the_rule(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpu = dict(model="realnvp", data="moons", accelerator="cpu")
    assert training_threads(TrainConfig(**cpu, threads=3), VECTORS) == 3
    assert training_threads(TrainConfig(**cpu), VECTORS) == 1
    assert training_threads(TrainConfig(**cpu), IMAGES) == torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert training_threads(TrainConfig(**cpu), VECTORS) == 2
    assert training_threads(TrainConfig(**cpu, threads=1), IMAGES) == 1


def test_train_restores_the_callers_threads_and_records_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    scores = train(TrainConfig(model="made", data="moons", steps=3, batch_size=32, eval_every=3, threads=2,
                               model_params={"hidden": 8}), tmp_path / "r")
    assert scores["threads"] == 2 and torch.get_num_threads() == before


def test_threads_must_not_be_negative():
    from deepgen.errors import ConfigError

    with pytest.raises(ConfigError, match="--threads"):
        TrainConfig(model="made", data="moons", threads=-1).check()


def test_a_refused_run_directory_leaves_the_callers_threads_alone(tmp_path, monkeypatch):
    from deepgen.errors import ConfigError

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = dict(model="made", data="moons", steps=3, batch_size=32, eval_every=3, threads=2,
               model_params={"hidden": 8})
    train(TrainConfig(**cfg), tmp_path / "r")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # differs from the run's 2, so a leak would show
    try:
        with pytest.raises(ConfigError, match="already holds a run"):
            train(TrainConfig(**cfg), tmp_path / "r")  # no --overwrite
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
