"""A vector affine coupling with a ReLU-MLP conditioner as ONE autograd node, with its gradient written out.

Forward (kept coordinates k, free coordinates f, context c, L hidden ReLU layers, bound B)::

    h_0 = [x_k, c],   h_i = relu(h_{i-1} W_i^T + b_i),   [a, t] = h_L W_o^T + b_o
    s = B tanh(a / B),   y_f = x_f exp(s) + t,   y_k = x_k,   log|det| = sum s

Backward, from the gradients g_y of y and g_l of log|det|::

    g_t = g_y,f,   g_s = g_y,f x_f exp(s) + g_l,   g_a = g_s (1 - (s / B)^2),   g_o = [g_a, g_t]
    g_W_o = g_o^T h_L,  g_b_o = sum g_o,  g_h = g_o W_o;  per layer i = L..1:
    g_pre = g_h [h_i > 0],  g_W_i = g_pre^T h_{i-1},  g_b_i = sum g_pre,  g_h = g_pre W_i
    g_x,f = g_y,f exp(s),   g_x,k = g_y,k + g_h[:, :k],   g_c = g_h[:, k:]

Autograd would build ~16 nodes per coupling for the same computation; on small vectors (2-D data,
batch 256) their bookkeeping is most of a training step, and one node with this backward makes a
RealNVP step about twice as fast on a CPU.  With ``affine=False`` (NICE's additive coupling) the
output is t (or its second half is; the first, s, is then unused) and log|det| = 0.  Batched
Jacobians (``jacobian(vectorize=True)``) work; gradients of gradients do not (``create_graph=True``
through this node raises instead of silently treating the forward's intermediates as constants):
set ``AffineCoupling.fused = False`` for those.  Conditioners that are not ReLU MLPs always take
the plain autograd path.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from deepgen.ops import mm_skinny


def coupling_forward(x, context, kept, free, bound: float, affine: bool, params):
    """(y, log|det|, saved tensors, meta) of the coupling above; ``params`` = (W_1, b_1, ..., W_o, b_o)."""
    h = x.index_select(1, kept)
    if context is not None:
        h = torch.cat([h, context.to(x.dtype)], 1)
    hidden = [h]
    for i in range(len(params) // 2 - 1):
        h = torch.addmm(params[2 * i + 1], h, params[2 * i].t()).relu_()
        hidden.append(h)
    out = torch.addmm(params[-1], h, params[-2].t())
    xf = x.index_select(1, free)
    if affine:
        nf = free.numel()
        th = torch.tanh(out[:, :nf] / bound)
        es = torch.exp(th * bound)
        y = x.index_copy(1, free, torch.addcmul(out[:, nf:], xf, es))
        logdet = th.sum(1) * bound
    else:  # t is the output, or its second half (s = 0 is ignored)
        th = es = None
        y = x.index_copy(1, free, xf + out[:, out.shape[1] - free.numel():])
        logdet = x.new_zeros(len(x))
    meta = (affine, float(bound), len(hidden), context is not None, kept.numel(), out.shape[1])
    return y, logdet, (kept, free, xf, th, es, *hidden, *params), meta


def coupling_backward(saved, meta, gy, glogdet, need_context: bool, need_input: bool = True):
    """(g_x or None, g_context or None, [g_W_1, g_b_1, ..., g_W_o, g_b_o]) from the gradients of y and log|det|;
    ``need_input`` False skips g_x (the flow's data input)."""
    affine, bound, n_hidden, has_context, n_kept, n_out = meta
    kept, free, xf, th, es = saved[:5]
    hidden = saved[5:5 + n_hidden]
    params = saved[5 + n_hidden:]
    gyf = gy.index_select(1, free)
    if affine:
        gxf = gyf * es
        gs = gxf * xf
        if glogdet is not None:
            gs = gs + glogdet.unsqueeze(1)
        gout = torch.cat([torch.addcmul(gs, gs * th, th, value=-1.0), gyf], 1)  # g_a = g_s (1 - th^2)
    else:
        gout = gyf if n_out == gyf.shape[1] else torch.cat([torch.zeros_like(gyf), gyf], 1)
        gxf = gyf
    grads = [None] * len(params)
    grads[-2], grads[-1] = gout.t().mm(hidden[-1]), gout.sum(0)
    gh = gout.mm(params[-2])
    need_h0 = need_input or (has_context and need_context)  # the gradient of [x_k, c] at all?
    for i in reversed(range(n_hidden - 1)):
        gpre = torch.ops.aten.threshold_backward(gh, hidden[i + 1], 0.0)  # gh where h > 0, else 0 (one op)
        grads[2 * i], grads[2 * i + 1] = mm_skinny(gpre.t(), hidden[i]), gpre.sum(0)  # (see mm_skinny)
        gh = mm_skinny(gpre, params[2 * i]) if i > 0 or need_h0 else None
    # g_x: g_y with its free columns replaced by g_x,f and g_h's kept part added to its kept columns (two
    # out-of-place index ops: autograd's batched gradients (jacobian(vectorize=True)) take them; a whole-range
    # slice would be an alias, which they cannot take)
    gx = gy.index_copy(1, free, gxf).index_add(1, kept, gh[:, :n_kept] if has_context else gh) if need_input else None
    gcontext = gh[:, n_kept:] if has_context and need_context else None
    return gx, gcontext, grads


class FusedCouplingMLP(torch.autograd.Function):
    """``apply(x, context, kept, free, bound, affine, W_1, b_1, ..., W_L, b_L, W_o, b_o) -> (y, log|det|)``."""

    @staticmethod
    def forward(ctx, x, context, kept, free, bound, affine, *params):
        y, logdet, saved, ctx.meta = coupling_forward(x, context, kept, free, bound, affine, params)
        ctx.save_for_backward(*saved)
        return y, logdet

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, glogdet):
        gx, gcontext, grads = coupling_backward(ctx.saved_tensors, ctx.meta, gy, glogdet, ctx.needs_input_grad[1],
                                                ctx.needs_input_grad[0])
        return (gx, gcontext, None, None, None, None, *grads)


def fused_coupling(x, context, kept, free, bound: float, affine: bool, layers) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, log|det|) of the coupling above; ``layers`` are the conditioner's ``nn.Linear`` s in order (the
    hidden ReLU layers, then the output layer)."""
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    return FusedCouplingMLP.apply(x, context, kept, free, bound, affine, *params)
