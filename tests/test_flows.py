"""RealNVP as a model: normalization, dequantization, sampling, the torch.distributions bridge."""

import math

import pytest
import torch

from conftest import same_under_seed

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model


def perturbed(model, scale=0.05):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def test_fresh_flow_is_standard_normal():
    model = build_model("realnvp", DataSpec("v", (2,)))
    x = torch.randn(10, 2)
    expected = torch.distributions.Normal(0, 1).log_prob(x).sum(-1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-6)


def test_2d_density_integrates_to_one():
    """A wrong log-det would show here: sum of p(x) dx over a fine grid must be 1."""
    torch.manual_seed(0)
    model = perturbed(build_model("realnvp", DataSpec("v", (2,)), {"couplings": 4, "hidden": 16}), 0.1).eval()
    xs = torch.linspace(-9, 9, 361)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        mass = model.log_prob(pts).exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1.0) < 0.01, mass


def test_dequantized_bound_counts_the_level_jacobian():
    """At init (identity transform, no logit) log p(k) = log N((k+u)/L) - D log L, for every draw of u."""
    spec = DataSpec("img", (1, 2, 2), 4)
    model = build_model("realnvp", spec, {"scales": 1, "channels": 4, "blocks": 1, "logit_alpha": 0.0})
    k = torch.randint(0, 4, (6, 1, 2, 2)).float()
    torch.manual_seed(5)
    lp = model.log_prob(k)
    torch.manual_seed(5)
    y = (k + torch.rand_like(k)) / 4
    expected = torch.distributions.Normal(0, 1).log_prob(y).sum((1, 2, 3)) - 4 * math.log(4)
    assert torch.allclose(lp, expected, atol=1e-5)


def test_logit_preprocessing_jacobian_is_counted():
    """With logit preprocessing and an identity coupling stack, log p = log N(logit(p)) + log|dlogit/dy| - D log L."""
    alpha, levels = 0.05, 17
    spec = DataSpec("img", (1, 2, 2), levels)
    model = build_model("realnvp", spec, {"scales": 1, "channels": 4, "blocks": 1, "logit_alpha": alpha})
    k = torch.randint(0, levels, (4, 1, 2, 2)).float()
    torch.manual_seed(1)
    lp = model.log_prob(k)
    torch.manual_seed(1)
    y = (k + torch.rand_like(k)) / levels
    p = alpha + (1 - 2 * alpha) * y
    s = torch.log(p / (1 - p))
    jac = (math.log(1 - 2 * alpha) - torch.log(p) - torch.log1p(-p)).sum((1, 2, 3))
    expected = torch.distributions.Normal(0, 1).log_prob(s).sum((1, 2, 3)) + jac - 4 * math.log(levels)
    assert torch.allclose(lp, expected, atol=1e-4)


def test_samples_are_on_the_data_scale():
    model = perturbed(build_model("realnvp", DataSpec("d", (1, 8, 8), 17), {"channels": 8, "blocks": 1}))
    s = model.sample(7)
    assert s.shape == (7, 1, 8, 8)
    assert torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16


def test_temperature_scales_the_base():
    model = build_model("realnvp", DataSpec("v", (2,)))
    torch.manual_seed(0)
    s = model.sample(20000, temperature=0.5)
    assert abs(s.std().item() - 0.5) < 0.02


def test_save_load_roundtrip_is_exact(tmp_path):
    spec = DataSpec("d", (1, 8, 8), 17)
    model = perturbed(build_model("realnvp", spec, {"channels": 8, "blocks": 1})).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randint(0, 17, (5, 1, 8, 8)).float()
    assert same_under_seed(lambda: model.log_prob(x), lambda: loaded.log_prob(x), seed=9)
    assert same_under_seed(lambda: model.sample(4), lambda: loaded.sample(4), seed=2)


def test_torch_distributions_bridge():
    model = perturbed(build_model("realnvp", DataSpec("v", (2,)), {"couplings": 2, "hidden": 8}))
    dist = model.distribution()
    assert isinstance(dist, torch.distributions.Distribution)
    x = torch.randn(5, 2)
    assert torch.equal(dist.log_prob(x), model.log_prob(x))
    s = dist.rsample((3, 4))
    assert s.shape == (3, 4, 2)
    s.sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError):
        build_model("realnvp", DataSpec("d", (1, 8, 8), 17), {"channels": 4}).distribution()


def test_bad_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="divisible"):
        build_model("realnvp", DataSpec("d", (1, 6, 6), 17), {"scales": 3})
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        build_model("realnvp", DataSpec("v", (2,)), {"hiden": 3})
    with pytest.raises(ConfigError, match="integer"):
        build_model("realnvp", DataSpec("v", (2,)), {"hidden": 3.5})


def test_realnvp_refuses_parameters_of_the_other_architecture():
    image = DataSpec("img", (1, 8, 8), 17)
    with pytest.raises(ConfigError, match="'hidden' is not used by realnvp on images"):
        build_model("realnvp", image, {"hidden": 32})
    with pytest.raises(ConfigError, match="'channels' is not used by realnvp on vectors"):
        build_model("realnvp", DataSpec("v", (4,)), {"channels": 8})
    with pytest.raises(ConfigError, match="'hidden' of realnvp must be >= 1"):
        build_model("realnvp", DataSpec("v", (4,)), {"hidden": -4})
    build_model("realnvp", image, {"channels": 8, "blocks": 1})  # the image stack's own parameters
