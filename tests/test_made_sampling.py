"""MADE's incremental sampler (:class:`deepgen.nets.made.MADEStepper`): the conditionals it computes, one
ordering position at a time with each hidden unit computed once, are a full masked pass's; the samples equal
the D-pass reference's and the earlier sampler's under the same seed; sampling makes no full pass."""

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.models.autoregressive.base import AutoregressiveModel
from deepgen.models.registry import build_model
from deepgen.nets.made import MADEStepper, MaskedMLP

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = DataSpec("digits-like", (1, 8, 8), 17)
CONTINUOUS = DataSpec("vector", (7,), None)

# (spec, params): categorical, Bernoulli, logistic mixture, Gaussian mixture, conditional; random and natural
# orderings; depth 0, 1 and 3; with and without direct connections
CONFIGS = {
    "categorical-random-orders": (DIGITS, {"hidden": 48, "num_masks": 5}),
    "bernoulli-natural-3-layers": (DataSpec("b", (10,), 2), {"hidden": 24, "depth": 3, "order": "natural",
                                                             "num_masks": 3}),
    "logistic-mixture-no-direct": (DataSpec("l", (9,), 256), {"hidden": 30, "direct": False, "num_masks": 2}),
    "gaussian-mixture": (CONTINUOUS, {"hidden": 20, "num_masks": 4}),
    "context-depth-1": (DataSpec("c", (8,), 5), {"hidden": 16, "depth": 1, "num_masks": 6, "context_features": 3}),
    "linear-depth-0": (DataSpec("z", (6,), 4), {"depth": 0, "num_masks": 3, "context_features": 2}),
}


def model_for(name):
    spec, params = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model("made", spec, params).eval()
    with torch.no_grad():  # large random weights: every conditional depends strongly on what came before
        for p in model.parameters():  # (on continuous data moderate ones, or the samples run off to 1e3)
            p.normal_(0, 0.5 if spec.levels else 0.15)
    return model


def context_for(model, n):
    c = model.context_features
    return torch.randn(n, c, generator=torch.Generator().manual_seed(3)) if c else None


def data_for(model, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    if model.spec.levels is None:
        return torch.randn(n, *model.spec.shape, generator=g)
    return torch.randint(0, model.spec.levels, (n, *model.spec.shape), generator=g).float()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_stepper_conditionals_equal_a_full_masked_pass(name):
    """Fed x one position at a time (each row in its own mask set), every step's parameters are the full
    pass's parameters of that row's dim at that position."""
    model = model_for(name)
    n, d = 40, model.spec.dim
    x, ctx = data_for(model, n), context_for(model, n)
    which = torch.randint(model.num_masks, (n,), generator=torch.Generator().manual_seed(2))
    flat = model.scaled(model.to_model_space(x)).reshape(n, d)
    full = torch.stack([model.net(flat, m, ctx) for m in range(model.num_masks)])[which, torch.arange(n)]
    stepper = MADEStepper(model.net, which, ctx, flat.dtype)
    for t in range(d):
        dims = model.orders[which, t]
        torch.testing.assert_close(stepper.params(t), full[torch.arange(n), dims], atol=1e-5, rtol=1e-5)
        stepper.feed(t, flat[torch.arange(n), dims])


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_samples_equal_the_d_pass_reference_under_a_seed(name, temperature):
    """Same seed, same draws: the incremental sampler and the reference that takes each step's conditionals
    from a full pass of every mask set (D passes) give the same samples and the same log q."""
    model = model_for(name)
    n = 60
    nothing = torch.full((n, *model.spec.shape), float("nan"))
    ctx = context_for(model, n)
    torch.manual_seed(7)
    fast, q_fast = model._complete(nothing, ctx, temperature, None)
    torch.manual_seed(7)
    ref, q_ref = model._complete(nothing, ctx, temperature, None, incremental=False)
    if model.spec.levels is None:
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    else:
        assert torch.equal(fast, ref)
    torch.testing.assert_close(q_fast, q_ref, atol=1e-4, rtol=1e-4)
    torch.manual_seed(7)  # sample() draws the same (it only skips log q)
    torch.testing.assert_close(model.sample(n, ctx, temperature), fast, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["categorical-random-orders", "gaussian-mixture", "context-depth-1"])
def test_completion_equals_the_reference(name):
    """Observed entries kept and fed to the later conditionals; the drawn ones equal the reference's."""
    model = model_for(name)
    n = 50
    x, ctx = data_for(model, n), context_for(model, n)
    missing = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) < 0.6
    cond = torch.where(missing, torch.nan, x)
    for mask_index in (None, model.num_masks - 1):
        torch.manual_seed(9)
        fast, q_fast = model.complete(cond, ctx, mask_index=mask_index)
        torch.manual_seed(9)
        ref, q_ref = model._complete(cond, ctx, 1.0, mask_index, incremental=False)
        assert torch.equal(fast[~missing], x[~missing])
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(q_fast, q_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["categorical-random-orders", "context-depth-1", "logistic-mixture-no-direct"])
def test_one_mask_set_draws_what_the_earlier_sampler_drew(name):
    """With the mask set fixed, the earlier sampler (AutoregressiveModel._fill: one full pass per step)
    consumed the RNG step by step on the whole batch exactly as this one does: same seed, same samples."""
    model = model_for(name)
    n = 30
    ctx = context_for(model, n)
    cond = torch.full((n, *model.spec.shape), float("nan"))
    m = model.num_masks - 1
    torch.manual_seed(4)
    new = model.complete(cond, ctx, mask_index=m)[0].reshape(n, -1)
    x, missing = model._observed(cond, n)
    torch.manual_seed(4)
    AutoregressiveModel._fill(model, x, missing, ctx, 1.0, order=model.orders[m], cache={"mask": m})
    assert torch.equal(new, model.from_model_space(x))


def test_sampling_makes_no_full_pass(monkeypatch):
    """n samples cost about one network pass: the sampler never runs the masked MLP's forward (which would be
    one full pass per step), only the K output rows of each step's dim."""
    model = model_for("categorical-random-orders")

    def forbidden(*args, **kwargs):
        raise AssertionError("a full pass of the masked MLP during sampling")

    monkeypatch.setattr(MaskedMLP, "forward", forbidden)
    s = model.sample(20)
    assert s.shape == (20, 1, 8, 8) and ((s >= 0) & (s <= 16) & (s == s.round())).all()


def test_double_precision_and_one_row():
    model = model_for("gaussian-mixture").double()
    torch.manual_seed(2)
    a = model.sample(1)
    torch.manual_seed(2)
    b = model._complete(torch.full((1, 7), float("nan"), dtype=torch.float64), None, 1.0, None,
                        incremental=False)[0]
    assert a.dtype == torch.float64
    torch.testing.assert_close(a, b)
