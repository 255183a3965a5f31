"""PixelRNN: causal masks with channel groups, the Row LSTM's triangular receptive field and the Diagonal
BiLSTM's full one, exact normalisation, completion, save/load, context, learning."""

import pytest
import torch
from autoregressive_checks import (
    check_autoregressive, check_completion, check_normalised, check_save_load, fit_briefly, random_inputs,
)
from conftest import same_under_seed

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.registry import build_model
from deepgen.nets.pixelrnn import CausalConv, channel_groups, conv_mask, skew, unskew

VARIANTS = ("row", "diagonal")


pytestmark = pytest.mark.usefixtures("one_thread")


def pixelrnn(levels, shape, **params):
    """A small PixelRNN in eval mode (dropout off: the checks compare passes)."""
    torch.manual_seed(0)
    return build_model("pixelrnn", DataSpec("t", tuple(shape), levels), {"hidden": 24, "kernel": 3, **params}).eval()


# --- building blocks --------------------------------------------------------------------------------
def test_skew_shifts_row_r_by_r_and_unskew_inverts_it():
    x = torch.randn(2, 3, 4, 5, 6)  # (..., H, W, C)
    s = skew(x)
    assert s.shape == (2, 3, 4, 8, 6)
    for r in range(4):
        assert torch.equal(s[..., r, r:r + 5, :], x[..., r, :, :])
        assert (s[..., r, :r, :] == 0).all() and (s[..., r, r + 5:, :] == 0).all()
    assert torch.equal(unskew(s, 5), x)


def test_conv_masks_and_channel_groups():
    groups = channel_groups(6, 3)
    assert groups.tolist() == [0, 0, 1, 1, 2, 2]
    data = torch.arange(3)
    a = conv_mask(groups, data, 3, 3, "A")
    b = conv_mask(groups, groups, 3, 3, "B")
    assert a[:, :, 0].all() and a[:, :, 1, 0].all() and not a[:, :, 2].any() and not a[:, :, 1, 2].any()
    # centre: mask A sees the channels before the group's own, mask B up to its own
    assert torch.equal(a[:, :, 1, 1], data[None, :] < groups[:, None])
    assert torch.equal(b[:, :, 1, 1], groups[None, :] <= groups[:, None])
    assert not a[:2, :, 1, 1].any()  # group 0 (the first channel) sees nothing of its own pixel


def test_causal_conv_equals_masked_conv2d_and_masked_weights_get_no_gradient():
    groups = channel_groups(6, 2)
    conv = CausalConv(groups, channel_groups(4, 2), (3, 5), "A")
    x = torch.randn(2, 4, 6, 4, requires_grad=True)  # channel-last (B, H, W, C)
    out = conv(x)
    full = conv_mask(groups, channel_groups(4, 2), 3, 5, "A")
    weight = torch.zeros(6, 4, 3, 5)
    for t, (a, b) in enumerate(conv.taps):
        weight[:, :, a, b] = (conv.weight * conv.mask)[:, 4 * t:4 * t + 4]
    assert torch.equal(weight != 0, full)
    ref = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), weight, conv.bias, padding=(1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert (conv.weight.grad[~conv.mask] == 0).all()
    assert "mask" not in conv.state_dict()  # rebuilt from the groups, not saved


# --- the autoregressive property ------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("levels,shape,ctx", [(2, (1, 4, 5), 0), (2, (3, 2, 3), 0), (2, (1, 3, 3), 3)])
def test_autoregressive_property_by_gradients(variant, levels, shape, ctx):
    model = pixelrnn(levels, shape, variant=variant, context_features=ctx)
    context = torch.eye(ctx)[[1]].double() if ctx else None
    # The Diagonal BiLSTM sees every earlier pixel (and channel); the Row LSTM has a blind spot.
    dep = check_autoregressive(model, context, full=variant == "diagonal")
    if variant == "row" and shape == (1, 4, 5):
        pos = torch.argsort(model.ordering())
        allowed = pos[None, :] < pos[:, None]
        assert (allowed & ~dep).any()  # the blind spot is real ...
        idx = torch.arange(20).view(4, 5)
        assert dep[idx[3, 2], idx[2, 1:4]].all() and dep[idx[3, 2], idx[3, 1]]  # ... but the cone above is seen
        assert dep[idx[3, 2], idx[0, 0]]  # a triangle widening upwards


def test_rgb_channel_order_inside_a_pixel():
    """C = 3: R of a pixel sees no channel of it, G sees R, B sees R and G (through the channel groups)."""
    for variant in VARIANTS:
        model = pixelrnn(2, (3, 2, 2), variant=variant)
        dep = check_autoregressive(model, full=variant == "diagonal")
        r, g, b = 0, 4, 8  # pixel (0, 0) of each channel in the flattened (C, H, W) order
        assert not dep[r, [r, g, b]].any()
        assert dep[g, r] and not dep[g, [g, b]].any()
        assert dep[b, r] and dep[b, g] and not dep[b, b]
        assert dep[r + 1, [r, g, b]].all()  # pixel (0, 1) sees all of pixel (0, 0)


# --- exact normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_probabilities_sum_to_one(variant):
    check_normalised(pixelrnn(2, (1, 3, 3), variant=variant, hidden=8))  # 512 images
    check_normalised(pixelrnn(3, (1, 2, 2), variant=variant, hidden=8, output="logistic"))
    check_normalised(pixelrnn(3, (1, 2, 2), variant=variant, hidden=8, output="logistic-mixture", components=2))
    check_normalised(pixelrnn(2, (2, 2, 2), variant=variant, hidden=8))  # two channels


def test_normalised_for_each_context_and_context_changes_the_distribution():
    model = pixelrnn(3, (1, 2, 2), variant="diagonal", hidden=8, context_features=2)
    lps = [check_normalised(model, torch.eye(2)[[k]]) for k in range(2)]
    assert (lps[0] - lps[1]).abs().max() > 0.1
    # the first pixel, which sees no data, still depends on the label
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)  # (check_normalised left the model in float64)
    first = model.conditionals(x, torch.eye(2).double())[:, 0]
    assert not torch.allclose(first[0], first[1])


# --- sampling and completion ---------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_completion_and_sampling(variant):
    model = pixelrnn(5, (2, 2, 3), variant=variant, hidden=12)
    x = random_inputs(model.spec, 6).float()
    missing = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    check_completion(model, x, missing)
    s = model.sample(7)
    assert s.shape == (7, 2, 2, 3) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 4
    cold = model.sample(5, temperature=0)
    assert (cold == cold[0]).all()  # temperature 0: every sample is the mode path
    assert same_under_seed(lambda: model.sample(4), lambda: model.sample(4), seed=3)


def test_continuous_images_use_a_gaussian_mixture():
    model = pixelrnn(None, (1, 3, 3), hidden=8)
    assert type(model.output).__name__ == "ContinuousMixtureOutput"
    x = torch.randn(5, 1, 3, 3) * 3 + 1
    model.fit_preprocessing(x)
    lp = model.log_prob(x)
    assert lp.shape == (5,) and torch.isfinite(lp).all()
    assert model.sample(3).shape == (3, 1, 3, 3)


# --- save / load, errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_reproduces_log_prob_exactly(variant, tmp_path):
    model = pixelrnn(17, (1, 3, 3), variant=variant, hidden=12, context_features=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = random_inputs(model.spec, 5).float()
    c = torch.eye(3)[[0, 1, 2, 0, 1]]
    check_save_load(model, x, c, tmp_path)


def test_config_errors():
    with pytest.raises(ConfigError, match="pixelrnn"):
        build_model("pixelrnn", DataSpec("t", (6,), 2), {})
    with pytest.raises(ConfigError, match="odd"):
        pixelrnn(2, (1, 4, 4), kernel=4)
    with pytest.raises(ConfigError):
        pixelrnn(2, (1, 4, 4), variant="column")
    with pytest.raises(ConfigError):
        pixelrnn(5, (1, 4, 4), output="bernoulli")
    with pytest.raises(ConfigError):
        pixelrnn(None, (1, 4, 4), output="categorical")
    assert type(pixelrnn(256, (1, 2, 2)).output).__name__ == "LogisticMixtureOutput"
    assert type(pixelrnn(17, (1, 2, 2)).output).__name__ == "CategoricalOutput"


# --- learning ------------------------------------------------------------------------------------------
def test_short_training_beats_the_independent_pixel_baseline():
    model = build_model("pixelrnn", load_data("digits-binary").spec, {"hidden": 16, "layers": 1})
    final, baseline = fit_briefly(model, "digits-binary", steps=150, lr=1e-2)
    assert final < baseline - 3, (final, baseline)
