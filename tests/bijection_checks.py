"""Reusable property checks for bijections (zuko's template), shared by every flow's tests.

    from bijection_checks import perturb, check_bijection
    check_bijection(bij.double(), x.double(), ctx)

checks inverse(forward(x)) == x, log|det| in both directions against the autograd Jacobian,
that gradients reach every parameter and that eval mode equals train mode.
"""

from __future__ import annotations

import torch
from torch import nn


def perturb(module: nn.Module, scale: float = 0.3, seed: int = 1) -> nn.Module:
    """Zero-initialised conditioners make an identity; randomise every parameter so tests see a real map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def jacobian_logdet(fn, x, ctx):
    """log|det J| per example from the autograd Jacobian of one example at a time."""
    out = []
    for i in range(len(x)):
        c = None if ctx is None else ctx[i : i + 1]

        def f(xi):
            y, _ = fn(xi.reshape(1, *x.shape[1:]), c)
            return y.reshape(-1)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(-1), vectorize=True)
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def check_roundtrip(bij, x, ctx=None, atol=1e-9):
    y, ld = bij(x, ctx)
    x2, ld_inv = bij.inverse(y, ctx)
    assert torch.allclose(x2, x, atol=atol), f"round trip error {(x2 - x).abs().max():.3g}"
    assert torch.allclose(ld_inv, -ld, atol=atol), f"inverse log-det differs by {(ld_inv + ld).abs().max():.3g}"
    return y, ld


def check_logdet(bij, x, ctx=None, atol=1e-7):
    y, ld = bij(x, ctx)
    auto = jacobian_logdet(bij, x, ctx)
    assert torch.allclose(ld, auto, atol=atol), f"forward log-det off by {(ld - auto).abs().max():.3g}"
    _, ld_inv = bij.inverse(y, ctx)
    auto_inv = jacobian_logdet(bij.inverse, y, ctx)
    assert torch.allclose(ld_inv, auto_inv, atol=atol), f"inverse log-det off by {(ld_inv - auto_inv).abs().max():.3g}"


def check_gradients(bij, x, ctx=None):
    if not list(bij.parameters()):
        return
    bij.zero_grad()
    y, ld = bij(x, ctx)
    (y.square().sum() + ld.sum()).backward()
    for name, p in bij.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def check_eval_equals_train(bij, x, ctx=None):
    y_train, ld_train = bij.train()(x, ctx)
    y_eval, ld_eval = bij.eval()(x, ctx)
    assert torch.equal(y_train, y_eval) and torch.equal(ld_train, ld_eval), "eval mode differs from train mode"


def check_bijection(bij, x, ctx=None, atol=1e-9, logdet_atol=1e-7):
    """All four properties (use float64 modules and inputs)."""
    check_roundtrip(bij, x, ctx, atol)
    check_logdet(bij, x, ctx, logdet_atol)
    check_gradients(bij, x, ctx)
    check_eval_equals_train(bij, x, ctx)


def arc_data(n: int = 512, seed: int = 0) -> torch.Tensor:
    """A noisy half circle: (n, 2) points for short training tests."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3.141592653589793
    return torch.stack([t.cos(), t.sin()], 1) + 0.1 * torch.randn(n, 2, generator=g)


def nll_before_and_after_training(model, data: torch.Tensor, steps: int = 100, lr: float = 3e-3, batch: int = 128):
    """(NLL before, NLL after) ``steps`` Adam steps on ``model.loss`` over random batches of ``data``."""
    model.fit_preprocessing(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    before = -model.log_prob(data).mean().item()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(data[torch.randint(0, len(data), (batch,))])["loss"].backward()
        opt.step()
    return before, -model.log_prob(data).mean().item()


def outputs_and_grads(layer, x, context, fused: bool, create_graph: bool = False):
    """(y, log|det|, gradients of x, the context and every parameter) of a weighted sum of ``layer``'s outputs,
    with its fused path on or off (``layer.fused``)."""
    layer.fused = fused
    x = x.clone().requires_grad_()
    context = None if context is None else context.clone().requires_grad_()
    y, ld = layer(x, context)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    loss = (w * y).sum() + (ld * torch.arange(1.0, len(ld) + 1, dtype=ld.dtype)).sum()
    inputs = [x] + ([context] if context is not None else []) + list(layer.parameters())
    return y, ld, torch.autograd.grad(loss, inputs, create_graph=create_graph)


def check_fused_equals_autograd(layer, x, context=None, atol: float = 1e-10):
    """The fused path gives the plain autograd path's outputs, log-determinants and every gradient."""
    y0, ld0, g0 = outputs_and_grads(layer, x, context, fused=False)
    y1, ld1, g1 = outputs_and_grads(layer, x, context, fused=True)
    assert torch.allclose(y0, y1, atol=1e-12) and torch.allclose(ld0, ld1, atol=1e-12)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=atol), (a - b).abs().max()
