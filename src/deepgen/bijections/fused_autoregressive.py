"""MAF's affine autoregressive layer with a MADE conditioner as ONE autograd node, gradient written out.

Forward (inputs x (B, D), context c, hidden masked ReLU layers W_i * M_i, output layer W_o * M_o, optional
direct connections W_d * M_d from [x, c] to the output; outputs interleaved (mu_d, a_d); bound B)::

    h_0 = [x, c],  h_i = relu(h_{i-1} (W_i M_i)^T + b_i),  out = h_L (W_o M_o)^T + b_o [+ h_0 (W_d M_d)^T]
    mu = out[:, 0::2],  alpha = B tanh(out[:, 1::2] / B),  z = (x - mu) exp(-alpha),  log|det| = -sum alpha

Backward, from g_z and g_l (the gradient of log|det|)::

    g_mu = -g_z exp(-alpha),  g_alpha = -g_z z - g_l,  g_a = g_alpha (1 - (alpha / B)^2),  g_out = [g_mu, g_a]
    g_W_o = (g_out^T h_L) M_o,  g_b_o = sum g_out,  g_h = g_out (W_o M_o);  per layer i = L..1:
    g_pre = g_h [h_i > 0],  g_W_i = (g_pre^T h_{i-1}) M_i,  g_b_i = sum g_pre,  g_h = g_pre (W_i M_i)
    g_W_d = (g_out^T h_0) M_d,  g_h0 = g_h + g_out (W_d M_d),  g_x = g_z exp(-alpha) + g_h0[:, :D],  g_c = g_h0[:, D:]

One node instead of ~20 per layer (see :mod:`deepgen.bijections.fused_coupling` for why that matters on small
vectors).  Batched Jacobians work; gradients of gradients raise (set ``MaskedAutoregressive.fused = False``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from deepgen.ops import mm_skinny

_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default  # g [h > 0] (the overload: no per-call lookup)


def made_mlp_forward(x, context, n_hidden: int, has_direct: bool, tensors):
    """The MADE's outputs ``out`` (B, D * K) and (hidden, effective weights, masks) for its backward:
    h_0 = [x, c], h_i = relu(h_{i-1} (W_i M_i)^T + b_i), out = h_L (W_o M_o)^T + b_o [+ h_0 (W_d M_d)^T]."""
    h0 = x if context is None else torch.cat([x, context.to(x.dtype)], 1)
    hidden, effective, masks = [h0], [], []
    h = h0
    for i in range(n_hidden + 1):
        w, m, b = tensors[3 * i:3 * i + 3]
        we = w if m is None else w * m  # (None: every connection on)
        effective.append(we)
        masks.append(m)
        h = torch.addmm(b, h, we.t())
        if i < n_hidden:
            h = h.relu_()
            hidden.append(h)
    out = h
    if has_direct:
        wd, md = tensors[3 * n_hidden + 3:3 * n_hidden + 5]
        wde = wd if md is None else wd * md
        effective.append(wde)
        masks.append(md)
        out = out.addmm_(h0, wde.t())
    return out, (hidden, effective, masks)


def made_mlp_backward(gout, parts, n_hidden: int, has_direct: bool, need_h0: bool):
    """(g_h0 = the gradient of [x, c], or None without ``need_h0``; [g_W_1, None, g_b_1, ..., g_W_o, None, g_b_o[,
    g_W_d, None]]) from the gradient of the MADE's outputs."""
    hidden, effective, masks = parts
    grads = []  # per layer: (g_W, None for the mask, g_b)
    gh = gout
    for i in reversed(range(n_hidden + 1)):
        if i < n_hidden:
            gh = _THRESHOLD_BACKWARD(gh, hidden[i + 1], 0.0)
        gw = mm_skinny(gh.t(), hidden[i])  # (the first layer's: few columns, see mm_skinny)
        grads = [gw if masks[i] is None else masks[i] * gw, None, gh.sum(0)] + grads  # (mask first: its layout)
        gh = mm_skinny(gh, effective[i]) if i > 0 or need_h0 else None
    if has_direct:
        gw = gout.t().mm(hidden[0])
        grads += [gw if masks[-1] is None else masks[-1] * gw, None]
        if need_h0:
            gh = gh + gout.mm(effective[-1])
    return gh, grads


def made_forward(x, context, bound: float, n_hidden: int, has_direct: bool, tensors):
    """(z, log|det|, saved tensors, meta) of the layer above; ``tensors`` = (W_1, M_1, b_1, ..., W_o, M_o, b_o[,
    W_d, M_d])."""
    out, (hidden, effective, masks) = made_mlp_forward(x, context, n_hidden, has_direct, tensors)
    mu, a = out[:, 0::2], out[:, 1::2]
    th = (a / bound).tanh_()  # (in place on temporaries: the same values, fewer allocations)
    e = (th * -bound).exp_()
    z = (x - mu).mul_(e)
    meta = (float(bound), n_hidden, has_direct, context is not None, x.shape[1])
    return z, th.sum(1).mul_(-bound), (z, th, e, *hidden, *effective, *masks), meta


def made_backward(saved, meta, gz, glogdet, need_context: bool, need_input: bool = True):
    """(g_x or None, g_context or None, [g_W_1, None, g_b_1, ..., g_W_o, None, g_b_o[, g_W_d, None]]) (None for
    the masks) from the gradients of z and log|det|; ``need_input`` False skips g_x (the flow's data input)."""
    bound, n_hidden, has_direct, has_context, d = meta
    z, th, e = saved[:3]
    n_eff = n_hidden + 1 + int(has_direct)
    hidden = saved[3:4 + n_hidden]
    effective = saved[4 + n_hidden:4 + n_hidden + n_eff]
    masks = saved[4 + n_hidden + n_eff:]
    gxd = gz * e
    # -g_alpha = g_z z + g_l;  g_a = g_alpha (1 - th^2) = -(-g_alpha - (-g_alpha) th th)
    nga = gz * z if glogdet is None else torch.addcmul(glogdet.unsqueeze(1), gz, z)
    ga = torch.addcmul(nga, nga * th, th, value=-1.0).neg_()
    gout = torch.stack([gxd.neg(), ga], 2).reshape(len(gz), -1)
    need_h0 = need_input or (has_context and need_context)  # the gradient of [x, c] at all?
    gh, grads = made_mlp_backward(gout, (hidden, effective, masks), n_hidden, has_direct, need_h0)
    gx = gxd + (gh[:, :d] if has_context else gh) if need_input else None  # (a whole-range slice is an alias:
    gcontext = gh[:, d:] if has_context and need_context else None           # vmap cannot take it)
    return gx, gcontext, grads


class FusedMADEAffine(torch.autograd.Function):
    """``apply(x, context, bound, n_hidden, has_direct, W_1, M_1, b_1, ..., W_o, M_o, b_o[, W_d, M_d])``
    -> (z, log|det|)."""

    @staticmethod
    def forward(ctx, x, context, bound, n_hidden, has_direct, *tensors):
        z, logdet, saved, ctx.meta = made_forward(x, context, bound, n_hidden, has_direct, tensors)
        ctx.save_for_backward(*saved)
        return z, logdet

    @staticmethod
    @once_differentiable
    def backward(ctx, gz, glogdet):
        gx, gcontext, grads = made_backward(ctx.saved_tensors, ctx.meta, gz, glogdet, ctx.needs_input_grad[1],
                                            ctx.needs_input_grad[0])
        return (gx, gcontext, None, None, None, *grads)


def fused_made_affine(x, context, bound: float, layers, direct=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, log|det|) of the layer above; ``layers``: (weight, 0/1 mask in its dtype, bias) per masked layer in
    order (hidden ones, then the output); ``direct``: (weight, mask) of the direct connections, or None."""
    tensors = [t for layer in layers for t in layer] + (list(direct) if direct is not None else [])
    return FusedMADEAffine.apply(x, context, bound, len(layers) - 1, direct is not None, *tensors)
