"""blobs (known independent factors), the MIG metric, reconstruction scores, and the pictures a model
that encodes gets in its run directory (traversals, 2-D latent map)."""

import json
import math

import pytest
import torch

from deepgen.data import list_datasets, load_data
from deepgen.data.blobs import FACTORS, LEVELS, render
from deepgen.errors import ConfigError
from deepgen.evaluation.disentanglement import entropy, mig, mutual_information
from deepgen.evaluation.reconstruction import reconstruction_scores
from deepgen.evaluation.restoration import psnr_db
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def blobs():
    return load_data("blobs")


def test_blobs_images_show_their_factors(blobs):
    assert "blobs" in list_datasets()
    assert blobs.spec.shape == (1, 16, 16) and blobs.spec.levels == LEVELS
    assert blobs.sizes() == {"train": 10000, "val": 1000, "test": 1000}
    assert blobs.factor_names == tuple(FACTORS) and not blobs.has_labels
    f, x = blobs.factors["train"], blobs.train
    assert torch.equal(render(f), x)  # the split is the rendering of its factors
    values = [torch.tensor(v)[f[:, i]] for i, v in enumerate(FACTORS.values())]
    # the centre pixel is fully covered: its level is the intensity; the intensity-weighted centroid is the centre
    cx, cy = values[0].long(), values[1].long()
    centre = x[torch.arange(len(x)), 0, cy, cx]
    assert torch.equal(centre, torch.round((LEVELS - 1) * values[3]))
    grid = torch.arange(16.0)
    mass = x[:, 0].sum((1, 2))
    assert torch.allclose((x[:, 0] * grid).sum((1, 2)) / mass, values[0], atol=1e-4)
    assert torch.allclose((x[:, 0] * grid[:, None]).sum((1, 2)) / mass, values[1], atol=1e-4)
    # bigger discs cover more pixels, given the same intensity
    lit = (x[:, 0] > 0).sum((1, 2)).float()
    by_size = [lit[(f[:, 2] == s) & (f[:, 3] == 3)].mean() for s in range(4)]
    assert all(a < b for a, b in zip(by_size, by_size[1:]))
    # factors are drawn independently and cover every value
    for i, v in enumerate(FACTORS.values()):
        counts = torch.bincount(f[:, i], minlength=len(v)).float()
        assert (counts / len(f) - 1 / len(v)).abs().max() < 0.03
    assert mutual_information(f[:, 0], f[:, 2]) < 0.01
    # dropping labels keeps the factors; fixed seeds: the same data every load
    again = load_data("blobs", labels="none")
    assert torch.equal(again.test, blobs.test) and torch.equal(again.factors["test"], blobs.factors["test"])


def test_mutual_information_and_entropy_hand_values():
    a = torch.tensor([0, 0, 1, 1] * 50)
    assert entropy(a) == pytest.approx(math.log(2))
    assert mutual_information(a, a) == pytest.approx(math.log(2))
    assert mutual_information(a, torch.tensor([0, 1, 0, 1] * 50)) == pytest.approx(0.0, abs=1e-12)


def test_mig_separates_disentangled_from_entangled_codes():
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 8, (4000, 2), generator=g)
    noise = torch.randn(4000, 3, generator=g)
    clean = torch.stack([v[:, 0] + 0.05 * noise[:, 0], noise[:, 1], v[:, 1] + 0.05 * noise[:, 2]], 1)
    assert mig(clean, v)["mig"] > 0.95
    # the same information, each coordinate mixing both factors: MIG drops
    rot = torch.stack([v[:, 0] + v[:, 1], v[:, 0] - v[:, 1]], 1).float()
    assert mig(rot, v)["mig"] < 0.5
    # a copy of the informative coordinate kills the gap; a code that knows nothing scores ~0
    dup = torch.stack([v[:, 0].float(), v[:, 0].float(), v[:, 1].float()], 1)
    assert mig(dup, v)["per_factor"]["factor_0"] == pytest.approx(0.0, abs=1e-9)
    assert mig(torch.randn(4000, 4, generator=g), v)["mig"] < 0.05
    with pytest.raises(ConfigError, match="same N"):
        mig(torch.randn(10, 2), v)


def test_reconstruction_scores_and_psnr():
    assert psnr_db(1.0, 16.0) == pytest.approx(20 * math.log10(16))
    spec = load_data("digits").spec
    m = build_model("vae", spec, {"channels": 8, "latent": 2})
    x = load_data("digits").test[:40]
    s = reconstruction_scores(m, x, spec)
    expected = ((m.reconstruct(x) - x) ** 2).mean().item()
    assert s["mse"] == pytest.approx(expected, rel=1e-5) and s["peak"] == 16 and s["n"] == 40


def test_a_run_that_encodes_gets_traversals_latent_map_and_scores(tmp_path):
    cfg = TrainConfig.from_dict({"model": "vae", "data": "blobs", "steps": 3, "batch_size": 32, "eval_every": 3,
                                 "progress": False, "model_params": {"latent": 2, "channels": 8, "iw_samples": 2}})
    train(cfg, tmp_path / "run", verbose=False)
    for name in ("traversals.png", "latent_map.png", "reconstructions.png", "interpolations.png"):
        assert (tmp_path / "run" / name).stat().st_size > 1000
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert 0 <= scores["disentanglement"]["mig"] <= 1 and scores["disentanglement"]["split"] == "train"
    assert set(scores["disentanglement"]["per_factor"]) == set(FACTORS)
    assert scores["reconstruction"]["mse"] > 0 and "psnr_db" in scores["reconstruction"]
