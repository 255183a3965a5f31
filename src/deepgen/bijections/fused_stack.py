"""A run of consecutive fused layers (affine couplings, MAF layers, NSF's autoregressive spline layers) as ONE
autograd node.

:mod:`~deepgen.bijections.fused_coupling` and :mod:`~deepgen.bijections.fused_autoregressive` make each
layer one node with a written-out backward.  A flow of L such layers still pays, per layer, a module call,
an ``autograd.Function`` call and an autograd node (about 20-40 us each on a CPU); on 2-D data that is a
tenth of a training step.  :class:`FusedStack` runs the same per-layer forward and backward functions for
the whole run inside one node::

    x_0 = x,   (x_l, d_l) = f_l(x_{l-1}; c),   y = x_L,   log|det| = d_1 + ... + d_L
    backward: g_{x_L} = g_y;  for l = L..1:  (g_{x_{l-1}}, g_c^l, g_theta_l) = f_l's backward(g_{x_l}, g_logdet)
              g_c = sum_l g_c^l

(every d_l receives the gradient of the total log|det|).  The numbers are those of the per-layer nodes: the
same functions on the same tensors.  A layer takes part when it offers ``fused_spec()``, which returns
``(kind, static arguments, tensors)`` or None (not fusable now, e.g. ``fused = False`` for gradients of
gradients, which a written-out backward cannot give).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from deepgen.bijections.fused_autoregressive import made_backward, made_forward, made_mlp_backward, made_mlp_forward
from deepgen.bijections.fused_coupling import coupling_backward, coupling_forward
from deepgen.bijections.fused_spline import spline_backward, spline_forward
from deepgen.ops import LOG_2PI


def _coupling(x, context, static, tensors):
    kept, free, bound, affine = static
    return coupling_forward(x, context, kept, free, bound, affine, tensors)


def _made(x, context, static, tensors):
    bound, n_hidden, has_direct = static
    return made_forward(x, context, bound, n_hidden, has_direct, tensors)


def _made_spline(x, context, static, tensors):
    """An autoregressive RQ-spline layer (NSF): z = g(x; MADE(x, c)), log|det| = sum_d log g'_d."""
    bins, bound, min_size, min_derivative, n_hidden, has_direct = static
    out, parts = made_mlp_forward(x, context, n_hidden, has_direct, tensors)
    raw = out.view(len(x), x.shape[1], -1)  # (B, D, 3K - 1): widths, heights, inner derivatives
    z, logderiv, spline_saved, spline_meta = spline_forward(
        x, torch.stack([raw[..., :bins], raw[..., bins:2 * bins]]), raw[..., 2 * bins:], bound, min_size,
        min_derivative)
    hidden, effective, masks = parts
    saved = (*spline_saved, *hidden, *effective, *masks)
    meta = (static, spline_meta, len(spline_saved), len(hidden), len(effective), context is not None)
    return z, logderiv.sum(1), saved, meta


def _made_spline_backward(saved, meta, gz, glogdet, need_context: bool, need_input: bool = True):
    static, spline_meta, n_spline, n_hidden_saved, n_eff, has_context = meta
    _, _, _, _, n_hidden, has_direct = static
    b, d = gz.shape
    gl = glogdet.unsqueeze(1).expand(b, d) if glogdet is not None else None
    g_x, g_wh, g_d = spline_backward(saved[:n_spline], spline_meta, gz, gl)
    rest = saved[n_spline:]
    parts = (rest[:n_hidden_saved], rest[n_hidden_saved:n_hidden_saved + n_eff], rest[n_hidden_saved + n_eff:])
    gout = torch.cat([g_wh[0], g_wh[1], g_d], -1).reshape(b, -1)
    need_h0 = need_input or (has_context and need_context)
    gh, grads = made_mlp_backward(gout, parts, n_hidden, has_direct, need_h0)
    gx = g_x + (gh[:, :d] if has_context else gh) if need_input else None
    gcontext = gh[:, d:] if has_context and need_context else None
    return gx, gcontext, grads


KINDS = {"coupling": (_coupling, coupling_backward), "made": (_made, made_backward),
         "made-spline": (_made_spline, _made_spline_backward)}


def stack_forward(x, context, plan, tensors):
    """(y, log|det|, saved tensors, per-layer metas, per-layer saved counts) of the layers of ``plan``."""
    saved, metas, counts, total, pos = [], [], [], None, 0
    for kind, static, n in plan:
        x, logdet, layer_saved, meta = KINDS[kind][0](x, context, static, tensors[pos:pos + n])
        pos += n
        total = logdet if total is None else total + logdet
        saved += layer_saved
        metas.append(meta)
        counts.append(len(layer_saved))
    return x, total, saved, metas, counts


def stack_backward(saved, plan, metas, counts, gy, glogdet, need_context: bool, need_input: bool):
    """(g_x, g_context, [each layer's parameter gradients in order]) from the gradients of y and log|det|."""
    grads: list = []
    gcontext = None
    end = len(saved)
    for (kind, _, _), meta, count in zip(reversed(plan), reversed(metas), reversed(counts)):
        first = end == count  # the run's input: its gradient only if x needs one (not for data)
        gy, gc, layer_grads = KINDS[kind][1](saved[end - count:end], meta, gy, glogdet, need_context,
                                             need_input or not first)
        end -= count
        grads = list(layer_grads) + grads
        if gc is not None:
            gcontext = gc if gcontext is None else gcontext + gc
    return gy, gcontext, grads


class FusedStack(torch.autograd.Function):
    """``apply(x, context, plan, *tensors) -> (y, log|det|)``; ``plan`` = ((kind, static, n_tensors), ...) per
    layer, ``tensors`` the layers' tensors in order."""

    @staticmethod
    def forward(ctx, x, context, plan, *tensors):
        y, total, saved, ctx.metas, ctx.counts = stack_forward(x, context, plan, tensors)
        ctx.save_for_backward(*saved)
        ctx.plan = plan
        return y, total

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, glogdet):
        gx, gcontext, grads = stack_backward(ctx.saved_tensors, ctx.plan, ctx.metas, ctx.counts, gy, glogdet,
                                             ctx.needs_input_grad[1], ctx.needs_input_grad[0])
        return (gx, gcontext, None, *grads)


def _normal_log_prob(y, total):
    """log N(y; 0, I) + log|det| (the arithmetic of StandardNormal.log_prob, then + log|det|)."""
    return (-0.5 * y.square().flatten(1).sum(1) - 0.5 * y[0].numel() * LOG_2PI) + total


def _normal_seed(y, glp):
    """g_y = -y g from the gradient g of log N(y; 0, I) (per example)."""
    return y * glp.view(-1, *([1] * (y.dim() - 1))).neg()


class FusedNormalLogProb(torch.autograd.Function):
    """``apply(x, context, plan, *tensors) -> log p(x)`` for a flow whose whole transform is one fused run and
    whose base is N(0, I): log p(x) = -(1/2) sum_d y_d^2 - (D/2) log 2 pi + log|det|, y = f(x).  Backward:
    g_y = -y g, g_log|det| = g.  It spares the base density's and the sum's autograd nodes (about 0.1 ms
    a step for MAF on 2-D data)."""

    @staticmethod
    def forward(ctx, x, context, plan, *tensors):
        y, total, saved, ctx.metas, ctx.counts = stack_forward(x, context, plan, tensors)
        ctx.save_for_backward(y, *saved)
        ctx.plan = plan
        return _normal_log_prob(y, total)

    @staticmethod
    @once_differentiable
    def backward(ctx, glp):
        y, *saved = ctx.saved_tensors
        gx, gcontext, grads = stack_backward(saved, ctx.plan, ctx.metas, ctx.counts, _normal_seed(y, glp), glp,
                                             ctx.needs_input_grad[1], ctx.needs_input_grad[0])
        return (gx, gcontext, None, *grads)


def normal_log_prob_and_grads(x, context, plan, tensors, glp):
    """(log p(x), [the gradient of sum_i glp_i log p(x_i) with respect to each of ``tensors``, None for those
    that get none]) of :class:`FusedNormalLogProb`'s flow, without autograd: its forward, then its written-out
    backward with g = ``glp``.  The same functions on the same tensors as ``apply(...)`` then
    ``backward(glp)`` (so the same numbers), without the autograd node, the saved-tensor bookkeeping and the
    engine's per-parameter accumulation (0.4-0.6 ms of a 2.5-3 ms MAF step on 2-D data, timed in one process).  No gradient
    for x or the context: the caller uses it where they are data."""
    with torch.no_grad():
        y, total, saved, metas, counts = stack_forward(x, context, plan, tensors)
        log_p = _normal_log_prob(y, total)
        _, _, grads = stack_backward(saved, plan, metas, counts, _normal_seed(y, glp), glp, False, False)
    return log_p, grads


def accumulate_grads(tensors, grads) -> None:
    """``t.grad += g`` (or ``t.grad = g`` when it is None) for each tensor that requires a gradient, as autograd's
    accumulation does: a tensor listed more than once (shared between layers) first sums its gradients in list
    order, as autograd's input buffer does, and a gradient whose strides differ from its tensor's is copied into
    the tensor's layout."""
    total: dict = {}
    for t, g in zip(tensors, grads):
        if g is None or not t.requires_grad:
            continue
        key = id(t)
        total[key] = (t, g) if key not in total else (t, total[key][1] + g)
    for t, g in total.values():
        if g.stride() != t.stride():
            g = torch.empty_like(t).copy_(g)
        if t.grad is None:
            t.grad = g
        else:
            t.grad.add_(g)


def fused_specs(bijections) -> list:
    """Each bijection's ``fused_spec()`` (None where it has none or cannot fuse now)."""
    return [b.fused_spec() if hasattr(b, "fused_spec") else None for b in bijections]


def plan_of(specs: list) -> tuple[tuple, list]:
    """(plan, tensors) of the specs: ((kind, static, n_tensors), ...) and every layer's tensors in order."""
    return tuple((kind, static, len(tensors)) for kind, static, tensors in specs), [t for _, _, ts in specs for t in ts]


def run_fused(specs: list, x, context):
    """(y, log|det|) of consecutive fusable layers with these specs, as one node."""
    plan, tensors = plan_of(specs)
    return FusedStack.apply(x, context, plan, *tensors)


def run_fused_normal_log_prob(specs: list, x, context):
    """log N(f(x); 0, I) + log|det df/dx| of consecutive fusable layers with these specs, as one node."""
    plan, tensors = plan_of(specs)
    return FusedNormalLogProb.apply(x, context, plan, *tensors)
