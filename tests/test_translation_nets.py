"""Translation building blocks: U-Net shapes and skips, PatchGAN grid and receptive field, the losses
against hand-computed values, and CycleGAN's image pool."""

import math

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.losses.translation import (
    cycle_loss, discriminator_bce_halved, get_translation_gan_loss, identity_loss, l1_reconstruction,
    least_squares_discriminator, least_squares_generator,
)
from deepgen.nets.image_pool import ImagePool
from deepgen.nets.patchgan import PatchGAN, patch_downsamples, receptive_field
from deepgen.nets.unet import UNet, unet_levels

pytestmark = pytest.mark.usefixtures("one_thread")


# --- U-Net -----------------------------------------------------------------------------

@pytest.mark.parametrize("size, levels", [((8, 8), 3), ((16, 16), 4), ((32, 48), 5), ((5, 7), 2)])
def test_unet_keeps_the_image_size_and_halves_down_to_one_pixel(size, levels):
    net = UNet(3, 2, size, channels=8).eval()
    assert net.levels == levels == unet_levels(*size)
    x = torch.randn(2, 3, *size)
    assert net(x).shape == (2, 2, *size)
    # the bottleneck is one pixel along the shorter side
    h = x
    for down in net.down:
        h = down(h)
    assert min(h.shape[-2:]) == 1


def test_unet_rejects_other_sizes_and_impossible_levels():
    with pytest.raises(ConfigError, match="levels=4"):
        UNet(1, 1, (8, 8), levels=4)
    with pytest.raises(ConfigError, match="at least 2x2"):
        UNet(1, 1, (1, 8))
    with pytest.raises(ValueError, match="8x8"):
        UNet(1, 1, (8, 8), channels=4)(torch.zeros(1, 1, 16, 16))


def _cut_below(net, level):
    """Make encoder level ``level`` (1-based) output zeros: everything below it carries no input."""
    return net.down[level - 1].register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))


@pytest.mark.parametrize("size", [(8, 8), (32, 48)])
def test_unet_skip_connections_carry_input_detail_at_every_scale(size):
    torch.manual_seed(0)
    net = UNet(1, 1, size, channels=8, norm="none").eval()
    x = torch.rand(1, 1, *size)
    x2 = x.clone()
    x2[0, 0, 1, 2] += 1.0  # one pixel of detail
    for level in range(1, net.levels + 1):
        hook = _cut_below(net, level)
        try:
            differs = not torch.allclose(net(x), net(x2))
        finally:
            hook.remove()
        # cutting level 1 leaves no path at all; cutting any deeper level leaves the skips above it
        assert differs == (level > 1), level
    # with only the outermost skip left, the pixel's effect stays local (no path through a coarse code)
    hook = _cut_below(net, 2)
    delta = (net(x2) - net(x)).abs()[0, 0]
    hook.remove()
    assert delta[1, 2] > 0 and delta[-1, -1] == 0


def test_unet_dropout_is_noise_in_training_only():
    torch.manual_seed(0)
    net = UNet(1, 1, (8, 8), channels=8, dropout=0.5)
    assert net.dropout_levels == {2, 3}  # the innermost decoder blocks, never the outermost
    x = torch.rand(4, 1, 8, 8)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
    assert UNet(1, 1, (8, 8), dropout=0.0).dropout_levels == set()


# --- PatchGAN --------------------------------------------------------------------------

@pytest.mark.parametrize("n, size, grid", [(0, (8, 8), (8, 8)), (1, (8, 8), (4, 4)), (2, (32, 48), (8, 12)),
                                           (3, (64, 64), (8, 8))])
def test_patchgan_grid_size(n, size, grid):
    d = PatchGAN(2, channels=4, downsamples=n)
    assert d(torch.randn(3, 2, *size)).shape == (3, 1, *grid)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_patchgan_receptive_field_is_what_it_claims(n):
    torch.manual_seed(0)
    d = PatchGAN(1, channels=4, downsamples=n).double()
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    cols = x.grad[0, 0].abs().sum(0).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field(n) == d.receptive_field
    assert cols.max() - cols.min() + 1 == receptive_field(n)


def test_patch_size_chooses_the_fewest_halvings():
    assert [receptive_field(n) for n in range(5)] == [5, 12, 26, 54, 110]
    assert patch_downsamples(5, 8, 8) == 0
    assert patch_downsamples(12, 8, 8) == 1
    assert patch_downsamples(13, 8, 8) == 2
    assert patch_downsamples(70, 256, 256) == 4
    with pytest.raises(ConfigError, match="patch=54 needs 3 halvings"):
        patch_downsamples(54, 4, 8)


# --- losses ----------------------------------------------------------------------------

def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_losses_match_hand_computed_values():
    assert l1_reconstruction(t(1.0, 2.0), t(0.0, 4.0)).item() == pytest.approx(1.5)
    # 1/2 [mean((1-1)^2, (0-1)^2) + mean(0^2, 2^2)] = 1/2 [0.5 + 2]
    assert least_squares_discriminator(t(1.0, 0.0), t(0.0, 2.0)).item() == pytest.approx(1.25)
    # one-sided smoothing eps = 0.2: real target 0.8
    assert least_squares_discriminator(t(1.0), t(0.0), 0.2).item() == pytest.approx(0.5 * 0.04)
    assert least_squares_generator(t(1.0, 3.0)).item() == pytest.approx(2.0)
    assert discriminator_bce_halved(t(0.0, 0.0), t(0.0, 0.0)).item() == pytest.approx(math.log(2))
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert discriminator_bce_halved(t(2.0), t(-1.0)).item() == pytest.approx(0.5 * (softplus(-2) + softplus(-1)))
    # |[1, -1] - 0| mean 1  +  |3 - 1| = 2
    assert cycle_loss(t(0.0, 0.0), t(1.0, -1.0), t(1.0), t(3.0)).item() == pytest.approx(3.0)
    assert identity_loss(t(0.0, 1.0), t(0.5, 1.0), t(2.0), t(2.0)).item() == pytest.approx(0.25)


def test_losses_average_over_entries_and_vanish_at_their_optimum():
    x = torch.randn(4, 1, 8, 8)
    assert cycle_loss(x, x, x, x).item() == 0.0 and identity_loss(x, x, x, x).item() == 0.0
    # an error of 1 in every entry is 1 whatever the size
    assert l1_reconstruction(x + 1, x).item() == pytest.approx(1.0)
    assert least_squares_generator(torch.ones(2, 1, 3, 3)).item() == 0.0
    assert least_squares_discriminator(torch.ones(5), torch.zeros(5)).item() == 0.0


def test_least_squares_gradients():
    real, fake = t(0.5).requires_grad_(), t(0.5).requires_grad_()
    least_squares_discriminator(real, fake).backward()
    assert real.grad.item() == pytest.approx(-0.5) and fake.grad.item() == pytest.approx(0.5)
    g = t(0.0).requires_grad_()
    least_squares_generator(g).backward()
    assert g.grad.item() == pytest.approx(-2.0)  # d/dD (D - 1)^2 at 0


def test_gan_loss_names():
    assert get_translation_gan_loss("least_squares").generator is least_squares_generator
    with pytest.raises(ConfigError, match="did you mean 'least_squares'"):
        get_translation_gan_loss("least_square")


# --- image pool ------------------------------------------------------------------------

def ids(n, start):
    """n fakes (n, 1, 2, 2), fake i filled with the number start + i."""
    return (torch.arange(n, dtype=torch.float32) + start)[:, None, None, None].expand(n, 1, 2, 2).clone()


def stored(pool):
    return set(pool.images[:pool.filled, 0, 0, 0].tolist())


def test_pool_returns_the_fakes_while_filling_and_holds_capacity():
    pool = ImagePool(50, (1, 2, 2))
    for k in range(2):  # 40 fakes: all stored, all returned as they are
        f = ids(20, 100 * k)
        assert torch.equal(pool.query(f), f)
    assert pool.filled == 40
    f = ids(20, 1000)
    out = pool.query(f)
    # the first 10 fill the pool and come back unchanged; the pool is then full
    assert torch.equal(out[:10], f[:10]) and pool.filled == 50 and len(pool.images) == 50
    old = set(range(20)) | set(range(100, 120)) | set(range(1000, 1010))
    assert all(v == 1000 + i or v in old for i, v in enumerate(out[10:, 0, 0, 0].tolist(), 10))


def test_pool_swaps_with_probability_one_half_once_full():
    torch.manual_seed(0)
    pool = ImagePool(50, (1, 2, 2))
    pool.query(ids(50, 0))
    swapped, total = 0, 0
    for k in range(1, 41):
        before = stored(pool)
        f = ids(25, 1000 * k)
        out = pool.query(f)
        got = out[:, 0, 0, 0].tolist()
        for i, v in enumerate(got):
            if v == 1000 * k + i:
                continue  # returned as it is
            swapped += 1
            assert v in before  # a stored fake came back in its place...
        total += len(got)
        assert pool.filled == 50 and len(stored(pool)) <= 50
        # every stored value is an old one or one of this batch
        assert stored(pool) <= before | set(range(1000 * k, 1000 * k + 25))
    assert 0.44 < swapped / total < 0.56  # 1000 Bernoulli(1/2): 4 standard deviations


def test_pool_of_size_zero_and_detachment():
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    assert ImagePool(0, (1, 2, 2)).query(x).requires_grad is False
    out = ImagePool(3, (1, 2, 2)).query(x * 2)
    assert not out.requires_grad and torch.equal(out, (x * 2).detach())


def test_pool_is_not_saved_and_is_seeded():
    pool = ImagePool(4, (1, 2, 2))
    assert "images" not in pool.state_dict()
    assert pool.double().images.dtype == torch.float64

    def run():
        p = ImagePool(4, (1, 2, 2))
        return torch.cat([p.query(ids(3, 10 * k)) for k in range(6)])

    torch.manual_seed(3)
    first = run()
    torch.manual_seed(3)
    assert torch.equal(first, run())
