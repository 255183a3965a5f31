"""PixelCNN: mask patterns, the autoregressive property (1 and 3 channels), exact normalisation,
completion, save/load, context, and learning beyond the independent-pixel baseline."""

import pytest
import torch
from autoregressive_checks import (
    check_autoregressive, check_completion, check_normalised, check_save_load, fit_briefly, take_steps,
)

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.autoregressive.base import raster_ordering
from deepgen.models.registry import build_model
from deepgen.nets.pixelcnn import MaskedConv2d, PixelCNNNet, channel_groups


pytestmark = pytest.mark.usefixtures("one_thread")


def pixelcnn(levels, shape, **params):
    torch.manual_seed(0)
    small = {"channels": 12, "blocks": 2, "kernel": 3, "dropout": 0.0}
    return build_model("pixelcnn", DataSpec("t", tuple(shape), levels), {**small, **params})


# --- MaskedConv2d -------------------------------------------------------------------------------
def test_masked_conv_spatial_pattern_one_channel():
    a = MaskedConv2d(1, 2, 5, "A").mask
    b = MaskedConv2d(1, 2, 5, "B").mask
    expect = torch.tensor([[1, 1, 1, 1, 1],
                           [1, 1, 1, 1, 1],
                           [1, 1, 0, 0, 0],
                           [0, 0, 0, 0, 0],
                           [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(a[0, 0], expect) and torch.equal(a[1, 0], expect)
    expect[2, 2] = True  # mask B keeps the centre
    assert torch.equal(b[0, 0], expect)
    assert a.shape == (2, 1, 5, 5)


def test_masked_conv_channel_groups_at_the_centre():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert channel_groups(3, 3).tolist() == [0, 1, 2]
    a = MaskedConv2d(3, 6, 3, "A", data_channels=3).mask[:, :, 1, 1]  # (out 6, in 3)
    assert a.int().tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    b = MaskedConv2d(6, 3, 1, "B", data_channels=3).mask[:, :, 0, 0]  # (out 3, in 6)
    assert b.int().tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    off_centre = MaskedConv2d(3, 6, 3, "A", data_channels=3).mask[:, :, 0]
    assert off_centre.all()  # the row above: every channel


def test_masked_conv_masks_by_multiplication():
    torch.manual_seed(0)
    conv = MaskedConv2d(2, 3, 3, "A")
    before = conv.weight.detach().clone()
    x = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, before * conv.mask, conv.bias, padding=1))
    conv(x).sum().backward()
    assert torch.equal(conv.weight.grad == 0, ~conv.mask)  # masked weights get no gradient
    assert "mask" not in conv.state_dict()
    with pytest.raises(ConfigError):
        MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ConfigError):
        MaskedConv2d(1, 1, 3, "C")


def test_net_output_layout_matches_channel_groups():
    """Output (B, C, K, H, W): number k of channel c depends on channel c' of its own pixel iff c' < c."""
    torch.manual_seed(0)
    net = PixelCNNNet(3, 2, channels=12, blocks=1, kernel=3).double()
    for c in range(3):
        for k in range(2):
            seen = torch.zeros(3, dtype=torch.bool)
            for _ in range(8):  # several inputs, so ReLU dead zones cannot hide a connection
                x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
                seen |= torch.autograd.grad(net(x)[0, c, k, 1, 1], x)[0][0, :, 1, 1] != 0
            assert seen.tolist() == [c2 < c for c2 in range(3)], (c, k, seen)


# --- autoregressive property --------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,params", [
    (2, (1, 4, 4), {}),                                           # bernoulli
    (5, (1, 3, 4), {}),                                           # categorical
    (5, (1, 3, 3), {"output": "logistic-mixture", "components": 2}),
    (3, (3, 2, 3), {}),                                           # C = 3: mask A / B channel groups
    (4, (3, 2, 2), {"output": "logistic-mixture", "components": 1, "channels": 14}),
    (None, (2, 2, 2), {"components": 2}),                         # continuous: gaussian mixture
])
def test_autoregressive_property(levels, shape, params):
    model = pixelcnn(levels, shape, **params)
    assert torch.equal(model.ordering(), raster_ordering(shape))
    dep = check_autoregressive(model)
    c = shape[0]
    if c > 1:  # the last channel of a pixel sees the earlier channels of its own pixel
        d = torch.arange(model.spec.dim).view(shape)
        assert dep[d[c - 1, 1, 1], d[0, 1, 1]] and dep[d[c - 1, 1, 1], d[c - 2, 1, 1]]
        assert dep[d[0, 1, 1], d[c - 1, 1, 0]]  # and every channel of the pixel on the left


def test_autoregressive_with_context_and_context_reaches_first_dim():
    model = pixelcnn(3, (3, 2, 2), context_features=4, blocks=1)
    ctx = torch.randn(1, 4, dtype=torch.float64)
    check_autoregressive(model, ctx)
    model = pixelcnn(3, (1, 3, 3), context_features=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        x = torch.zeros(2, 1, 3, 3)
        params = model.conditionals(x, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert not torch.allclose(params[0, 0], params[1, 0])  # the first pixel's distribution depends on c


# --- exact normalisation -------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,shape,params", [
    (2, (1, 3, 3), {}),                                           # 512 binary images
    (3, (1, 2, 2), {}),                                           # 81 images, categorical
    (3, (1, 2, 2), {"output": "logistic-mixture", "components": 2}),
    (3, (3, 1, 2), {}),                                           # C = 3 channel masks, 729 images
    (3, (3, 1, 1), {"output": "logistic"}),
])
def test_probabilities_sum_to_one(levels, shape, params):
    check_normalised(pixelcnn(levels, shape, **params))


def test_normalised_for_each_context():
    model = pixelcnn(2, (1, 2, 3), context_features=3)
    lps = [check_normalised(model, c[None]) for c in torch.eye(3)]
    assert not torch.allclose(lps[0], lps[1])


# --- sampling and completion ---------------------------------------------------------------------------
def test_completion_and_samples():
    model = pixelcnn(5, (3, 3, 3))
    torch.manual_seed(1)
    x = torch.randint(0, 5, (6, 3, 3, 3)).float()
    missing = torch.rand_like(x) < 0.5
    check_completion(model, x, missing)
    s = model.sample(4)
    assert s.shape == (4, 3, 3, 3) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 4


def test_completion_with_context_and_mixture_head():
    model = pixelcnn(17, (1, 3, 3), output="logistic-mixture", components=3, context_features=2)
    x = torch.randint(0, 17, (4, 1, 3, 3)).float()
    missing = torch.zeros_like(x, dtype=torch.bool)
    missing[:, :, 1:] = True  # the bottom rows: the exact conditional given the top row
    check_completion(model, x, missing, torch.eye(2)[[0, 1, 0, 1]])


def test_temperature_zero_is_deterministic():
    model = pixelcnn(4, (1, 3, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    a, b = model.sample(5, temperature=0), model.sample(5, temperature=0)
    assert torch.equal(a, b) and (a == a[0]).all()
    # greedy decode by hand: the mode of every conditional in raster order
    x = torch.zeros(1, 1, 3, 3)
    for d in model.ordering().tolist():
        x.view(-1)[d] = model.conditionals(x)[0, d].argmax()
    assert torch.equal(a[0], x[0])


# --- save / load, errors ---------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = pixelcnn(5, (3, 4, 4), dropout=0.2, context_features=2)
    x = torch.randint(0, 5, (16, 3, 4, 4)).float()
    ctx = torch.eye(2)[torch.arange(16) % 2]
    take_steps(model, (x, ctx)).train()
    with torch.no_grad():
        assert not torch.equal(model.log_prob(x, ctx), model.log_prob(x, ctx))  # dropout in training mode
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.log_prob(x, ctx), model.log_prob(x, ctx))  # and off in eval mode
    assert not any(k.endswith("mask") for k in model.state_dict())  # masks are derived, not saved
    check_save_load(model, x, ctx, tmp_path)


def test_config_errors():
    with pytest.raises(ConfigError, match="pixelcnn expects images"):
        build_model("pixelcnn", DataSpec("t", (6,), 2), {})
    with pytest.raises(ConfigError):
        pixelcnn(2, (1, 3, 3), kernel=4)
    with pytest.raises(ConfigError):
        pixelcnn(2, (1, 3, 3), dropout=1.0)
    with pytest.raises(ConfigError):
        pixelcnn(5, (3, 3, 3), channels=4)  # fewer middle feature maps than channel groups
    with pytest.raises(ConfigError):
        pixelcnn(5, (1, 3, 3), output="bernoulli")
    with pytest.raises(ConfigError):
        pixelcnn(5, (1, 3, 3), output="gaussian-mixture")
    assert pixelcnn(2, (1, 2, 2)).output.params_per_dim == 1  # auto: bernoulli
    assert pixelcnn(17, (1, 2, 2)).output.params_per_dim == 17  # auto: categorical
    assert pixelcnn(256, (1, 2, 2), components=4).output.params_per_dim == 12  # auto: logistic mixture


# --- learning ------------------------------------------------------------------------------------------------
def test_short_training_beats_independent_pixel_baseline():
    model = build_model("pixelcnn", load_data("digits-binary").spec, {"channels": 32, "blocks": 2, "kernel": 5, "dropout": 0.0})
    final, baseline = fit_briefly(model, "digits-binary", steps=100, lr=1e-2)
    assert final < baseline - 3, (final, baseline)
