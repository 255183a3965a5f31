"""Variational dequantization: q(u | k) is a normalised density on the unit cube, the reported
figure is log p_Y((k + u) / L) - log q(u | k) - D log L for the drawn u, and it bounds log P(k)."""

import math

import pytest
import torch
from bijection_checks import perturb

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.dequantizer import VariationalDequantizer
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model


def cell_grid(n):
    """Midpoints of an n x n grid on the unit square and the cell area."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    a, b = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], 1), 1.0 / n**2


def test_q_is_a_normalised_density_on_the_unit_square_and_sample_agrees_with_log_prob():
    torch.manual_seed(0)
    deq = perturb(VariationalDequantizer(DataSpec("v", (2,), 4), couplings=3, hidden=8), 0.1).double()
    k = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    u, area = cell_grid(400)
    mass = deq.log_prob(u, k.expand(len(u), -1)).exp().sum().item() * area
    assert mass == pytest.approx(1.0, abs=5e-3)
    u, log_q = deq.sample(k.expand(64, -1))
    assert ((u > 0) & (u < 1)).all()
    assert torch.allclose(log_q, deq.log_prob(u, k.expand(64, -1)), atol=1e-8)


def test_fresh_q_is_logit_normal_and_image_q_depends_on_k():
    deq = VariationalDequantizer(DataSpec("i", (1, 4, 4), 5))
    k = torch.randint(0, 5, (3, 1, 4, 4)).float()
    torch.manual_seed(1)
    u, log_q = deq.sample(k)
    torch.manual_seed(1)
    eps = torch.randn(3, 1, 4, 4)
    assert torch.allclose(u, torch.sigmoid(eps), atol=1e-6)  # zero-initialised couplings
    logit_normal = (torch.distributions.Normal(0, 1).log_prob(eps) - torch.log(u * (1 - u))).sum((1, 2, 3))
    assert torch.allclose(log_q, logit_normal, atol=1e-4)
    perturb(deq, 0.2)
    torch.manual_seed(2)
    a, _ = deq.sample(k)
    torch.manual_seed(2)
    b, _ = deq.sample((k + 1) % 5)
    assert not torch.allclose(a, b)  # the conditioners see k


def test_flow_reports_the_variational_bound_for_the_drawn_noise():
    spec = DataSpec("v", (2,), 3)
    model = perturb(build_model("realnvp", spec, {"couplings": 2, "hidden": 8, "dequantization": "variational"}), 0.2)
    k = torch.randint(0, 3, (5, 2)).float()
    torch.manual_seed(4)
    lp = model.log_prob(k)
    torch.manual_seed(4)
    u, log_q = model.dequantizer.sample(k)
    z, ld = model.transform((k + u) / 3)
    expected = model.base.log_prob(z) + ld - 2 * math.log(3) - log_q
    assert torch.allclose(lp, expected, atol=1e-5)


def test_the_figure_is_a_lower_bound_on_log_P_k():
    """log P(k) = log of the integral of p_Y over the cell of k, minus D log L (quadrature); the mean
    of the reported figure over many draws of u ~ q(u | k) must not exceed it (Jensen)."""
    torch.manual_seed(0)
    spec = DataSpec("v", (2,), 3)
    model = perturb(build_model("realnvp", spec, {"couplings": 3, "hidden": 8, "dequantization": "variational"}),
                    0.3).double()
    u, area = cell_grid(200)
    for cell in ([0.0, 2.0], [1.0, 1.0]):
        k = torch.tensor([cell], dtype=torch.float64)
        z, ld = model.transform((k + u) / 3)
        log_p_cell = torch.logsumexp(model.base.log_prob(z) + ld, 0).item() + math.log(area) - 2 * math.log(3)
        with torch.no_grad():
            bound = model.log_prob(k.expand(4000, -1)).mean().item()
        assert bound <= log_p_cell + 1e-3, (cell, bound, log_p_cell)


def test_training_the_dequantizer_tightens_the_bound():
    """With p_Y fixed, maximising the bound over q moves it up towards log P(k)."""
    torch.manual_seed(0)
    spec = DataSpec("v", (2,), 3)
    model = perturb(build_model("realnvp", spec, {"couplings": 2, "hidden": 8, "dequantization": "variational"}), 0.3)
    k = torch.randint(0, 3, (256, 2)).float()
    with torch.no_grad():
        before = model.log_prob(k).mean().item()
    opt = torch.optim.Adam(model.dequantizer.parameters(), lr=1e-2)
    for _ in range(150):
        loss = -model.log_prob(k).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = model.log_prob(k).mean().item()
    assert after > before + 0.05, (before, after)


def test_save_load_and_refusals(tmp_path):
    spec = DataSpec("d", (1, 4, 4), 5)
    model = perturb(build_model("realnvp", spec, {"scales": 1, "channels": 4, "dequantization": "variational"}), 0.05)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    k = torch.randint(0, 5, (4, 1, 4, 4)).float()
    torch.manual_seed(3)
    a = model.log_prob(k)
    torch.manual_seed(3)
    assert torch.equal(a, loaded.log_prob(k)) and loaded.dequantization == "variational"
    with pytest.raises(ConfigError, match="needs discrete data"):
        build_model("realnvp", DataSpec("c", (2,)), {"dequantization": "variational"})
    with pytest.raises(ConfigError, match="uniform, variational"):
        build_model("realnvp", spec, {"dequantization": "learned"})
