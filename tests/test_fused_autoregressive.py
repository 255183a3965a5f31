"""The fused MAF layer (one autograd node, written-out backward) computes what the plain autograd path does:
outputs, log-determinants and the gradients of the inputs, the context and every parameter, for any depth,
with or without context and direct connections, any ordering; second derivatives raise instead of being wrong."""

import pytest
import torch
from bijection_checks import check_fused_equals_autograd

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


@pytest.mark.parametrize("d,depth,ctx,order", [(d, depth, ctx, order) for d in (2, 5) for depth in (0, 1, 2)
                                                for ctx in (0, 3) for order in ("natural", "random")])
def test_fused_equals_autograd(d, depth, ctx, order):
    lay = layer(d, depth, ctx, order)
    assert lay.conditioner.fused_parts() is not None
    check_fused_equals_autograd(lay, torch.randn(6, d, dtype=torch.double),
                                torch.randn(6, ctx, dtype=torch.double) if ctx else None)


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
