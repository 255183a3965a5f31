"""NICE: additive couplings (volume preserving) plus the diagonal scaling layer; bijection properties,
normalisation, identity at init, images as vectors, save/load, training, CLI."""

import math

import pytest
import torch

from bijection_checks import arc_data, check_bijection, jacobian_logdet, nll_before_and_after_training, perturb
from conftest import same_under_seed

from deepgen.bijections import AffineCoupling, Compose, DiagonalScaling, alternating_mask
from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.nice import KeptToShift
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import MLP


def additive_coupling(d=5, ctx=0, parity=1):
    mask = alternating_mask(d, parity)
    kept = int(mask.sum())
    return AffineCoupling(mask, KeptToShift(mask, MLP(kept, d - kept, 12, 2, ctx, zero_init=True)), affine=False)


@pytest.mark.parametrize("ctx", [0, 3])
def test_additive_coupling_is_a_volume_preserving_bijection(ctx):
    layer = perturb(additive_coupling(5, ctx)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    c = torch.randn(4, ctx, dtype=torch.float64) if ctx else None
    check_bijection(layer, x, c)
    y, ld = layer(x, c)
    assert torch.equal(ld, torch.zeros(4, dtype=torch.float64))
    assert not torch.allclose(y, x)
    kept = alternating_mask(5, 1).bool()
    assert torch.equal(y[:, kept], x[:, kept])  # the kept half passes through


def test_diagonal_scaling_is_a_bijection_with_log_det_sum_s():
    layer = perturb(DiagonalScaling(4)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    check_bijection(layer, x)
    z, ld = layer(x)
    assert torch.allclose(z, x * layer.log_scale.exp())
    assert torch.allclose(ld, layer.log_scale.sum().expand(3))


@pytest.mark.parametrize("ctx", [0, 2])
def test_transform_is_a_bijection(ctx):
    model = perturb(build_model("nice", DataSpec("v", (5,)), {"couplings": 4, "hidden": 12, "depth": 2,
                                                             "context_features": ctx}), 0.2)
    x = torch.randn(3, 5, dtype=torch.float64)
    c = torch.randn(3, ctx, dtype=torch.float64) if ctx else None
    check_bijection(model.transform.double(), x, c)


def test_only_the_scaling_changes_volume():
    """The coupling stack has |det J| = 1 (autograd Jacobian); the flow's log-det is sum s for every x."""
    model = perturb(build_model("nice", DataSpec("v", (6,)), {"hidden": 16, "depth": 2}), 0.3).double()
    layers = list(model.transform.bijections)
    assert isinstance(layers[-1], DiagonalScaling) and len(layers) == 5
    couplings = Compose(layers[:-1])
    x = 3 * torch.randn(5, 6, dtype=torch.float64)
    y, ld = couplings(x)
    assert not torch.allclose(y, x)
    assert torch.equal(ld, torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(jacobian_logdet(couplings, x, None), torch.zeros(5, dtype=torch.float64), atol=1e-10)
    _, total = model.transform(x)
    assert torch.allclose(total, layers[-1].log_scale.sum().expand(5))


def test_fresh_flow_is_the_identity():
    model = build_model("nice", DataSpec("v", (3,)))
    x = torch.randn(10, 3)
    z, ld = model.transform(x)
    assert torch.equal(z, x) and torch.equal(ld, torch.zeros(10))


def test_2d_density_integrates_to_one():
    model = perturb(build_model("nice", DataSpec("v", (2,)), {"hidden": 16, "depth": 2}), 0.1)
    xs = torch.linspace(-9, 9, 241)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        lp = model.log_prob(pts)
    mass = lp.exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1.0) < 0.01, mass
    assert (lp - torch.distributions.Normal(0, 1).log_prob(pts).sum(1)).abs().max() > 0.1


def test_images_are_modelled_as_vectors_with_logit_preprocessing():
    """At init: log p(k) = log N(logit(p)) + log|dlogit/dy| - D log L, p = alpha + (1 - 2 alpha)(k + u) / L."""
    alpha, levels = 0.05, 17
    model = build_model("nice", DataSpec("img", (1, 2, 2), levels), {"hidden": 8, "depth": 1, "logit_alpha": alpha})
    assert model.base.shape == (4,)
    k = torch.randint(0, levels, (4, 1, 2, 2)).float()
    torch.manual_seed(1)
    lp = model.log_prob(k)
    torch.manual_seed(1)
    p = alpha + (1 - 2 * alpha) * (k + torch.rand_like(k)) / levels
    s = torch.log(p / (1 - p))
    jac = (math.log(1 - 2 * alpha) - torch.log(p) - torch.log1p(-p)).sum((1, 2, 3))
    expected = torch.distributions.Normal(0, 1).log_prob(s).sum((1, 2, 3)) + jac - 4 * math.log(levels)
    assert torch.allclose(lp, expected, atol=1e-4)
    s = perturb(model).sample(6)
    assert s.shape == (6, 1, 2, 2) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16


def test_save_load_reproduces_log_prob_exactly(tmp_path):
    spec = DataSpec("d", (1, 4, 4), 17)
    model = perturb(build_model("nice", spec, {"hidden": 16, "depth": 2}), 0.1).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randint(0, 17, (5, 1, 4, 4)).float()
    assert same_under_seed(lambda: model.log_prob(x), lambda: loaded.log_prob(x), seed=9)
    assert same_under_seed(lambda: model.sample(4), lambda: loaded.sample(4), seed=2)


def test_short_training_lowers_the_nll():
    torch.manual_seed(0)
    model = build_model("nice", DataSpec("v", (2,)), {"hidden": 32, "depth": 2})
    before, after = nll_before_and_after_training(model, arc_data())
    assert after < before - 0.3, (before, after)


def test_config_errors():
    with pytest.raises(ConfigError, match="nice needs at least 2 dimensions"):
        build_model("nice", DataSpec("v", (1,)))
    with pytest.raises(ConfigError, match="'logit_alpha' is not used by nice on vectors"):
        build_model("nice", DataSpec("v", (3,)), {"logit_alpha": 0.1})
    with pytest.raises(ConfigError, match=r"nice expects vectors \(D,\) or images"):
        build_model("nice", DataSpec("m", (3, 4)))


def test_cli_train_on_moons(tmp_path):
    out = tmp_path / "nice"
    assert main(["train", "--model", "nice", "--data", "moons", "--steps", "20", "--eval-every", "10", "--param",
                 "hidden=8", "--param", "depth=1", "--no-progress", "--warmup-steps", "5", "--out", str(out)]) == 0
    assert (out / "scores.json").exists() and (out / "samples.png").exists()
    assert main(["score", str(out)]) == 0
