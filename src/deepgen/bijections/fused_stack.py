"""A run of consecutive fused layers (affine couplings, MAF layers) as ONE autograd node.

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

from deepgen.bijections.fused_autoregressive import made_backward, made_forward
from deepgen.bijections.fused_coupling import coupling_backward, coupling_forward


def _coupling(x, context, static, tensors):
    kept, free, bound, affine = static
    return coupling_forward(x, context, kept, free, bound, affine, tensors)


def _made(x, context, static, tensors):
    bound, n_hidden, has_direct = static
    return made_forward(x, context, bound, n_hidden, has_direct, tensors)


KINDS = {"coupling": (_coupling, coupling_backward), "made": (_made, made_backward)}


class FusedStack(torch.autograd.Function):
    """``apply(x, context, plan, *tensors) -> (y, log|det|)``; ``plan`` = ((kind, static, n_tensors), ...) per
    layer, ``tensors`` the layers' tensors in order."""

    @staticmethod
    def forward(ctx, x, context, plan, *tensors):
        saved, metas, counts, total, pos = [], [], [], None, 0
        for kind, static, n in plan:
            x, logdet, layer_saved, meta = KINDS[kind][0](x, context, static, tensors[pos:pos + n])
            pos += n
            total = logdet if total is None else total + logdet
            saved += layer_saved
            metas.append(meta)
            counts.append(len(layer_saved))
        ctx.save_for_backward(*saved)
        ctx.plan, ctx.metas, ctx.counts = plan, metas, counts
        return x, total

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, glogdet):
        saved = ctx.saved_tensors
        need_context = ctx.needs_input_grad[1]
        grads: list = []
        gcontext = None
        end = len(saved)
        for (kind, _, _), meta, count in zip(reversed(ctx.plan), reversed(ctx.metas), reversed(ctx.counts)):
            first = end == count  # the run's input: its gradient only if x needs one (not for data)
            gy, gc, layer_grads = KINDS[kind][1](saved[end - count:end], meta, gy, glogdet, need_context,
                                                 ctx.needs_input_grad[0] or not first)
            end -= count
            grads = list(layer_grads) + grads
            if gc is not None:
                gcontext = gc if gcontext is None else gcontext + gc
        return (gy, gcontext, None, *grads)


def fused_specs(bijections) -> list:
    """Each bijection's ``fused_spec()`` (None where it has none or cannot fuse now)."""
    return [b.fused_spec() if hasattr(b, "fused_spec") else None for b in bijections]


def run_fused(specs: list, x, context):
    """(y, log|det|) of consecutive fusable layers with these specs, as one node."""
    plan = tuple((kind, static, len(tensors)) for kind, static, tensors in specs)
    tensors = [t for _, _, ts in specs for t in ts]
    return FusedStack.apply(x, context, plan, *tensors)
