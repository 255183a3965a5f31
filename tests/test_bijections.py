"""Property tests every bijection must pass (zuko's template).

inverse(forward(x)) == x; log|det| equals log|det| of the autograd Jacobian, in
both directions; gradients reach every parameter; eval mode equals train mode.
"""

import pytest
import torch

from bijection_checks import jacobian_logdet, perturb

from deepgen.bijections import (
    Affine, AffineCoupling, Compose, FactorOut, Inverse, Logit, Squeeze,
    alternating_mask, channel_mask, checkerboard_mask,
)
from deepgen.data.spec import DataSpec
from deepgen.models.registry import build_model
from deepgen.nets import MLP, ConvResNet

CTX = 3


_perturb = perturb


def vector_coupling(ctx=0, affine=True):
    return AffineCoupling(alternating_mask(4, 1), MLP(4, 8, 16, 2, ctx, zero_init=True), 3.0, affine)


def image_coupling(mask_fn, shape=(4, 4, 4), ctx=0):
    c = shape[0]
    return AffineCoupling(mask_fn(shape, 0), ConvResNet(c, 2 * c, 8, 1, ctx, zero_init=True), 2.0)


CASES = {
    # name: (factory, example shape, uses context, input domain)
    "affine_coupling": (lambda: vector_coupling(), (4,), False, "real"),
    "affine_coupling_context": (lambda: vector_coupling(CTX), (4,), True, "real"),
    "additive_coupling": (lambda: vector_coupling(affine=False), (4,), False, "real"),
    "checkerboard_coupling": (lambda: image_coupling(checkerboard_mask), (4, 4, 4), False, "real"),
    "channel_coupling_context": (lambda: image_coupling(channel_mask, ctx=CTX), (4, 4, 4), True, "real"),
    "logit": (lambda: Logit(0.05), (5,), False, "unit"),
    "affine": (lambda: Affine(torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 3.0])), (3,), False, "real"),
    "squeeze": (lambda: Squeeze(), (2, 4, 4), False, "real"),
    "factor_out": (lambda: FactorOut(2, Compose([image_coupling(checkerboard_mask, (2, 2, 2))])), (4, 2, 2),
                   False, "real"),
    "compose_inverse": (lambda: Compose([vector_coupling(CTX), Inverse(vector_coupling(CTX))]), (4,), True, "real"),
    "realnvp_vector": (lambda: build_model("realnvp", DataSpec("v", (4,)), {"couplings": 4, "hidden": 16}).transform,
                       (4,), False, "real"),
    "realnvp_image": (lambda: build_model("realnvp", DataSpec("i", (1, 4, 4), 5),
                                          {"scales": 2, "channels": 8, "blocks": 1}).transform,
                      (1, 4, 4), False, "unit"),
}


def make(name):
    factory, shape, uses_ctx, domain = CASES[name]
    torch.manual_seed(0)
    # deep stacks of random couplings blow up exponentially: perturb them less
    bij = _perturb(factory(), scale=0.05 if name.startswith("realnvp") else 0.3).double()
    n = 3
    x = torch.randn(n, *shape, dtype=torch.float64)
    if domain == "unit":
        x = torch.rand(n, *shape, dtype=torch.float64) * 0.9 + 0.05
    ctx = torch.randn(n, CTX, dtype=torch.float64) if uses_ctx else None
    return bij, x, ctx


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_roundtrip(name):
    bij, x, ctx = make(name)
    y, ld = bij(x, ctx)
    x2, ld_inv = bij.inverse(y, ctx)
    assert torch.allclose(x2, x, atol=1e-9), (x2 - x).abs().max()
    assert torch.allclose(ld_inv, -ld, atol=1e-9)
    if name != "squeeze":  # every other case is a non-trivial map after perturbation
        assert y.shape != x.shape or not torch.allclose(y, x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_logdet_matches_autograd_jacobian(name):
    bij, x, ctx = make(name)
    _, ld = bij(x, ctx)
    assert torch.allclose(ld, jacobian_logdet(bij, x, ctx), atol=1e-7)
    y, _ = bij(x, ctx)
    _, ld_inv = bij.inverse(y, ctx)
    assert torch.allclose(ld_inv, jacobian_logdet(bij.inverse, y, ctx), atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_reach_every_parameter(name):
    bij, x, ctx = make(name)
    if not list(bij.parameters()):
        pytest.skip("no parameters")
    y, ld = bij(x, ctx)
    (y.square().sum() + ld.sum()).backward()
    for pname, p in bij.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_mode_equals_train_mode(name):
    bij, x, ctx = make(name)
    y_train, ld_train = bij.train()(x, ctx)
    y_eval, ld_eval = bij.eval()(x, ctx)
    assert torch.equal(y_train, y_eval) and torch.equal(ld_train, ld_eval)


def test_zero_initialised_coupling_is_identity():
    bij = vector_coupling()
    x = torch.randn(5, 4)
    y, ld = bij(x)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(5))


def test_coupling_scales_are_bounded():
    bij = _perturb(vector_coupling(), scale=50.0)
    x = 100 * torch.randn(64, 4)
    _, ld = bij(x)
    # two free dims, each |s| < bound = 3
    assert ld.abs().max() <= 2 * 3.0 + 1e-5


def test_masks():
    assert alternating_mask(5, 0).tolist() == [1, 0, 1, 0, 1]
    cb = checkerboard_mask((2, 3, 3), 1)
    assert cb[0, 0, 0] == 0 and cb[0, 0, 1] == 1 and torch.equal(cb[0], cb[1])
    ch = channel_mask((4, 2, 2), 0)
    assert ch[:2].all() and not ch[2:].any()
