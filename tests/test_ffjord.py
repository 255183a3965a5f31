"""FFJORD: the CNF bijection (round trip, log-det vs autograd, Hutchinson, adjoint, regularisers)
and the model (density kind, NFE reporting, grid mass, identity at init, save/load, training, CLI)."""

import math

import pytest
import torch
from torch import nn

from bijection_checks import check_eval_equals_train, check_gradients, perturb
from conftest import same_under_seed

from deepgen.bijections import CNF
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.ffjord import FFJORD
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import ConvODENet, ODENet


def small_cnf(d=2, tol=1e-8, context=0, trace="exact", seed=1, **kw):
    torch.manual_seed(seed)
    net = perturb(ODENet(d, 8, 2, context_features=context), 0.5, seed=seed)
    return CNF(net, time=0.8, learn_time=True, trace=trace, rtol=tol, atol=tol, **kw).double()


def batch_jacobian(fn, x):
    """(B, D, D) Jacobians of a per-example map, by D backward passes over the batch."""
    x = x.clone().requires_grad_(True)
    y = fn(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, 1)


class Linear(nn.Module):
    """Time-independent linear dynamics f(t, z) = z A^T (tr df/dz = tr A everywhere)."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, t, z, context=None):
        return z @ self.a.T


class Constant(nn.Module):
    def __init__(self, b):
        super().__init__()
        self.b = nn.Parameter(b)

    def forward(self, t, z, context=None):
        return self.b.expand_as(z)


# --- the bijection ---------------------------------------------------------------------------
def test_cnf_round_trip_within_solver_tolerance():
    cnf = small_cnf(context=3)
    x, c = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    z, ld = cnf(x, c)
    assert (z - x).abs().max() > 0.1  # a real map, not the identity
    x2, ld_inv = cnf.inverse(z, c)
    assert torch.allclose(x2, x, atol=1e-6), (x2 - x).abs().max()
    assert torch.allclose(ld_inv, -ld, atol=1e-6)


def test_cnf_log_det_matches_the_autograd_jacobian_both_ways():
    cnf = small_cnf(context=2)
    x, c = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    z, ld = cnf(x, c)
    jac = batch_jacobian(lambda v: cnf(v, c)[0], x)
    assert torch.allclose(ld, torch.linalg.slogdet(jac)[1], atol=1e-6)
    assert ld.abs().max() > 0.05  # the map changes volume
    _, ld_inv = cnf.inverse(z, c)
    jac_inv = batch_jacobian(lambda v: cnf.inverse(v, c)[0], z)
    assert torch.allclose(ld_inv, torch.linalg.slogdet(jac_inv)[1], atol=1e-6)


def test_cnf_gradients_reach_every_parameter_and_eval_equals_train():
    cnf = small_cnf(tol=1e-5)
    x = torch.randn(4, 2, dtype=torch.float64)
    check_gradients(cnf, x)
    assert cnf.func.log_time.grad is not None and cnf.func.log_time.grad != 0  # T is learned
    check_eval_equals_train(cnf, x)


def test_adjoint_gradients_match_backprop_through_the_solver():
    grads = []
    for adjoint in (False, True):
        cnf = small_cnf(tol=1e-6, adjoint=adjoint)
        x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        z, ld = cnf(x)
        (z.square().sum() - ld.sum()).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in cnf.parameters()]))
        if adjoint:
            before = cnf.last_nfe_backward
            cnf(x)  # the next solve reports the adjoint evaluations of the previous backward pass
            assert before == 0 and cnf.last_nfe_backward > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-4, rtol=1e-4)


def test_no_grad_solve_keeps_no_graph_and_matches():
    cnf = small_cnf(tol=1e-6)
    x = torch.randn(4, 2, dtype=torch.float64)
    z, ld = cnf(x)
    with torch.no_grad():
        z2, ld2 = cnf(x)
    assert not z2.requires_grad and not ld2.requires_grad
    assert torch.equal(z.detach(), z2) and torch.equal(ld.detach(), ld2)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_log_det_is_unbiased(noise):
    exact = small_cnf(tol=1e-5)
    hutch = small_cnf(tol=1e-5, trace="hutchinson", noise=noise)
    x = torch.tensor([[0.3, -0.7], [1.2, 0.4]], dtype=torch.float64)
    with torch.no_grad():
        _, ld_exact = exact(x)
        _, ld = hutch(x.repeat_interleave(1000, 0))  # 1000 noise draws per point
    ld = ld.reshape(2, 1000)
    sem = ld.std(1) / math.sqrt(1000)
    assert (ld.std(1) > 1e-3).all()  # really stochastic
    assert ((ld.mean(1) - ld_exact).abs() < 4 * sem + 1e-4).all(), (ld.mean(1), ld_exact, sem)


def test_hutchinson_noise_is_held_fixed_during_one_solve():
    """Linear dynamics: the estimate with one e held fixed is exactly T e^T A e.  Fresh noise at every
    evaluation would give a solver-weighted mixture of several e instead."""
    a = torch.tensor([[0.3, -1.0], [0.8, -0.2]], dtype=torch.float64)
    cnf = CNF(Linear(a), time=0.7, trace="hutchinson", noise="gaussian", rtol=1e-8, atol=1e-8).double()
    x = torch.randn(64, 2, dtype=torch.float64)
    torch.manual_seed(11)
    _, ld = cnf(x)
    torch.manual_seed(11)
    e = torch.randn_like(x)  # the draw the solve made
    assert cnf.last_nfe > 6
    assert torch.allclose(ld, 0.7 * ((e @ a) * e).sum(1), atol=1e-6)
    assert same_under_seed(lambda: cnf(x)[1], lambda: cnf(x)[1], seed=4)  # same noise, same answer
    _, exact = CNF(Linear(a), time=0.7, trace="exact").double()(x)
    assert torch.allclose(exact, torch.full_like(exact, 0.7 * float(a.trace())), atol=1e-9)


def test_rnode_regularisers_integrate_what_they_say():
    """Constant dynamics b: kinetic = T ||b||^2, Jacobian term 0; linear A: Jacobian term = T ||e^T A||^2."""
    b = torch.tensor([0.5, -2.0], dtype=torch.float64)
    cnf = CNF(Constant(b), time=0.6, regularize=True).double()
    x = torch.randn(3, 2, dtype=torch.float64)
    z, _ = cnf(x)
    kin, jac = cnf.last_regularization
    assert torch.allclose(z, x + 0.6 * b) and torch.allclose(kin, torch.full_like(kin, 0.6 * 4.25))
    assert torch.allclose(jac, torch.zeros_like(jac))
    a = torch.tensor([[0.3, -1.0], [0.8, -0.2]], dtype=torch.float64)
    cnf = CNF(Linear(a), time=0.6, regularize=True, noise="rademacher", rtol=1e-8, atol=1e-8).double()
    torch.manual_seed(3)
    cnf(x)
    torch.manual_seed(3)
    e = torch.randint(0, 2, x.shape).double() * 2 - 1
    assert torch.allclose(cnf.last_regularization[1], 0.6 * (e @ a).square().sum(1), atol=1e-6)
    cnf.eval()
    cnf(x)
    assert cnf.last_regularization is None  # training-time only


def test_conv_dynamics_cnf_on_images():
    torch.manual_seed(0)
    net = perturb(ConvODENet(1, 4, 1), 0.4)
    cnf = CNF(net, time=0.5, trace="exact", rtol=1e-7, atol=1e-7).double()
    x = torch.randn(2, 1, 2, 2, dtype=torch.float64)
    z, ld = cnf(x)
    assert ld.abs().max() > 0.01
    jac = batch_jacobian(lambda v: cnf(v.reshape(-1, 1, 2, 2))[0].reshape(len(v), -1), x.reshape(2, -1))
    assert torch.allclose(ld, torch.linalg.slogdet(jac)[1], atol=1e-6)
    x2, _ = cnf.inverse(z)
    assert torch.allclose(x2, x, atol=1e-6)


# --- the model -------------------------------------------------------------------------------
def fast(d=2, **kw):
    params = {"hidden": 16, "depth": 2, "rtol": 1e-4, "atol": 1e-4, **kw}
    return build_model("ffjord", DataSpec("v", (d,)), params)


def test_density_kind_follows_the_trace():
    assert fast(2).density == "exact" and fast(10).density == "exact"
    assert fast(11).density == "estimate"
    assert fast(11, trace="exact").density == "exact" and fast(2, trace="hutchinson").density == "estimate"
    assert FFJORD.density == "exact"  # the class default is untouched by instances
    with pytest.raises(ConfigError, match="trace"):
        fast(2, trace="approx")
    with pytest.raises(ConfigError, match="'channels' is not used by ffjord on vectors"):
        fast(2, channels=8)
    with pytest.raises(ConfigError, match="ffjord expects vectors"):
        build_model("ffjord", DataSpec("m", (2, 3)))


def test_fresh_model_is_the_identity_with_few_evaluations():
    model = fast(2, blocks=2)
    x = torch.randn(10, 2)
    expected = torch.distributions.Normal(0, 1).log_prob(x).sum(-1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-6)
    assert 0 < model.last_nfe <= 2 * 50  # f = 0: the step size grows geometrically
    torch.manual_seed(1)
    s = model.sample(5)
    torch.manual_seed(1)
    assert torch.allclose(s, torch.randn(5, 2), atol=1e-6)


def test_2d_density_integrates_to_one():
    model = perturb(fast(2, rtol=1e-5, atol=1e-5), 0.3).eval()
    xs = torch.linspace(-7, 7, 101)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        lp = model.log_prob(pts)
    assert lp.std() > 0.3  # not the standard normal any more
    mass = lp.exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1.0) < 0.01, mass


def test_sampling_direction_agrees_with_log_prob():
    model = perturb(fast(2, rtol=1e-7, atol=1e-7), 0.3).double()
    model.fit_preprocessing(torch.randn(100, 2, dtype=torch.float64) * 3 + 1)
    x, lq = model.sample_and_log_prob(8)
    assert torch.allclose(model.log_prob(x.detach()), lq.detach(), atol=1e-5)


def test_nfe_is_counted_and_logged_in_the_loss():
    model = perturb(fast(2), 0.3)
    out = model.loss(torch.randn(16, 2))
    assert out["nfe_forward"].item() == model.last_nfe > 0
    assert torch.is_tensor(out["time"]) and "nfe_backward" not in out
    model = perturb(fast(2, adjoint=True, kinetic=0.1, jacobian=0.1), 0.3)
    out = model.loss(torch.randn(16, 2))
    out["loss"].backward()
    assert out["kinetic"] > 0 and out["jacobian"] > 0
    assert torch.allclose(out["loss"].detach(), out["nll"] + 0.1 * (out["kinetic"] + out["jacobian"]))
    out = model.loss(torch.randn(16, 2))
    assert out["nfe_backward"].item() == model.last_nfe_backward > 0


def test_hutchinson_model_log_prob_is_reproducible_under_a_seed():
    model = perturb(fast(12), 0.1)
    x = torch.randn(4, 12)
    assert model.density == "estimate"
    assert same_under_seed(lambda: model.log_prob(x), lambda: model.log_prob(x), seed=3)
    assert not torch.equal(model.log_prob(x), model.log_prob(x))  # fresh noise per call


def test_save_load_roundtrip_is_exact(tmp_path):
    model = perturb(fast(3, blocks=2, context_features=2), 0.2).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x, c = torch.randn(5, 3), torch.randn(5, 2)
    assert loaded.density == "exact" and loaded.integration_times() == model.integration_times()
    assert torch.equal(model.log_prob(x, c), loaded.log_prob(x, c))
    assert same_under_seed(lambda: model.sample(4, c[:4]), lambda: loaded.sample(4, c[:4]), seed=2)


def test_discrete_images_with_hutchinson():
    model = perturb(build_model("ffjord", DataSpec("img", (1, 4, 4), 17),
                                {"channels": 4, "depth": 1, "rtol": 1e-3, "atol": 1e-3}), 0.1)
    assert model.density == "estimate"
    k = torch.randint(0, 17, (3, 1, 4, 4)).float()
    lp = model.log_prob(k)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    s = model.sample(2)
    assert s.shape == (2, 1, 4, 4) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16
    with pytest.raises(ConfigError, match="'hidden' is not used by ffjord on images"):
        build_model("ffjord", DataSpec("img", (1, 4, 4), 17), {"hidden": 8})


@pytest.mark.slow
def test_short_training_lowers_the_nll():
    from deepgen.data import load_data

    splits = load_data("moons")
    model = fast(2, hidden=16, rtol=1e-3, atol=1e-3)
    model.fit_preprocessing(splits.split("train"))
    x_train, x_val = splits.split("train"), splits.split("val")[:500]

    def val_nll():
        with torch.no_grad():
            return -model.log_prob(x_val).mean().item()

    before = val_nll()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        batch = x_train[torch.randint(0, len(x_train), (128,), generator=g)]
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    assert val_nll() < before - 0.1, (before, val_nll())


def test_cli_train_on_moons_logs_nfe(tmp_path):
    from deepgen.cli import main
    from deepgen.training.metrics import MetricsTable

    out = tmp_path / "m"
    code = main(["train", "--model", "ffjord", "--data", "moons", "--steps", "4", "--eval-every", "2",
                 "--no-progress", "--warmup-steps", "1", "--param", "hidden=8", "--param", "depth=1",
                 "--param", "rtol=0.001", "--param", "atol=0.001", "--out", str(out)])
    assert code == 0
    steps, nfe = MetricsTable.read(out / "metrics.csv").column("train/nfe_forward")
    assert nfe and all(v > 0 for v in nfe)
    import json

    scores = json.loads((out / "scores.json").read_text())
    assert scores["density"] == "exact" and math.isfinite(scores["nll_nats"])
