"""Planar and radial flows: the invertibility constraints, the numerical inverse and its
gradients, both directions of the model agreeing, and training on moons."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.func import functional_call

from bijection_checks import check_bijection, perturb
from conftest import same_under_seed

from deepgen.bijections import Compose, PlanarLayer, RadialLayer
from deepgen.bijections.planar import solve_planar
from deepgen.cli import main
from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model

LAYERS = {"planar": PlanarLayer, "radial": RadialLayer}


pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(model, scale=0.3):
    return perturb(model, scale, seed=3)


def set_planar(layer, u, w, b=0.0):
    with torch.no_grad():
        layer.u.copy_(torch.as_tensor(u, dtype=layer.u.dtype))
        layer.w.copy_(torch.as_tensor(w, dtype=layer.w.dtype))
        layer.b.fill_(b)
    return layer


# --- bijection contract -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["planar", "radial"])
@pytest.mark.parametrize("d", [1, 3])
def test_single_layer_is_a_bijection(kind, d):
    layer = perturb(LAYERS[kind](d).double(), scale=0.5)
    x = 1.5 * torch.randn(16, d, dtype=torch.float64)
    check_bijection(layer, x)


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_stacked_layers_are_a_bijection(kind):
    stack = perturb(Compose([LAYERS[kind](4) for _ in range(5)]).double(), scale=0.5)
    check_bijection(stack, 1.5 * torch.randn(12, 4, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_a_strongly_nonlinear_layer_is_a_bijection(kind):
    layer = LAYERS[kind](2).double()
    if kind == "planar":  # a steep fold: w.u_hat close to -1 and |w| large
        set_planar(layer, [-3.0, 0.2], [4.0, 0.0], 0.3)
    else:  # strong contraction towards z0
        with torch.no_grad():
            layer.beta_raw.fill_(-6.0)
    check_bijection(layer, torch.randn(32, 2, dtype=torch.float64), logdet_atol=1e-6)


@pytest.mark.parametrize("layer", [PlanarLayer, RadialLayer], ids=["planar", "radial"])
def test_log_prob_gradients_match_finite_differences(layer):
    """Gradients of the inverse direction (planar: the implicit-function-theorem gradient of the
    numerical inverse), checked by torch.autograd.gradcheck."""
    stack = perturb(Compose([layer(3) for _ in range(3)]).double(), scale=0.5)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in stack.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in stack.named_parameters()]

    def log_prob(x, *ps):
        z, ld = functional_call(stack, dict(zip(names, ps)), (x,))
        return -0.5 * z.square().sum(1) + ld

    assert torch.autograd.gradcheck(log_prob, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


# --- the invertibility constraints -------------------------------------------------------

def test_planar_constraint_holds_for_arbitrary_raw_parameters():
    g = torch.Generator().manual_seed(0)
    layer = PlanarLayer(3).double()
    cases = []
    for _ in range(200):
        w = torch.randn(3, generator=g, dtype=torch.float64) * 10 ** torch.empty(1).uniform_(-6, 6, generator=g)
        u = torch.randn(3, generator=g, dtype=torch.float64) * 10 ** torch.empty(1).uniform_(-6, 8, generator=g)
        cases.append((u, w))
        lam = 10 ** torch.empty(1, dtype=torch.float64).uniform_(-3, 8, generator=g)
        cases.append((-lam * w + 1e-3 * u, w))  # u pointing against w
    cases += [(torch.tensor([-1e30, 0, 0]), torch.tensor([1e-10, 0, 0])), (torch.tensor([5.0, 1, 1]), torch.zeros(3))]
    for u, w in cases:
        set_planar(layer, u, w)
        u_hat, k = layer.constrained()
        assert k >= -1, (u, w, k)
        wu_hat = (layer.w * u_hat).sum()
        scale = 1 + (layer.w.abs() * layer.u.abs()).sum()
        assert wu_hat >= -1 - 1e-12 * scale, (u, w, wu_hat)
        assert torch.isfinite(u_hat).all()
    set_planar(layer, [5.0, 1, 1], [0.0, 0, 0], 0.7)  # w = 0: the translation x = z + u tanh(b)
    x, ld = layer.inverse(torch.zeros(2, 3, dtype=torch.float64))
    assert torch.allclose(x, math.tanh(0.7) * torch.tensor([5.0, 1, 1], dtype=torch.float64)) and torch.all(ld == 0)


def test_radial_constraint_holds_for_arbitrary_raw_parameters():
    layer = RadialLayer(2)
    for a in [-1e4, -50.0, -3.0, 0.0, 2.0, 80.0, 1e4]:
        for b in [-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 30.0, 1e4]:
            with torch.no_grad():
                layer.alpha_raw.fill_(a)
                layer.beta_raw.fill_(b)
            alpha, beta = layer.constrained()
            assert alpha >= 0 and beta >= -alpha and alpha + beta >= 0, (a, b, alpha, beta)


# --- the numerical inverse ---------------------------------------------------------------

def bisect(s, k, b, iters=100):
    lo, hi = s - k.abs(), s + k.abs()
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        f = mid + k * torch.tanh(mid + b) - s
        lo, hi = torch.where(f < 0, mid, lo), torch.where(f < 0, hi, mid)
    return 0.5 * (lo + hi)


def test_solver_reaches_the_stated_tolerance():
    """|a - a*| <= 1e-10 (1 + |a*|) + 1e-15 (|s| + |k|) / f'(a*) (the second term: float64 rounding of f),
    for k from close to -1 to huge, against plain bisection."""
    g = torch.Generator().manual_seed(1)
    a_true = torch.cat([torch.randn(300, generator=g, dtype=torch.float64) * 5, torch.linspace(-2, 2, 101).double()])
    b = torch.tensor(0.3, dtype=torch.float64)
    k = torch.tensor([-1 + 1e-3, -0.5, 0.0, 3.0, 1e3, 1e7], dtype=torch.float64)[:, None]
    s = a_true + k * torch.tanh(a_true + b)
    a = solve_planar(s, k, b)
    ref = bisect(s, k, b)
    fp = 1 + k * (1 - torch.tanh(ref + b) ** 2)
    assert ((a - ref).abs() <= 1e-10 * (1 + ref.abs()) + 1e-15 * (s.abs() + k.abs()) / fp).all()


def test_solver_at_the_degenerate_boundary():
    """w.u_hat = -1 exactly: f is cubic at a* = -b, the root is only determined to ~eps^(1/3), the residual stays tiny."""
    b = torch.tensor(0.3, dtype=torch.float64)
    k = torch.tensor(-1.0, dtype=torch.float64)
    a_true = torch.cat([torch.tensor([-0.3]), -0.3 + torch.logspace(-8, 0, 60), -0.3 - torch.logspace(-8, 0, 60)]).double()
    s = a_true + k * torch.tanh(a_true + b)
    a = solve_planar(s, k, b)
    assert (a - a_true).abs().max() < 1e-4
    assert (a + k * torch.tanh(a + b) - s).abs().max() < 1e-14


def test_layer_round_trip_near_the_degenerate_boundary():
    """u against w: w.u_hat = -1 + softplus(-40) = -1 in float64; the inverse still reproduces the data."""
    layer = set_planar(PlanarLayer(2).double(), [-40.0, 0.5], [1.0, 0.0], 0.1)
    assert layer.constrained()[1] == -1
    z = torch.cat([torch.randn(50, 2, dtype=torch.float64), torch.tensor([[-0.1, 0.3]], dtype=torch.float64)])
    x, _ = layer.inverse(z)
    z2, _ = layer(x)
    x2, _ = layer.inverse(z2)
    assert (x2 - x).abs().max() < 1e-12
    assert (z2 - z).abs().max() < 1e-4
    layer = set_planar(PlanarLayer(2).double(), [-8.0, 0.5], [1.0, 0.0], 0.1)  # w.u_hat = -1 + 3e-4
    z2, _ = layer(layer.inverse(z)[0])
    assert (z2 - z).abs().max() < 1e-9


# --- the models --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["planar", "radial"])
def test_2d_density_integrates_to_one(name):
    torch.manual_seed(0)
    model = perturbed(build_model(name, DataSpec("v", (2,)), {"layers": 6}), 0.5).eval()
    xs = torch.linspace(-10, 10, 321, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        mass = model.double().log_prob(pts).exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1.0) < 5e-3, mass


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_log_prob_agrees_with_sample_and_log_prob(name):
    """Both directions: log q from the closed-form sampling pass equals log_prob (the numerical inverse)."""
    torch.manual_seed(0)
    model = build_model(name, DataSpec("v", (3,)), {"layers": 8}).double()
    model.fit_preprocessing(torch.randn(500, 3, dtype=torch.float64) * torch.tensor([2.0, 0.5, 1.0]) + 1)
    perturbed(model, 0.5)
    x, lq = model.sample_and_log_prob(200)
    assert x.requires_grad
    assert torch.allclose(model.log_prob(x.detach()), lq.detach(), atol=1e-8)
    (lq.mean() + x.square().mean()).backward()  # differentiable samples: every parameter gets a gradient
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_fresh_flow_is_close_to_the_base(name):
    model = build_model(name, DataSpec("v", (2,)))
    x = torch.randn(200, 2)
    expected = torch.distributions.Normal(0, 1).log_prob(x).sum(-1)
    diff = (model.log_prob(x) - expected).abs()  # near the identity, though not exactly (not degenerate)
    assert diff.mean() < 0.1 and diff.max() < 0.5 and diff.max() > 0


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_save_load_roundtrip_is_exact(name, tmp_path):
    model = perturbed(build_model(name, DataSpec("v", (2,)), {"layers": 4})).eval()
    model.fit_preprocessing(torch.randn(100, 2) * 3)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randn(20, 2)
    assert torch.equal(model.log_prob(x), loaded.log_prob(x))
    assert same_under_seed(lambda: model.sample(8), lambda: loaded.sample(8), seed=2)


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_images_are_flattened_and_no_context_is_taken(name):
    spec = DataSpec("d", (1, 8, 8), 17)
    model = perturbed(build_model(name, spec, {"layers": 3}), 0.05)
    k = torch.randint(0, 17, (5, 1, 8, 8)).float()
    lp = model.log_prob(k)
    assert lp.shape == (5,) and torch.isfinite(lp).all()
    s = model.sample(4)
    assert s.shape == (4, 1, 8, 8) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16
    assert "conditional" not in type(model).capabilities and "sample_log_prob" in type(model).capabilities
    with pytest.raises(ConfigError, match="context_features"):
        build_model(name, DataSpec("v", (2,)), {"context_features": 3})
    with pytest.raises(ConfigError, match="'logit_alpha' is not used"):
        build_model(name, DataSpec("v", (2,)), {"logit_alpha": 0.1})
    with pytest.raises(ConfigError, match="expects vectors"):
        build_model(name, DataSpec("m", (2, 3)))


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_short_training_lowers_the_nll_on_moons(name):
    torch.manual_seed(0)
    data = load_data("moons")
    model = build_model(name, data.spec, {"layers": 8})
    model.fit_preprocessing(data.train)
    test = data.split("test")[:500]
    with torch.no_grad():
        before = -model.log_prob(test).mean().item()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        batch = data.train[torch.randint(0, len(data.train), (128,))]
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = -model.log_prob(test).mean().item()
    assert after < before - 0.1, (before, after)


@pytest.mark.parametrize("name", ["planar", "radial"])
def test_variational_fit_to_an_unnormalised_target(name):
    """Reverse KL through sample_and_log_prob (the closed-form direction): E_q[log q + U] falls towards -log Z."""
    torch.manual_seed(0)
    model = build_model(name, DataSpec("v", (2,)), {"layers": 8})
    mu, sd = torch.tensor([1.0, -0.5]), torch.tensor([0.6, 1.5])

    def kl():  # E_q[log q - log p] for the normalised target p = N(mu, sd^2)
        x, lq = model.sample_and_log_prob(256)
        return (lq - torch.distributions.Normal(mu, sd).log_prob(x).sum(1)).mean()

    with torch.no_grad():
        before = kl().item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(50):
        loss = kl()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = kl().item()
    assert after < 0.3 * before, (before, after)


@pytest.mark.slow  # the CLI's own overhead (run directory, scoring, plots): ~20 s on a loaded machine
def test_cli_train_on_moons(tmp_path):
    out = tmp_path / "planar"
    assert main(["train", "--model", "planar", "--data", "moons", "--steps", "20", "--eval-every", "10",
                 "--param", "layers=4", "--no-progress", "--warmup-steps", "2", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert math.isfinite(scores["nll_nats"]) and scores["density"] == "exact"
    assert (out / "samples.png").is_file()
