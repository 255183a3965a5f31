"""Neural spline flow: the rational-quadratic spline itself, its coupling and autoregressive
bijections, and NSF as a model (identity at init, normalisation, save/load, training, CLI)."""

import json
import math

import pytest
import torch
from bijection_checks import check_bijection, perturb

from conftest import same_under_seed

from deepgen.bijections.spline import (
    SplineAutoregressive, SplineCoupling, rational_quadratic_spline, spline_param_count,
)
from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import MLP, MaskedMLP

K, B = 5, 2.0


def random_params(shape, k=K, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    raw = lambda n: scale * torch.randn(*shape, n, generator=g, dtype=torch.float64)  # noqa: E731
    return raw(k), raw(k), raw(k - 1)


def spline(x, params, inverse=False, **kw):
    return rational_quadratic_spline(x, *params, inverse=inverse, tail_bound=B, **kw)


# --- the scalar spline ------------------------------------------------------------------------

def test_spline_is_monotone_onto_the_interval_and_identity_outside():
    xs = torch.linspace(-2 * B, 2 * B, 4001, dtype=torch.float64)
    params = [p.expand(len(xs), -1) for p in random_params((1,))]
    y, ld = spline(xs, params)
    assert (y[1:] > y[:-1]).all(), "not strictly increasing"
    outside = xs.abs() > B
    assert torch.equal(y[outside], xs[outside]) and torch.equal(ld[outside], torch.zeros_like(ld[outside]))
    inside = ~outside
    assert y[inside].min() >= -B and y[inside].max() <= B
    assert ((y - xs).abs() > 1e-2).any(), "random parameters should move points inside the interval"


def test_spline_inverse_roundtrip_and_log_derivatives_cancel():
    x = torch.empty(2000, dtype=torch.float64).uniform_(-1.5 * B, 1.5 * B)
    params = random_params((2000,), seed=3)
    y, ld = spline(x, params)
    x2, ld_inv = spline(y, params, inverse=True)
    assert torch.allclose(x2, x, atol=1e-10), (x2 - x).abs().max()
    assert torch.allclose(ld_inv, -ld, atol=1e-10)


def test_spline_log_derivative_matches_autograd_both_ways():
    x = torch.empty(500, dtype=torch.float64).uniform_(-B, B).requires_grad_()
    params = random_params((500,), seed=4)
    y, ld = spline(x, params)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(ld, dy.log(), atol=1e-9)
    yy = y.detach().requires_grad_()
    x2, ld_inv = spline(yy, params, inverse=True)
    (dx,) = torch.autograd.grad(x2.sum(), yy)
    assert torch.allclose(ld_inv, dx.log(), atol=1e-9)


def test_spline_is_continuous_with_continuous_derivative_at_knots_and_tails():
    """Just left / right of every knot (and of +-B): the same value and the same derivative."""
    widths, heights, derivs = random_params((1,), seed=5)
    frac = 1e-3 + (1 - 1e-3 * K) * torch.softmax(widths, -1)
    knots = (2 * B * torch.cumsum(frac, -1) - B)[0, :-1].tolist() + [-B, B]
    eps = 1e-7
    for knot in knots:
        x = torch.tensor([knot - eps, knot + eps], dtype=torch.float64)
        y, ld = spline(x, [p.expand(2, -1) for p in (widths, heights, derivs)])
        assert abs(y[1] - y[0]) < 1e-5, (knot, y)
        assert abs(ld[1] - ld[0]) < 1e-4, (knot, ld)  # boundary derivatives 1 meet the linear tails


def test_spline_value_matches_a_hand_computed_case():
    """B = 1, two bins of width 1, heights 0.5 and 1.5 (knots y = -1, -0.5, 1), inner derivative 2.

    x = 0.5 (bin 1): s = 1.5, xi = 1/2, g = -0.5 + 1.5 (1.5/4 + 2/4) / (1.5 + 0 / 4) = 0.375,
    g' = 1.5^2 (1/4 + 2 * 1.5 / 4 + 2 / 4) / 1.5^2 = 1.5;
    x = -0.5 (bin 0): s = 0.5, g = -1 + 0.5 (0.5/4 + 1/4) / (0.5 + 2/4) = -0.8125,
    g' = 0.25 (2/4 + 2 * 0.5 / 4 + 1/4) / 1 = 0.25.
    """
    widths = torch.zeros(2, 2, dtype=torch.float64)
    heights = torch.tensor([[0.0, math.log(3)]] * 2, dtype=torch.float64)  # softmax -> 1/4, 3/4 of 2B
    derivs = torch.full((2, 1), math.log(math.e + 1), dtype=torch.float64)  # softplus(u + log(e-1)) = 2
    x = torch.tensor([0.5, -0.5], dtype=torch.float64)
    y, ld = rational_quadratic_spline(x, widths, heights, derivs, tail_bound=1.0, min_bin_width=0.0,
                                      min_bin_height=0.0, min_derivative=0.0)
    assert torch.allclose(y, torch.tensor([0.375, -0.8125], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ld.exp(), torch.tensor([1.5, 0.25], dtype=torch.float64), atol=1e-12)


def test_zero_parameters_are_the_identity():
    x = torch.linspace(-3 * B, 3 * B, 101, dtype=torch.float64)
    zeros = torch.zeros(101, K, dtype=torch.float64)
    y, ld = rational_quadratic_spline(x, zeros, zeros, zeros[:, :-1], tail_bound=B)
    assert torch.allclose(y, x, atol=1e-12) and torch.allclose(ld, torch.zeros_like(ld), atol=1e-12)


# --- the bijections ------------------------------------------------------------------------------

def coupling(d=5, ctx=0, parity=0):
    mask = (torch.arange(d) + parity) % 2 == 0
    kept = int(mask.sum())
    net = MLP(kept, (d - kept) * spline_param_count(K), 8, 1, ctx, zero_init=True)
    return SplineCoupling(mask, net, K, B)


def autoregressive(d=5, ctx=0, order="natural"):
    net = MaskedMLP(d, spline_param_count(K), 8, 1, order=order, direct=False, context_features=ctx)
    return SplineAutoregressive(net, K, B)


@pytest.mark.parametrize("make", [coupling, autoregressive])
@pytest.mark.parametrize("ctx", [0, 3])
def test_spline_layers_are_bijections(make, ctx):
    torch.manual_seed(0)
    bij = perturb(make(4, ctx), 0.5).double()
    x = 1.5 * torch.randn(4, 4, dtype=torch.float64)  # some points beyond the tail bound
    c = torch.randn(4, ctx, dtype=torch.float64) if ctx else None
    check_bijection(bij, x, c)
    y, _ = bij(x, c)
    assert (y - x).abs().max() > 1e-2, "the perturbed layer should move points"
    if ctx:
        y2, _ = bij(x, c + 1)
        assert (y2 - y).abs().max() > 1e-4, "the context should matter"


def test_coupling_leaves_the_kept_half_unchanged():
    bij = perturb(coupling(4), 0.5).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y, _ = bij(x)
    assert torch.equal(y[:, ::2], x[:, ::2]) and (y[:, 1::2] - x[:, 1::2]).abs().max() > 1e-3


@pytest.mark.parametrize("order", ["natural", "reversed"])
def test_autoregressive_property_by_gradients(order):
    """dz_i / dx_j = 0 unless j comes before i in the ordering (or j = i)."""
    d = 5
    bij = perturb(autoregressive(d, order=order), 0.5).double()
    x = torch.randn(1, d, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: bij(v.unsqueeze(0))[0].squeeze(0), x[0])
    pos = torch.arange(d) if order == "natural" else torch.arange(d - 1, -1, -1)
    allowed = pos[:, None] >= pos[None, :]  # allowed[i, j]: z_i may depend on x_j
    assert (jac[~allowed] == 0).all()
    assert (jac[allowed & ~torch.eye(d, dtype=torch.bool)] != 0).any()


# --- the model -----------------------------------------------------------------------------------

VARIANTS = ["coupling", "autoregressive"]
SMALL = {"transforms": 2, "hidden": 8, "depth": 1, "bins": 6, "tail_bound": 3.0}


def perturbed(model, scale=0.1):
    return perturb(model, scale, seed=3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fresh_flow_is_standard_normal(variant):
    model = build_model("nsf", DataSpec("v", (3,)), {"variant": variant})
    x = 2 * torch.randn(50, 3)
    expected = torch.distributions.Normal(0, 1).log_prob(x).sum(-1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_whole_transform_is_a_bijection(variant):
    spec = DataSpec("v", (3,))
    model = perturbed(build_model("nsf", spec, {**SMALL, "variant": variant, "context_features": 2,
                                                "transforms": 3}), 0.3)
    x = 1.5 * torch.randn(3, 3, dtype=torch.float64)
    check_bijection(model.transform.double(), x, torch.randn(3, 2, dtype=torch.float64))


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_transform_is_a_bijection_with_logit(variant):
    model = perturbed(build_model("nsf", DataSpec("img", (1, 2, 2), 4), {**SMALL, "variant": variant}), 0.3)
    y = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    check_bijection(model.transform.double(), y)


@pytest.mark.parametrize("variant", VARIANTS)
def test_2d_density_integrates_to_one(variant):
    torch.manual_seed(0)
    model = perturbed(build_model("nsf", DataSpec("v", (2,)), {**SMALL, "variant": variant}), 0.3).eval()
    xs = torch.linspace(-6, 6, 201)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        lp = model.log_prob(pts)
        mass = lp.exp().sum().item() * (xs[1] - xs[0]).item() ** 2
        std_normal = torch.distributions.Normal(0, 1).log_prob(pts).sum(-1)
    assert (lp - std_normal).abs().max() > 0.1, "the perturbed flow should differ from N(0, I)"
    assert abs(mass - 1.0) < 0.01, mass


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_roundtrip_is_exact(tmp_path, variant):
    spec = DataSpec("d", (1, 4, 4), 17)
    model = perturbed(build_model("nsf", spec, {**SMALL, "variant": variant})).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randint(0, 17, (5, 1, 4, 4)).float()
    assert same_under_seed(lambda: model.log_prob(x), lambda: loaded.log_prob(x), seed=9)
    assert same_under_seed(lambda: model.sample(4), lambda: loaded.sample(4), seed=2)
    s = model.sample(6)
    assert s.shape == (6, 1, 4, 4) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16


@pytest.mark.parametrize("variant", VARIANTS)
def test_short_training_lowers_the_nll(variant):
    torch.manual_seed(0)
    n = torch.randn(512, 2)
    data = torch.stack([n[:, 0], n[:, 0] ** 2 + 0.3 * n[:, 1]], 1)  # a curved, non-Gaussian density
    model = build_model("nsf", DataSpec("v", (2,)), {**SMALL, "variant": variant, "hidden": 16})
    model.fit_preprocessing(data)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = -model.log_prob(data).mean().item()
    for _ in range(20):
        idx = torch.randint(0, len(data), (64,))
        loss = model.loss(data[idx])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = -model.log_prob(data).mean().item()
    assert after < before - 0.5, (before, after)


def test_conditional_flow_depends_on_the_context():
    model = perturbed(build_model("nsf", DataSpec("v", (3,)), {**SMALL, "context_features": 2}), 0.3)
    x = torch.randn(4, 3)
    a = model.log_prob(x, torch.zeros(4, 2))
    b = model.log_prob(x, torch.ones(4, 2))
    assert (a - b).abs().max() > 1e-3
    assert model.sample(5, torch.zeros(5, 2)).shape == (5, 3)


def test_bad_configurations_are_config_errors():
    with pytest.raises(ConfigError, match="variant"):
        build_model("nsf", DataSpec("v", (2,)), {"variant": "spline"})
    with pytest.raises(ConfigError, match="at least 2 dimensions"):
        build_model("nsf", DataSpec("v", (1,)))
    with pytest.raises(ConfigError, match="'logit_alpha' is not used by nsf on vectors"):
        build_model("nsf", DataSpec("v", (2,)), {"logit_alpha": 0.1})
    with pytest.raises(ConfigError, match="logit_alpha"):
        build_model("nsf", DataSpec("img", (1, 4, 4)))  # continuous images: no logit
    build_model("nsf", DataSpec("img", (1, 4, 4)), {"logit_alpha": 0.0})


@pytest.mark.slow  # the train workflow itself runs in test_conditioning (every conditional model)
def test_cli_trains_on_moons(tmp_path):
    out = tmp_path / "moons"
    code = main(["train", "--model", "nsf", "--data", "moons", "--steps", "40", "--eval-every", "20",
                 "--param", "transforms=2", "--param", "hidden=16", "--no-progress", "--out", str(out)])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    text = json.dumps(scores)
    assert "nll" in text and "NaN" not in text and "Infinity" not in text


def test_softmax_last_is_torch_softmax_with_its_gradient():
    from deepgen.bijections.spline import softmax_last

    torch.manual_seed(0)
    raw = (torch.randn(6, 3, 11, dtype=torch.double) * 30)[..., 2:10].requires_grad_()  # large, strided rows
    w = torch.randn(6, 3, 8, dtype=torch.double)
    ours = softmax_last(raw)
    theirs = torch.softmax(raw, -1)
    assert torch.allclose(ours, theirs, atol=1e-15, rtol=1e-13)
    (g1,) = torch.autograd.grad((ours * w).sum(), raw)
    (g2,) = torch.autograd.grad((theirs * w).sum(), raw)
    assert torch.allclose(g1, g2, atol=1e-14)


def test_knots_in_one_pass_equal_separate_passes():
    from deepgen.bijections.spline import rational_quadratic_spline

    torch.manual_seed(1)
    x = torch.randn(50, dtype=torch.double) * 2
    w, h, d = (torch.randn(50, 6, dtype=torch.double), torch.randn(50, 6, dtype=torch.double),
               torch.randn(50, 5, dtype=torch.double))
    y1, ld1 = rational_quadratic_spline(x, w, h, d, min_bin_width=1e-3, min_bin_height=1e-3)
    y2, ld2 = rational_quadratic_spline(x, w, h, d, min_bin_width=1e-3, min_bin_height=1e-3 + 1e-15)
    assert torch.allclose(y1, y2, atol=1e-12) and torch.allclose(ld1, ld2, atol=1e-12)


@pytest.mark.parametrize("outside", [False, True])
def test_fused_spline_equals_autograd(outside):
    """SplineForward (the whole forward spline as one node, written-out gradient) gives the plain autograd
    spline's values and the gradients of x and of every raw parameter, also for points in the linear tails."""
    from deepgen.bijections.spline import rational_quadratic_spline

    torch.manual_seed(2)
    n, k = 64, 5
    x = torch.randn(n, dtype=torch.double) * (4.0 if outside else 1.0)
    raw = [torch.randn(n, k, dtype=torch.double), torch.randn(n, k, dtype=torch.double),
           torch.randn(n, k - 1, dtype=torch.double)]
    gy, gl = torch.randn(n, dtype=torch.double), torch.randn(n, dtype=torch.double)
    results = []
    for fused in (False, True):
        inputs = [x.clone().requires_grad_()] + [r.clone().requires_grad_() for r in raw]
        y, ld = rational_quadratic_spline(*inputs, tail_bound=2.5, fused=fused)
        grads = torch.autograd.grad((y * gy).sum() + (ld * gl).sum(), inputs)
        results.append((y, ld, grads))
    (y0, l0, g0), (y1, l1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-13) and torch.allclose(l0, l1, atol=1e-13)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-11), (a - b).abs().max()


def test_fused_spline_gradient_of_the_log_derivative_alone():
    from deepgen.bijections.spline import rational_quadratic_spline

    torch.manual_seed(3)
    x = torch.randn(30, dtype=torch.double)
    w = torch.randn(30, 4, dtype=torch.double, requires_grad=True)
    for fused in (False, True):
        _, ld = rational_quadratic_spline(x, w, w * 0.5, w[:, :3], fused=fused)
        g = torch.autograd.grad(ld.sum(), w)[0]
        if fused:
            assert torch.allclose(g, g_plain, atol=1e-12)
        g_plain = g
