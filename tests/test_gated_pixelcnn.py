"""Gated PixelCNN: no blind spot (every earlier pixel and channel reaches every conditional, nothing later
does), exact normalisation for every head and context, completion, save/load, context, learning."""

import pytest
import torch
from autoregressive_checks import (
    check_autoregressive, check_completion, check_normalised, dependence, fit_briefly, take_steps,
)
from bijection_checks import perturb
from conftest import same_under_seed

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets.gated_pixelcnn import GatedPixelCNNNet, channel_groups


def gated(levels, shape, **params):
    torch.manual_seed(0)
    params = {"channels": 12, "layers": 3, "dropout": 0.0, **params}
    return build_model("gated-pixelcnn", DataSpec("t", tuple(shape), levels), params)


def one_hot(i, n):
    return torch.nn.functional.one_hot(torch.tensor([i]), n).double()


# --- the autoregressive property, with no blind spot ------------------------------------------------
@pytest.mark.parametrize("levels,shape,ctx", [
    (3, (1, 5, 5), 0),
    (3, (3, 5, 5), 0),   # channels inside a pixel: R -> G -> B by the channel-group masks
    (2, (1, 5, 5), 2),   # with a context
    (None, (2, 3, 3), 0),  # continuous data, gaussian-mixture head
])
def test_no_blind_spot(levels, shape, ctx):
    model = gated(levels, shape, layers=5, context_features=ctx, components=2)
    context = torch.randn(1, ctx).double() if ctx else None
    # trials=8: the head's ReLUs can hide a connection on a few random inputs
    check_autoregressive(model, context, full=True, trials=8)


def test_one_layer_sees_two_rows_above_and_the_left_neighbour():
    """One layer (k = 3): the (2 x 3) vertical kernel shifted down one row, and the left neighbour."""
    model = perturb(gated(3, (1, 4, 4), layers=1).double())
    dep = dependence(model, trials=8).view(4, 4, 4, 4)  # (out row, out col, in row, in col)
    expect = torch.zeros(4, 4, dtype=torch.bool)
    expect[0:2, 1:4] = True  # rows 0-1, columns 1-3 for pixel (2, 2)
    expect[2, 1] = True      # left
    assert torch.equal(dep[2, 2], expect)


def test_channel_groups_and_current_pixel_dependence():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    model = perturb(gated(3, (3, 2, 2), layers=2).double())
    dep = dependence(model, trials=8).view(3, 2, 2, 3, 2, 2)  # (out ch, row, col, in ch, row, col)
    for c in range(3):
        seen = dep[c, 1, 1, :, 1, 1]  # the same pixel's channels
        assert seen.tolist() == [i < c for i in range(3)]
        assert dep[c, 1, 1, :, 0, :].all() and dep[c, 1, 1, :, 1, 0].all()  # every channel of earlier pixels


def test_net_rejects_too_few_channels():
    with pytest.raises(ValueError):
        GatedPixelCNNNet(3, 2, channels=2)
    with pytest.raises(ConfigError):
        gated(3, (3, 4, 4), channels=2)


# --- exact normalisation -------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,params", [
    (2, (1, 3, 3), {}),                               # 512 binary images
    (3, (1, 2, 2), {}),                               # categorical, 81 images
    (3, (1, 2, 2), {"output": "logistic-mixture", "components": 2}),
    (3, (1, 2, 2), {"output": "logistic"}),
    (3, (3, 1, 2), {}),                               # 729 colour images: the channel masks
    (2, (2, 2, 2), {"kernel": 5}),
])
def test_probabilities_sum_to_one(levels, shape, params):
    check_normalised(gated(levels, shape, **params))


@pytest.mark.parametrize("levels,shape", [(2, (1, 3, 3)), (3, (1, 2, 2))])
def test_normalised_for_each_context_and_the_context_matters(levels, shape):
    model = gated(levels, shape, context_features=3)
    lps = [check_normalised(model, one_hot(i, 3)) for i in range(3)]
    assert (lps[0] - lps[1]).abs().max() > 0.1 and (lps[1] - lps[2]).abs().max() > 0.1


def test_context_reaches_the_first_pixel():
    model = perturb(gated(3, (1, 3, 3), context_features=2).double())
    x = torch.zeros(1, 1, 3, 3, dtype=torch.double)
    first = [model.conditionals(x, one_hot(i, 2))[0, 0] for i in range(2)]
    assert not torch.allclose(*first)


# --- sampling and completion ---------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,ctx", [(3, (1, 3, 4), 0), (4, (3, 2, 3), 0), (2, (1, 3, 3), 2)])
def test_completion(levels, shape, ctx):
    model = perturb(gated(levels, shape, context_features=ctx).double())
    g = torch.Generator().manual_seed(0)
    x = torch.randint(levels, (6, *shape), generator=g).double()
    missing = torch.rand(x.shape, generator=g) < 0.5
    context = torch.eye(ctx).double()[torch.arange(6) % ctx] if ctx else None
    check_completion(model, x, missing, context)


def test_sample_shapes_levels_and_temperature():
    model = perturb(gated(5, (3, 2, 2), channels=6, layers=2), scale=0.5)
    for t in (1.0, 0.0):
        s = model.sample(7, temperature=t)
        assert s.shape == (7, 3, 2, 2) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 4
    cold = model.sample(20, temperature=0)
    assert (cold == cold[0]).all()  # T = 0: every sample is the mode-by-mode decode
    assert len(torch.unique(model.sample(50), dim=0)) > 1


def test_incremental_step_equals_the_full_pass():
    model = perturb(gated(4, (2, 3, 3), context_features=2, channels=6, layers=2).double())
    x = torch.randint(4, (5, 2, 3, 3)).double()
    context = torch.eye(2).double()[torch.tensor([0, 1, 0, 1, 1])]
    full = model._params(x, context)
    for dim in range(model.spec.dim):
        torch.testing.assert_close(model._step_params(x, dim, context, {}), full[:, dim])


# --- configuration ---------------------------------------------------------------------------------------
def test_config_errors():
    with pytest.raises(ConfigError):
        gated(2, (16,))  # vectors
    with pytest.raises(ConfigError):
        gated(3, (1, 4, 4), output="bernoulli")
    with pytest.raises(ConfigError):
        gated(2, (1, 4, 4), dropout=1.0)
    with pytest.raises(ConfigError):
        gated(2, (1, 4, 4), kernel=1)
    auto = {2: "BernoulliOutput", 17: "CategoricalOutput", 256: "LogisticMixtureOutput", None: "ContinuousMixtureOutput"}
    for levels, head in auto.items():
        assert type(gated(levels, (1, 2, 2)).output).__name__ == head


def test_dropout_only_in_training():
    model = perturb(gated(3, (1, 4, 4), dropout=0.5))
    x = torch.randint(3, (8, 1, 4, 4)).float()
    model.train()
    assert not torch.equal(model.loss(x)["loss"], model.loss(x)["loss"])
    model.eval()
    assert torch.equal(model.log_prob(x), model.log_prob(x))


# --- save / load -----------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = gated(3, (3, 2, 2), context_features=2, dropout=0.1, output="logistic-mixture", components=2, channels=6)
    x = torch.randint(0, 3, (16, 3, 2, 2)).float()
    c = torch.eye(2)[torch.arange(16) % 2]
    take_steps(model, (x, c))
    save_model(model, tmp_path)
    assert not any(k.endswith(".mask") for k in model.state_dict())  # masks are derived from the sizes
    loaded = load_model(tmp_path).eval()
    assert loaded.params == model.params
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, c), model.log_prob(x, c))
    assert same_under_seed(lambda: model.sample(4, c[:4]), lambda: loaded.sample(4, c[:4]), seed=3)


# --- learning --------------------------------------------------------------------------------------------
def test_short_training_beats_independent_bernoulli_baseline():
    model = build_model("gated-pixelcnn", load_data("digits-binary").spec, {"channels": 16, "layers": 4, "dropout": 0.0})
    final, baseline = fit_briefly(model, "digits-binary", steps=150, lr=5e-3)
    assert final < baseline - 3, (final, baseline)
