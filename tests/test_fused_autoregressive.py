"""The fused MAF layer (one autograd node, written-out backward) computes what the plain autograd path does:
outputs, log-determinants and the gradients of the inputs, the context and every parameter, for any depth,
with or without context and direct connections, any ordering; second derivatives raise instead of being wrong."""

import pytest
import torch

from deepgen.bijections.autoregressive import MaskedAutoregressive
from deepgen.models.flows.maf import MADEConditioner

pytestmark = pytest.mark.usefixtures("one_thread")


def layer(d, depth, ctx, order, seed=0):
    torch.manual_seed(seed)
    ordering = torch.arange(d) if order == "natural" else torch.randperm(d)
    lay = MaskedAutoregressive(MADEConditioner(d, 12, depth, ordering, seed, ctx), scale_bound=2.0)
    for p in lay.parameters():  # away from the zero init, so every path carries a gradient
        p.data.normal_(0, 0.4)
    return lay.double()


def run(lay, x, c, fused):
    lay.fused = fused
    x = x.clone().requires_grad_()
    c = None if c is None else c.clone().requires_grad_()
    z, ld = lay(x, c)
    w = torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)
    loss = (w * z).sum() + (ld * torch.arange(1.0, len(ld) + 1, dtype=ld.dtype)).sum()
    inputs = [x] + ([c] if c is not None else []) + list(lay.parameters())
    return z, ld, torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("d,depth,ctx,order", [(d, depth, ctx, order) for d in (2, 5) for depth in (0, 1, 2)
                                                for ctx in (0, 3) for order in ("natural", "random")])
def test_fused_equals_autograd(d, depth, ctx, order):
    lay = layer(d, depth, ctx, order)
    assert lay.conditioner.fused_parts() is not None
    x = torch.randn(6, d, dtype=torch.double)
    c = torch.randn(6, ctx, dtype=torch.double) if ctx else None
    z0, ld0, g0 = run(lay, x, c, fused=False)
    z1, ld1, g1 = run(lay, x, c, fused=True)
    assert torch.allclose(z0, z1, atol=1e-12) and torch.allclose(ld0, ld1, atol=1e-12)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-10), (a - b).abs().max()


def test_the_fused_layer_is_still_autoregressive_and_its_logdet_is_the_jacobians():
    lay = layer(4, 2, 0, "random", seed=3)
    x = torch.randn(4, dtype=torch.double)
    jac = torch.autograd.functional.jacobian(lambda v: lay(v[None])[0][0], x, vectorize=True)
    pos = torch.argsort(lay.conditioner.ordering)
    # z_i depends on x_j only for j at or before i in the ordering (a triangular Jacobian after reordering)
    for i in range(4):
        for j in range(4):
            if pos[j] > pos[i]:
                assert jac[i, j] == 0
    assert torch.allclose(torch.linalg.slogdet(jac)[1], lay(x[None])[1][0], atol=1e-10)


def test_second_derivatives_raise_through_the_fused_node():
    lay = layer(3, 1, 0, "natural")
    x = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    (gx,) = torch.autograd.grad(lay(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate|does not require grad"):
        torch.autograd.grad((gx ** 2).sum(), list(lay.parameters()), allow_unused=True)
