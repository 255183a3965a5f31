"""The fused vector coupling (one autograd node, written-out backward) computes exactly what the plain
autograd path computes: outputs, log-determinants, and the gradients of every input and parameter,
for affine and additive couplings, any depth, with and without context, and second derivatives."""

import pytest
import torch
from bijection_checks import check_fused_equals_autograd, outputs_and_grads

from deepgen.bijections import AffineCoupling, KeptToFree, alternating_mask
from deepgen.models.flows.nice import KeptToShift
from deepgen.nets import MLP

pytestmark = pytest.mark.usefixtures("one_thread")


def coupling(d, parity, depth, context, additive=False, out_kind=None):
    torch.manual_seed(depth * 10 + d + parity)
    mask = alternating_mask(d, parity)
    k = int(mask.sum())
    if additive:
        cond = KeptToShift(mask, MLP(k, d - k, 16, depth, context))
    else:
        cond = KeptToFree(mask, MLP(k, 2 * (d - k), 16, depth, context))
    layer = AffineCoupling(mask, cond, scale_bound=2.0, affine=not additive and out_kind != "shift-only")
    for p in layer.parameters():  # away from the zero init, so every path carries a gradient
        p.data.normal_(0, 0.4)
    return layer.double()


CASES = [(d, parity, depth, ctx, additive) for d in (2, 5) for parity in (0, 1) for depth in (0, 1, 3)
         for ctx in (0, 3) for additive in (False, True)]


@pytest.mark.parametrize("d,parity,depth,ctx,additive", CASES)
def test_fused_equals_autograd(d, parity, depth, ctx, additive):
    layer = coupling(d, parity, depth, ctx, additive)
    assert layer.conditioner.fused_layers() is not None
    check_fused_equals_autograd(layer, torch.randn(7, d, dtype=torch.double),
                                torch.randn(7, ctx, dtype=torch.double) if ctx else None)


def test_an_affine_coupling_with_a_two_headed_net_used_additively():
    """affine=False with a net that outputs (s, t): only t moves the data, s gets no gradient."""
    layer = coupling(4, 0, 2, 0, out_kind="shift-only")
    x = torch.randn(5, 4, dtype=torch.double)
    y0, ld0, g0 = outputs_and_grads(layer, x, None, fused=False)
    y1, ld1, g1 = outputs_and_grads(layer, x, None, fused=True)
    assert torch.allclose(y0, y1) and torch.equal(ld1, torch.zeros(5, dtype=torch.double))
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-10)


def test_second_derivatives_raise_through_the_fused_node_and_work_unfused():
    """Gradients of gradients: refused loudly by the fused node (never silently wrong), exact unfused."""
    layer = coupling(3, 1, 2, 2)
    x = torch.randn(4, 3, dtype=torch.double)
    c = torch.randn(4, 2, dtype=torch.double)
    _, _, grads = outputs_and_grads(layer, x, c, fused=True, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate|does not require grad"):
        torch.autograd.grad((grads[0] ** 2).sum(), list(layer.parameters()), allow_unused=True)
    _, _, grads = outputs_and_grads(layer, x, c, fused=False, create_graph=True)
    assert torch.autograd.grad((grads[0] ** 2).sum(), list(layer.parameters()), allow_unused=True)


def test_a_conditioner_that_is_not_a_relu_mlp_is_not_fused():
    mask = alternating_mask(4, 0)
    assert KeptToFree(mask, MLP(2, 4, 8, 2, activation="tanh")).fused_layers() is None
    assert KeptToFree(mask, MLP(2, 4, 8, 2)).fused_layers() is not None
