"""NADE: the autoregressive property, exact normalisation, the one-pass running sum against a naive loop,
incremental sampling and completion, save/load, context and learning."""

import pytest
import torch
from autoregressive_checks import (
    check_autoregressive, check_completion, check_context_errors, check_normalised, fit_briefly, random_inputs,
    take_steps,
)
from bijection_checks import perturb
from conftest import same_under_seed

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model


def nade(levels, shape, **params):
    torch.manual_seed(0)
    return build_model("nade", DataSpec("t", tuple(shape), levels), {"hidden": 16, "dropout": 0.0, **params})


def naive_params(model, x, context=None):
    """The conditionals computed one dim at a time from the formula, a fresh sum over the past for each:
    theta_{o(t)} = V_{o(t)} act(c + U ctx + sum_{s<t} W[:, o(s)] x~_{o(s)}) + b_{o(t)}."""
    xs = model.scaled(x).reshape(len(x), -1)
    out = torch.zeros(len(x), model.spec.dim, model.output.params_per_dim, dtype=x.dtype)
    order = model.ordering().tolist()
    for t, d in enumerate(order):
        a = model.c.expand(len(x), -1).clone()
        if context is not None:
            a = a + context @ model.U.weight.t()
        for s in order[:t]:
            a = a + xs[:, s : s + 1] * model.W[:, s]
        out[:, d] = model.act(a) @ model.V[d].t() + model.b[d]
    return out


# --- autoregressive property (by gradients) ------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,extra", [
    (2, (1, 3, 3), {}),                                  # Bernoulli
    (3, (1, 2, 3), {"output": "categorical"}),           # 3 logits per dim
    (3, (1, 2, 3), {}),                                  # the default for L > 2: logistic mixture
    (None, (5,), {}),                                    # continuous: gaussian-mixture head
    (4, (3, 2, 2), {}),                                  # 3-channel image: channels inside a pixel
    (2, (7,), {"order": "random", "context_features": 3}),
    (5, (6,), {"output": "logistic-mixture", "components": 2}),
])
def test_autoregressive_without_blind_spots(levels, shape, extra):
    model = nade(levels, shape, **extra)
    ctx = extra.get("context_features", 0)
    context = torch.randn(1, ctx, dtype=torch.float64) if ctx else None
    check_autoregressive(model, context, full=True)


def test_relu_is_autoregressive():
    check_autoregressive(nade(3, (1, 2, 3), activation="relu", hidden=64), full=False, trials=8)


def test_three_channel_raster_ordering_puts_channels_inside_a_pixel():
    model = nade(4, (3, 2, 2))
    # flattened (C, H, W): dim = c * 4 + h * 2 + w; pixel (0, 0) has dims 0, 4, 8, then pixel (0, 1): 1, 5, 9
    assert model.ordering().tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    dep = check_autoregressive(model, full=True)
    assert not dep[0].any() and dep[4].tolist() == [i == 0 for i in range(12)]  # G of pixel 0 sees R only


def test_context_reaches_the_first_dimension():
    model = perturb(nade(2, (4,), context_features=2))
    x = torch.zeros(1, 4)
    first = int(model.ordering()[0])
    a = model.conditionals(x, torch.tensor([[1.0, 0.0]]))[0, first]
    b = model.conditionals(x, torch.tensor([[0.0, 1.0]]))[0, first]
    assert not torch.allclose(a, b)


# --- exact normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,extra,context", [
    (2, (1, 3, 3), {}, None),                                     # 512 binary images
    (2, (1, 3, 3), {"order": "random", "activation": "relu"}, None),
    (3, (1, 2, 2), {}, None),                                     # 81 images with 3 levels (logistic mixture)
    (3, (1, 2, 2), {"output": "categorical"}, None),
    (3, (1, 2, 2), {"output": "categorical", "order": "random", "seed": 3}, None),
    (3, (1, 2, 2), {"output": "categorical", "context_features": 2}, torch.tensor([[0.3, -1.2]])),
    (3, (1, 2, 2), {"order": "random", "context_features": 2}, torch.tensor([[-0.5, 1.0]])),
    (5, (1, 1, 3), {"output": "logistic"}, None),
])
def test_probabilities_sum_to_one(levels, shape, extra, context):
    check_normalised(nade(levels, shape, **extra), context)


# --- the running sum --------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,extra", [
    (2, (1, 3, 3), {"order": "random"}),
    (5, (2, 2, 2), {"context_features": 3, "output": "categorical"}),
    (5, (2, 2, 2), {"context_features": 3}),
    (None, (4,), {"order": "random", "activation": "relu"}),
])
def test_one_pass_equals_naive_per_dim_loop(levels, shape, extra):
    model = perturb(nade(levels, shape, **extra).double())
    x = random_inputs(model.spec, 6, seed=2)
    ctx = torch.randn(6, extra["context_features"], dtype=torch.float64) if "context_features" in extra else None
    with torch.no_grad():
        torch.testing.assert_close(model.conditionals(x, ctx), naive_params(model, model.to_model_space(x), ctx))


def test_random_ordering_is_a_saved_permutation():
    a, b = nade(2, (10,), order="random", seed=1), nade(2, (10,), order="random", seed=2)
    assert sorted(a.ordering().tolist()) == list(range(10))
    assert not torch.equal(a.ordering(), b.ordering())
    assert "order" in a.state_dict()
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.ordering(), b.ordering())


# --- sampling and completion ----------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,extra", [
    (5, (1, 4, 4), {"order": "random", "output": "categorical"}),
    (5, (1, 4, 4), {}),
    (2, (3, 2, 2), {"context_features": 2}),
    (None, (6,), {}),
])
def test_completion_agrees_with_the_full_pass(levels, shape, extra):
    """The incremental step (running sum, observed values entering as it passes them) must give the
    conditionals of the one-pass ``_params``: log q of the drawn entries is checked against log_prob."""
    model = perturb(nade(levels, shape, **extra), scale=0.5)
    g = torch.Generator().manual_seed(4)
    x = random_inputs(model.spec, 12, seed=3).float()
    missing = torch.rand(x.shape, generator=g) < 0.5
    missing[0] = True  # one row fully missing, one fully observed
    missing[1] = False
    ctx = torch.randn(12, 2) if extra.get("context_features") else None
    check_completion(model, x, missing, ctx)


def test_missing_only_at_the_end_skips_steps():
    """Sampling calls the step only for dims with something missing: the running sum must catch up over
    the skipped (observed) dims."""
    model = perturb(nade(3, (8,)), scale=0.5)
    x = random_inputs(model.spec, 5, seed=1).float()
    missing = torch.zeros_like(x, dtype=torch.bool)
    missing[:, -2:] = True
    check_completion(model, x, missing)


def greedy(model, context=None):
    """The mode-by-mode decode, from the one-pass conditionals (independent of _step_params)."""
    x = torch.zeros(1, *model.spec.shape)
    flat = x.view(1, -1)
    for d in model.ordering().tolist():
        flat[0, d] = model.output.sample(model.conditionals(x, context)[0, d], 0)
    return x[0]


def test_temperature_zero_is_deterministic_and_greedy():
    model = perturb(nade(4, (1, 3, 3), order="random"), scale=0.5)
    with torch.no_grad():
        cold = model.sample(7, temperature=0)
        assert (cold == cold[0]).all()
        assert torch.equal(cold[0], greedy(model))
    warm = model.sample(200)
    assert len(torch.unique(warm, dim=0)) > 1
    assert torch.equal(warm, warm.round()) and warm.min() >= 0 and warm.max() <= 3


def test_samples_follow_the_density():
    model = perturb(nade(3, (3,), order="random"), scale=0.5)
    torch.manual_seed(1)
    s = model.sample(30000)
    codes = (s * torch.tensor([9.0, 3.0, 1.0])).sum(1).long()
    empirical = torch.bincount(codes, minlength=27).double() / len(s)
    configs = torch.tensor([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], dtype=torch.float)
    with torch.no_grad():
        exact = model.log_prob(configs).exp().double()
    assert 0.5 * (empirical - exact).abs().sum() < 0.03  # total variation


def test_context_changes_the_distribution():
    model = perturb(nade(2, (1, 3, 3), context_features=2), scale=0.5)
    x = random_inputs(model.spec, 20).float()
    with torch.no_grad():
        a = model.log_prob(x, torch.tensor([[1.0, 0.0]]).expand(20, 2))
        b = model.log_prob(x, torch.tensor([[0.0, 1.0]]).expand(20, 2))
        assert (a - b).abs().max() > 1e-2
        s0 = model.sample(1, torch.tensor([[1.0, 0.0]]), temperature=0)
        s1 = model.sample(1, torch.tensor([[0.0, 1.0]]), temperature=0)
    assert s0.shape == (1, 1, 3, 3) and s1.shape == (1, 1, 3, 3)


def test_dropout_only_in_training():
    model = perturb(nade(3, (6,), dropout=0.5))
    x = random_inputs(model.spec, 4).float()
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))
    model.eval()
    assert torch.equal(model.log_prob(x), model.log_prob(x))


# --- save / load ------------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = nade(3, (1, 3, 3), order="random", seed=5, context_features=2)
    x = torch.randint(0, 3, (32, 1, 3, 3)).float()
    ctx = torch.nn.functional.one_hot(torch.randint(2, (32,)), 2).float()
    take_steps(model, (x, ctx), steps=5)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.params == model.params and torch.equal(loaded.ordering(), model.ordering())
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, ctx), model.log_prob(x, ctx))
    assert same_under_seed(lambda: model.sample(8, ctx[:8]), lambda: loaded.sample(8, ctx[:8]), seed=11)


def test_config_errors():
    spec = DataSpec("t", (4,), 2)
    for bad in ({"order": "backwards"}, {"hidden": 0}, {"activation": "tanh"}, {"dropout": 1.0},
                {"output": "gaussian-mixture"}):
        with pytest.raises(ConfigError):
            build_model("nade", spec, bad)
    with pytest.raises(ConfigError):
        build_model("nade", DataSpec("t", (4,), 1), {})
    with pytest.raises(ConfigError):
        build_model("nade", DataSpec("t", (4,), None), {"output": "categorical"})
    check_context_errors(build_model("nade", spec, {"hidden": 8, "context_features": 2}), 4)


# --- learning -------------------------------------------------------------------------------------------
def test_short_training_beats_independent_bernoulli_baseline():
    model = build_model("nade", load_data("digits-binary").spec, {"hidden": 64, "dropout": 0.0})
    final, baseline = fit_briefly(model, "digits-binary", steps=150, lr=1e-2)
    assert final < baseline - 5, (final, baseline)
