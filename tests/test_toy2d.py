"""Built-in 2-D densities: fixed splits, shapes, scale, and the mode benchmarks."""

import os
import subprocess
import sys

import pytest
import torch

from deepgen.data.spec import Splits
from deepgen.data.toy2d import MODES, TOY_DATASETS, load_toy, sample_toy
from deepgen.errors import ConfigError

NAMES = ["moons", "circles", "ring8", "grid25", "checkerboard", "spirals", "pinwheel", "rings", "swissroll"]


def test_registry_names():
    assert sorted(TOY_DATASETS) == sorted(NAMES)
    assert all(isinstance(d, str) and d for d in TOY_DATASETS.values())


@pytest.mark.parametrize("name", NAMES)
def test_splits_shapes_scale_and_determinism(name):
    s = load_toy(name)
    assert isinstance(s, Splits)
    assert s.sizes() == {"train": 10000, "val": 2000, "test": 2000}
    assert s.spec.name == name and s.spec.shape == (2,) and s.spec.levels is None
    assert s.spec.description == TOY_DATASETS[name]
    for split in ("train", "val", "test"):
        x = s.split(split)
        assert x.dtype == torch.float32 and x.shape[1:] == (2,)
        assert torch.isfinite(x).all()
        assert x.abs().max() <= 6.0
        assert x.std(0).min() > 0.3  # not collapsed to a point
    again = load_toy(name)
    for split in ("train", "val", "test"):
        assert torch.equal(s.split(split), again.split(split))
    assert not torch.equal(s.val, s.test)
    assert not torch.equal(s.train[:2000], s.test)


def test_different_datasets_differ():
    firsts = {name: load_toy(name).test[:5] for name in NAMES}
    for a in NAMES:
        for b in NAMES:
            if a < b:
                assert not torch.allclose(firsts[a], firsts[b]), (a, b)


def test_splits_identical_in_another_process():
    code = "from deepgen.data.toy2d import load_toy; print(repr(load_toy('pinwheel').val[:3].tolist()))"
    env_path = ":".join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": env_path, "PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert out == repr(load_toy("pinwheel").val[:3].tolist())


@pytest.mark.parametrize("name,k", [("ring8", 8), ("grid25", 25)])
def test_mode_datasets_sit_on_their_centers(name, k):
    centers, std = MODES[name]
    assert centers.shape == (k, 2)
    x = load_toy(name).train
    dist, nearest = torch.cdist(x, centers).min(1)
    assert (dist < 4 * std).float().mean() > 0.99
    counts = torch.bincount(nearest, minlength=k).float()
    assert counts.min() > 0.5 * len(x) / k  # every mode is populated, roughly equally


def test_mode_centers_geometry():
    ring, std = MODES["ring8"]
    assert std == 0.02
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.sort(torch.atan2(ring[:, 1], ring[:, 0]) % (2 * torch.pi)).values
    assert torch.allclose(angles.diff(), torch.full((7,), 2 * torch.pi / 8), atol=1e-5)
    grid, std = MODES["grid25"]
    assert std == 0.05
    values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    assert {tuple(p) for p in grid.tolist()} == {(a, b) for a in values.tolist() for b in values.tolist()}


@pytest.mark.parametrize("name", NAMES)
def test_sample_toy_uses_generator(name):
    a = sample_toy(name, 7, torch.Generator().manual_seed(1))
    b = sample_toy(name, 7, torch.Generator().manual_seed(1))
    c = sample_toy(name, 7, torch.Generator().manual_seed(2))
    assert a.shape == (7, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_checkerboard_lies_on_dark_squares():
    x = load_toy("checkerboard").train
    cell = torch.floor(x / 2).long()  # 2x2 squares indexed -2..1
    parity = (cell[:, 0] + cell[:, 1]) % 2
    assert (parity == parity[0]).all()
    assert x.min() >= -4 and x.max() <= 4


def test_unknown_name_suggests():
    with pytest.raises(ConfigError, match="did you mean 'moons'"):
        load_toy("moon")
    with pytest.raises(ConfigError, match="unknown dataset"):
        sample_toy("nope", 3, torch.Generator())
