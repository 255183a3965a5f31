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


class FusedMADEAffine(torch.autograd.Function):
    """``apply(x, context, bound, n_hidden, has_direct, W_1, M_1, b_1, ..., W_o, M_o, b_o[, W_d, M_d])``
    -> (z, log|det|)."""

    @staticmethod
    def forward(ctx, x, context, bound, n_hidden, has_direct, *tensors):
        h0 = x if context is None else torch.cat([x, context.to(x.dtype)], 1)
        hidden, effective, masks = [h0], [], []
        h = h0
        for i in range(n_hidden + 1):
            w, m, b = tensors[3 * i:3 * i + 3]
            we = w * m
            effective.append(we)
            masks.append(m)
            h = torch.addmm(b, h, we.t())
            if i < n_hidden:
                h = h.relu_()
                hidden.append(h)
        out = h
        if has_direct:
            wd, md = tensors[3 * n_hidden + 3:3 * n_hidden + 5]
            wde = wd * md
            effective.append(wde)
            masks.append(md)
            out = out.addmm_(h0, wde.t())
        mu, a = out[:, 0::2], out[:, 1::2]
        th = torch.tanh(a / bound)
        e = torch.exp(th * -bound)
        z = (x - mu) * e
        ctx.save_for_backward(z, th, e, *hidden, *effective, *masks)
        ctx.meta = (float(bound), n_hidden, has_direct, context is not None, x.shape[1])
        return z, th.sum(1) * -bound

    @staticmethod
    @once_differentiable
    def backward(ctx, gz, glogdet):
        bound, n_hidden, has_direct, has_context, d = ctx.meta
        saved = ctx.saved_tensors
        z, th, e = saved[:3]
        n_eff = n_hidden + 1 + int(has_direct)
        hidden = saved[3:4 + n_hidden]
        effective = saved[4 + n_hidden:4 + n_hidden + n_eff]
        masks = saved[4 + n_hidden + n_eff:]
        gxd = gz * e
        galpha = -(gz * z)
        if glogdet is not None:
            galpha = galpha - glogdet.unsqueeze(1)
        ga = galpha * (1.0 - th * th)
        gout = torch.stack([-gxd, ga], 2).reshape(len(gz), -1)
        grads = []  # per layer: (g_W, None for the mask, g_b)
        gh = gout
        for i in reversed(range(n_hidden + 1)):
            if i < n_hidden:
                gh = torch.ops.aten.threshold_backward(gh, hidden[i + 1], 0.0)
            grads = [gh.t().mm(hidden[i]) * masks[i], None, gh.sum(0)] + grads
            gh = gh.mm(effective[i])
        if has_direct:
            grads += [gout.t().mm(hidden[0]) * masks[-1], None]
            gh = gh + gout.mm(effective[-1])
        gx = gxd + (gh[:, :d] if has_context else gh)  # (a whole-range slice is an alias: vmap cannot take it)
        gcontext = gh[:, d:] if has_context and ctx.needs_input_grad[1] else None
        return (gx, gcontext, None, None, None, *grads)


def fused_made_affine(x, context, bound: float, layers, direct=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, log|det|) of the layer above; ``layers``: (weight, 0/1 mask in its dtype, bias) per masked layer in
    order (hidden ones, then the output); ``direct``: (weight, mask) of the direct connections, or None."""
    tensors = [t for layer in layers for t in layer] + (list(direct) if direct is not None else [])
    return FusedMADEAffine.apply(x, context, bound, len(layers) - 1, direct is not None, *tensors)
