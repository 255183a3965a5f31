"""Runs of fused layers (couplings, MAF layers, NSF's autoregressive splines) in a Compose become one autograd node (FusedStack) that computes what the layers
compute one by one: outputs, log-determinants, and the gradients of the input, the context and every
parameter; also when the input needs no gradient (the flow's data), and around a layer that cannot fuse."""

import pytest
import torch

from deepgen.bijections import AffineCoupling, Compose, DiagonalScaling, KeptToFree, alternating_mask
from deepgen.data import load_data
from deepgen.models.flows.maf import autoregressive_layers
from deepgen.models.flows.nsf import autoregressive_layers as spline_layers
from deepgen.models.registry import build_model
from deepgen.nets import MLP

pytestmark = pytest.mark.usefixtures("one_thread")


def couplings(d, n, ctx, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(n):
        mask = alternating_mask(d, i % 2)
        k = int(mask.sum())
        layers.append(AffineCoupling(mask, KeptToFree(mask, MLP(k, 2 * (d - k), 16, 2, ctx)), scale_bound=2.0))
    return layers


def made_layers(d, n, ctx):
    return autoregressive_layers(d, n, 16, 2, "reversed", 2.0, 0, ctx)


def set_fused(flow, on: bool):
    for m in flow.modules():
        if hasattr(m, "fused"):
            m.fused = on


def run(flow, x, context, fused, x_grad=True):
    set_fused(flow, fused)
    x = x.clone().requires_grad_(x_grad)
    context = None if context is None else context.clone().requires_grad_()
    y, ld = flow(x, context)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    loss = (w * y).sum() + (ld * torch.linspace(0.5, 1.5, len(ld), dtype=ld.dtype)).sum()
    inputs = ([x] if x_grad else []) + ([context] if context is not None else []) + list(flow.parameters())
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return y, ld, grads, y.grad_fn.name()


@pytest.mark.parametrize("kind", ["coupling", "made", "spline", "mixed"])
@pytest.mark.parametrize("ctx", [0, 3])
@pytest.mark.parametrize("x_grad", [True, False])
def test_a_fused_run_equals_its_layers_one_by_one(kind, ctx, x_grad):
    d = 5
    if kind == "coupling":
        layers = couplings(d, 4, ctx)
    elif kind == "made":
        layers = made_layers(d, 3, ctx)
    elif kind == "spline":  # NSF's autoregressive RQ splines, some points in the linear tails (|x| > 2)
        layers = spline_layers(d, 3, 16, 2, 6, 2.0, ctx)
    else:  # two runs around a layer that does not fuse
        layers = couplings(d, 2, ctx) + [DiagonalScaling(d)] + made_layers(d, 2, ctx) + couplings(d, 2, ctx, seed=1)
    flow = Compose(layers).double()
    for p in flow.parameters():  # away from the zero init, so every path carries a gradient
        p.data.normal_(0, 0.3)
    torch.manual_seed(5)
    x = torch.randn(9, d, dtype=torch.double) * (1.5 if kind == "spline" else 1.0)
    context = torch.randn(9, ctx, dtype=torch.double) if ctx else None
    y0, ld0, g0, node0 = run(flow, x, context, fused=False, x_grad=x_grad)
    y1, ld1, g1, node1 = run(flow, x, context, fused=True, x_grad=x_grad)
    assert node1 == "FusedStackBackward" and node0 != node1
    assert torch.allclose(y0, y1, atol=1e-12) and torch.allclose(ld0, ld1, atol=1e-12)
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10), (a - b).abs().max()


@pytest.mark.parametrize("model", ["realnvp", "maf", "nsf"])
def test_default_vector_flows_train_through_one_node(model):
    flow = build_model(model, load_data("moons").spec, {})
    x = load_data("moons").train[:32]
    loss = flow.loss(x)["loss"]
    names, seen, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and id(fn) not in seen:
            seen.add(id(fn))
            names.add(fn.name())
            stack += [f for f, _ in fn.next_functions]
    assert "FusedNormalLogProbBackward" in names  # the layers and the N(0, I) base density: one node
    assert not {"FusedCouplingMLPBackward", "FusedMADEAffineBackward", "SplineForwardBackward", "PowBackward0",
                "FusedStackBackward"} & names


@pytest.mark.parametrize("kind", ["coupling", "made", "spline"])
@pytest.mark.parametrize("ctx", [0, 3])
@pytest.mark.parametrize("x_grad", [True, False])
def test_the_fused_normal_log_prob_equals_the_stack_plus_the_base_density(kind, ctx, x_grad):
    """FusedNormalLogProb = log N(y; 0, I) + log|det| of the fused stack, its gradients those of the two-node
    path (the stack, then StandardNormal.log_prob), for the input, the context and every parameter."""
    from deepgen.distributions import StandardNormal

    d = 5
    layers = {"coupling": lambda: couplings(d, 4, ctx), "made": lambda: made_layers(d, 3, ctx),
              "spline": lambda: spline_layers(d, 3, 16, 2, 6, 2.0, ctx)}[kind]()
    flow = Compose(layers).double()
    for p in flow.parameters():
        p.data.normal_(0, 0.3)
    torch.manual_seed(5)
    x = (torch.randn(9, d, dtype=torch.double) * 1.5).requires_grad_(x_grad)
    context = torch.randn(9, ctx, dtype=torch.double, requires_grad=True) if ctx else None
    inputs = ([x] if x_grad else []) + ([context] if context is not None else []) + list(flow.parameters())
    weights = torch.linspace(0.5, 1.5, 9, dtype=torch.double)
    y, ld = flow(x, context)
    two_nodes = StandardNormal((d,)).double().log_prob(y) + ld
    one_node = flow.normal_log_prob(x, context)
    assert one_node.grad_fn.name() == "FusedNormalLogProbBackward"
    assert torch.allclose(one_node, two_nodes, atol=1e-12, rtol=0)
    g0 = torch.autograd.grad((weights * two_nodes).sum(), inputs)
    g1 = torch.autograd.grad((weights * one_node).sum(), inputs)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-10), (a - b).abs().max()


def test_the_normal_log_prob_path_is_taken_only_when_the_whole_chain_fuses():
    d = 5
    mixed = Compose(couplings(d, 2, 0) + [DiagonalScaling(d)] + couplings(d, 2, 0, seed=1))
    assert mixed.normal_log_prob(torch.randn(4, d)) is None
    single = Compose(couplings(d, 1, 0))
    assert single.normal_log_prob(torch.randn(4, d)) is None
    fused = Compose(couplings(d, 2, 0))
    set_fused(fused, False)
    assert fused.normal_log_prob(torch.randn(4, d)) is None
