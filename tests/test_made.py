"""MADE: the autoregressive property, exact normalization, sampling, completion, save/load, learning."""

import itertools
import math

import pytest
import torch
from conftest import same_under_seed

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets.masked import MaskedLinear


def made(levels, shape, **params):
    torch.manual_seed(0)
    return build_model("made", DataSpec("t", tuple(shape), levels), {"hidden": 32, **params})


def all_configs(levels, d):
    return torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float)


# --- MaskedLinear -------------------------------------------------------------------------------
def test_masked_linear_masks_by_multiplication_and_blocks_gradients():
    mask = torch.tensor([[1, 0, 1], [0, 1, 0]])
    layer = MaskedLinear(3, 2, torch.stack([mask, 1 - mask]))
    before = layer.weight.detach().clone()
    x = torch.randn(4, 3)
    for k, m in enumerate([mask, 1 - mask]):
        torch.testing.assert_close(layer(x, k), x @ (before * m).T + layer.bias)
    layer(x, 0).sum().backward()
    assert torch.equal(layer.weight.grad == 0, mask == 0)  # masked weights get no gradient
    assert torch.equal(layer.weight, before)  # forward never mutates the weights
    assert "mask" in layer.state_dict()
    assert "mask" not in MaskedLinear(3, 2, mask, persistent=False).state_dict()
    with pytest.raises(ValueError):
        MaskedLinear(3, 2, torch.ones(3, 2))


# --- autoregressive property ----------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,extra", [
    (2, (1, 2, 3), {}),                        # Bernoulli, image-shaped data flattened to D = 6
    (2, (6,), {"direct": False, "depth": 1}),  # without the direct connections
    (3, (5,), {}),                             # categorical, 3 logits per dim
    (None, (5,), {}),                          # Gaussian: mean and log-std per dim
    (None, (4,), {"context_features": 2, "depth": 3}),
])
def test_autoregressive_property_by_gradients_for_every_mask(levels, shape, extra):
    model = made(levels, shape, num_masks=3, hidden=64, **extra)
    d, ctx = math.prod(shape), extra.get("context_features", 0)
    context = torch.randn(1, ctx) if ctx else None
    pos = model.positions()
    assert sorted(model.orders[1].tolist()) == list(range(d))
    assert not torch.equal(model.orders[1], model.orders[2])  # "random": distinct orderings
    for m in range(model.num_masks):
        total = 0
        for _ in range(6):  # several inputs, so ReLU dead zones cannot hide a connection
            x = torch.randn(d)
            jac = torch.autograd.functional.jacobian(
                lambda v: model.conditionals(v.view(1, *shape), m, context).reshape(d, -1), x)
            total = total + jac.abs()  # (D, K, D): d(param k of dim i) / d(input j)
        dep = total.sum(1) > 0  # (D out, D in)
        allowed = pos[m][None, :] < pos[m][:, None]  # input j strictly earlier than output i
        assert not dep[~allowed].any(), f"mask {m}: an output depends on an input at or after its position"
        # And the masks are not vacuous: every allowed dependence is realised.
        assert torch.equal(dep, allowed), f"mask {m}: missing allowed connections"
        if ctx:
            jc = torch.autograd.functional.jacobian(
                lambda c: model.conditionals(torch.randn(1, *shape), m, c.view(1, ctx)).reshape(d, -1), context[0])
            assert (jc.abs().sum((1, 2)) > 0).all()  # context reaches every dim, including the first


# --- exact normalization ----------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,num_masks", [
    (2, (4,), 1), (2, (4,), 5), (2, (1, 2, 2), 3), (3, (3,), 1), (3, (3,), 4),
])
def test_probabilities_sum_to_one(levels, shape, num_masks):
    model = made(levels, shape, num_masks=num_masks, order="random").double()
    with torch.no_grad():  # sharpen the random init so the distribution is far from uniform
        for p in model.parameters():
            p.mul_(3)
    x = all_configs(levels, math.prod(shape)).double().view(-1, *shape)
    lp = model.log_prob(x)
    assert abs(lp.exp().sum().item() - 1) < 1e-5
    assert lp.max() - lp.min() > 1  # far from the uniform distribution
    per_mask = model.log_prob_per_mask(x)
    torch.testing.assert_close(per_mask.exp().sum(0), torch.ones(num_masks, dtype=torch.double))
    torch.testing.assert_close(lp, torch.logsumexp(per_mask, 1) - math.log(num_masks))


def test_normalized_for_each_context():
    model = made(2, (3,), num_masks=2, context_features=2).double()
    x = all_configs(2, 3).double()
    totals = []
    for c in torch.randn(3, 2).double():
        lp = model.log_prob(x, c.expand(len(x), 2))
        totals.append(lp.exp().sum().item())
    assert all(abs(t - 1) < 1e-6 for t in totals)


def test_gaussian_log_prob_keeps_constant_and_bounds_log_std():
    model = made(None, (3,), num_masks=2, output="conditional-gaussian")
    x = torch.randn(7, 3)
    params = [model.output.loc_log_std(model.conditionals(x, m)) for m in range(2)]
    expect = torch.stack([torch.distributions.Normal(mu, log_std.exp()).log_prob(x).sum(1)
                          for mu, log_std in params], 1)
    torch.testing.assert_close(model.log_prob_per_mask(x), expect)
    with torch.no_grad():
        model.net.layers[-1].bias.fill_(1e3)  # a runaway log-std stays soft-clamped
    assert model.output.loc_log_std(model.conditionals(x))[1].max() <= model.output.log_std_bound


def test_loss_is_mean_nll_of_one_mask():
    model = made(3, (4,), num_masks=1)
    x = torch.randint(0, 3, (9, 4)).float()
    out = model.loss(x)
    torch.testing.assert_close(out["loss"], -model.log_prob(x).mean())
    mixed = made(3, (4,), num_masks=4)
    per_mask = -mixed.log_prob_per_mask(x).mean(0)
    assert any(torch.isclose(mixed.loss(x)["loss"], v) for v in per_mask)


# --- sampling -----------------------------------------------------------------------------------------
def test_samples_follow_the_mixture_density():
    model = made(3, (3,), num_masks=3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    torch.manual_seed(1)
    s = model.sample(30000)
    assert s.shape == (30000, 3)
    configs = all_configs(3, 3)
    codes = (s * torch.tensor([9.0, 3.0, 1.0])).sum(1).long()
    empirical = torch.bincount(codes, minlength=27).double() / len(s)
    exact = model.log_prob(configs).exp().detach().double()
    assert 0.5 * (empirical - exact).abs().sum() < 0.03  # total variation


def test_sample_shapes_levels_and_temperature():
    for levels, shape in [(2, (1, 3, 3)), (5, (2, 3)), (None, (4,))]:
        model = made(levels, shape, num_masks=2)
        for t in (1.0, 0.5, 0.0):
            s = model.sample(11, temperature=t)
            assert s.shape == (11, *shape) and torch.isfinite(s).all()
            if levels:
                assert torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= levels - 1
    with pytest.raises(ConfigError):
        model.sample(2, temperature=-1)


def greedy(model, m, d):
    """The mode-by-mode decode of ordering m, computed independently of ``sample``."""
    x = torch.zeros(1, d)
    for dim in model.orders[m].tolist():
        x[0, dim] = float(model.conditionals(x, m)[0, dim, 0] > 0)
    return x[0]


def test_bernoulli_low_temperature_is_deterministic():
    single = made(2, (8,), num_masks=1)
    torch.manual_seed(3)
    cold = single.sample(200, temperature=1e-3)
    assert (cold == cold[0]).all()  # every sample is the same
    assert torch.equal(cold[0], greedy(single, 0, 8))
    assert torch.equal(single.sample(5, temperature=0), greedy(single, 0, 8).expand(5, 8))
    warm = single.sample(200, temperature=1.0)
    assert len(torch.unique(warm, dim=0)) > 1
    # With M orderings each sample picks one ordering, so T -> 0 gives one of M greedy decodes.
    mixed = made(2, (8,), num_masks=3)
    cold = mixed.sample(100, temperature=0)
    modes = torch.stack([greedy(mixed, m, 8) for m in range(3)])
    assert all((row == modes).all(1).any() for row in cold)


def test_completion_keeps_observed_and_fills_valid_levels():
    model = made(5, (1, 4, 4), num_masks=3)
    torch.manual_seed(0)
    full = torch.randint(0, 5, (20, 1, 4, 4)).float()
    cond = full.clone()
    hole = torch.rand_like(cond) < 0.5
    cond[hole] = float("nan")
    out = model.sample(20, conditioned_on=cond)
    assert out.shape == (20, 1, 4, 4)
    assert torch.equal(out[~hole], full[~hole])  # observed entries kept exactly
    filled = out[hole]
    assert torch.equal(filled, filled.round()) and filled.min() >= 0 and filled.max() <= 4
    assert not torch.isnan(out).any()
    with pytest.raises(DataError):
        model.sample(20, conditioned_on=cond[:, :, :2])
    bad = cond.clone()
    bad[~hole] = 7.0
    with pytest.raises(DataError):
        model.sample(20, conditioned_on=bad)


def test_completion_matches_exact_conditional_when_observed_dims_come_first():
    model = made(3, (3,), num_masks=1, order="natural")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    cond = torch.full((20000, 3), float("nan"))
    cond[:, 0] = 2.0  # x_0 observed: the first dim of the natural ordering
    torch.manual_seed(2)
    out = model.sample(20000, conditioned_on=cond)
    assert (out[:, 0] == 2).all()
    configs = all_configs(3, 3)
    joint = model.log_prob(configs).exp().detach().view(3, 3, 3)[2].double()
    exact = joint / joint.sum()  # p(x_1, x_2 | x_0 = 2)
    empirical = torch.bincount((out[:, 1] * 3 + out[:, 2]).long(), minlength=9).double().view(3, 3) / len(out)
    assert 0.5 * (empirical - exact).abs().sum() < 0.03


# --- save / load ----------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = made(3, (1, 3, 3), num_masks=3, seed=7)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.randint(0, 3, (32, 1, 3, 3)).float()
    for _ in range(5):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    save_model(model, tmp_path)
    state_keys = set(model.state_dict())
    assert {"net.orders", "net.hidden_degrees"} <= state_keys
    assert not any(k.endswith(".mask") for k in state_keys)  # masks are derived, not saved
    loaded = load_model(tmp_path)
    assert loaded.params == model.params
    assert torch.equal(loaded.orders, model.orders) and torch.equal(loaded.net.hidden_degrees, model.net.hidden_degrees)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert same_under_seed(lambda: model.sample(16), lambda: loaded.sample(16), seed=11)


def test_loading_weights_rebuilds_masks_from_saved_orderings():
    source = made(2, (5,), num_masks=3, seed=1)
    target = made(2, (5,), num_masks=3, seed=2)
    assert not torch.equal(source.orders, target.orders)
    target.load_state_dict(source.state_dict())
    for a, b in zip(source.net.layers, target.net.layers):
        assert torch.equal(a.mask, b.mask)
    x = all_configs(2, 5)
    assert torch.equal(target.log_prob(x), source.log_prob(x))


def test_config_errors():
    spec = DataSpec("t", (4,), 2)
    with pytest.raises(ConfigError):
        build_model("made", spec, {"order": "backwards"})
    with pytest.raises(ConfigError):
        build_model("made", spec, {"num_masks": 0})
    with pytest.raises(ConfigError):
        build_model("made", DataSpec("t", (4,), 1), {})
    from autoregressive_checks import check_context_errors

    check_context_errors(build_model("made", spec, {"hidden": 8, "context_features": 2}), 4)


# --- learning -------------------------------------------------------------------------------------------
def test_short_training_beats_independent_bernoulli_baseline():
    from autoregressive_checks import fit_briefly

    model = build_model("made", load_data("digits-binary").spec, {"hidden": 256, "num_masks": 4})
    final, baseline = fit_briefly(model, "digits-binary", steps=300, lr=3e-3, batch=128)
    assert final < baseline - 3, (final, baseline)


def test_context_reaches_the_first_dimension_through_hidden_units():
    """Without direct connections, the first dimension of the ordering sees the context only via
    hidden units of degree -1; its parameters must change with the context."""
    from deepgen.nets.made import MaskedMLP

    torch.manual_seed(0)
    net = MaskedMLP(3, 2, hidden=32, depth=2, direct=False, context_features=2)
    with torch.no_grad():
        net.layers[-1].weight.normal_()
    x = torch.randn(1, 3)
    first = int(net.orders[0, 0])
    a = net(x, 0, torch.tensor([[1.0, 0.0]]))[0, first]
    b = net(x, 0, torch.tensor([[0.0, 1.0]]))[0, first]
    assert not torch.allclose(a, b)
    assert (net.hidden_degrees[0, 0] == -1).any()


def test_completion_log_q_is_the_density_of_the_procedure():
    """One mask set: log q = the drawn entries' conditionals in one pass; M mask sets: their mixture."""
    from autoregressive_checks import check_completion

    model = made(3, (1, 2, 3), num_masks=1)
    x = torch.randint(0, 3, (5, 1, 2, 3)).float()
    check_completion(model, x, torch.rand(x.shape) < 0.5)
    mixed = made(3, (1, 2, 3), num_masks=3)
    missing = torch.rand(x.shape) < 0.5
    done, log_q = mixed.complete(torch.where(missing, torch.nan, x))
    hidden = missing.reshape(5, -1).float()
    per_mask = torch.stack([(mixed.log_prob_per_dim(done, None, m) * hidden).sum(1) for m in range(3)])
    torch.testing.assert_close(log_q, torch.logsumexp(per_mask, 0) - math.log(3))
