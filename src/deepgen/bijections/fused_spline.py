"""Rational-quadratic spline in the forward direction as ONE autograd node with its gradient written out
(:class:`SplineForward`), and the pieces :mod:`~deepgen.bijections.spline` shares with it (the softmax of the
bin sizes, the knots).  See :mod:`deepgen.bijections.spline` for the spline itself; this module imports no
bijection, so :mod:`~deepgen.bijections.fused_stack` can run spline layers inside a composed flow's node.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F


def softmax_last(raw: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension, exp(r_i - max r) / sum_j exp(r_j - max r) (the max held constant for
    autograd: the gradient is the softmax's own).  torch's CPU softmax kernel takes 4-5x as long on rows this
    short (8 bins: 85 us against 19 us for 512 rows on one core), and it runs twice per layer and step."""
    e = torch.exp(raw - raw.amax(-1, keepdim=True).detach())
    return e / e.sum(-1, keepdim=True)


def _knots_from(probs: torch.Tensor, bound: float, min_size: float):
    """:func:`_knots` from softmax(raw)."""
    k = probs.shape[-1]
    frac = min_size + (1 - min_size * k) * probs
    cum = 2 * bound * torch.cumsum(frac, dim=-1) - bound
    ends = cum.new_full((*cum.shape[:-1], 1), bound)
    cum = torch.cat([-ends, cum[..., :-1], ends], dim=-1)  # exact ends: no rounding drift at +-B
    return cum, cum[..., 1:] - cum[..., :-1]


def _in_bin(x, xk, wk, yk, hk, dk, dk1):
    """(g, log g', saved) inside the bin; see :class:`SplineForward` for the names."""
    xi = (x - xk) / wk
    s = hk / wk
    c = dk1 + dk - 2 * s
    omx = 1 - xi
    t = xi * omx
    den = s + c * t
    xi2 = xi * xi
    q = (s * xi2 + dk * t) / den
    m = dk1 * xi2 + 2 * s * t + dk * omx * omx
    return yk + hk * q, torch.log(s * s * m) - 2 * torch.log(den), (xi, s, c, t, den, m, q, wk, hk, dk, dk1)


def _in_bin_backward(saved, gg, gl):
    """(g_x, g_x_k, g_w_k, g_y_k, g_h_k, g_d_k, g_d_k1) from the gradients of g and log g' (both tensors)."""
    xi, s, c, t, den, m, q, wk, hk, dk, dk1 = saved
    omx, one_m2xi, one_m2t = 1 - xi, 1 - 2 * xi, 1 - 2 * t
    dden_dxi = c * one_m2xi
    a = gg * hk / den  # dg/dn; dg/dD = -a q
    b = a * q
    gm, gd = gl / m, 2 * gl / den
    g_xi = (a * (2 * s * xi + dk * one_m2xi) - b * dden_dxi
            + gm * (2 * dk1 * xi + 2 * s * one_m2xi - 2 * dk * omx) - gd * dden_dxi)
    g_s = a * xi * xi - b * one_m2t + 2 * gl / s + 2 * gm * t - gd * one_m2t
    g_dk = (a - b) * t + gm * omx * omx - gd * t
    g_dk1 = -b * t + gm * xi * xi - gd * t
    g_x = g_xi / wk
    return g_x, -g_x, -(g_xi * xi + g_s * s) / wk, gg, gg * q + g_s / wk, g_dk, g_dk1


class SplineForward(torch.autograd.Function):
    """The forward spline g(x) and log g'(x), from the raw widths and heights stacked as (2, *S, K) and the raw
    inner derivatives (*S, K - 1), as ONE autograd node.  Forward: the module docstring's maps, the bin of each x,
    and inside the bin, with xi = (x - x_k) / w_k, s = h_k / w_k, c = d_k1 + d_k - 2 s, t = xi (1 - xi),
    D = s + c t, q = (s xi^2 + d_k t) / D, m = d_k1 xi^2 + 2 s t + d_k (1 - xi)^2::

        g = y_k + h_k q,   log g' = log(s^2 m) - 2 log D          (outside [-B, B]: g = x, log g' = 0)

    Backward, from g_g and g_l (zero outside; there g_x = g_g)::

        dq/dxi = [2 s xi + d_k (1 - 2 xi) - q c (1 - 2 xi)] / D,   dq/ds = [xi^2 - q (1 - 2t)] / D,
        dq/dd_k = t (1 - q) / D,   dq/dd_k1 = -q t / D,   dm/dxi = 2 d_k1 xi + 2 s (1 - 2 xi) - 2 d_k (1 - xi),
        dl/dxi = (dm/dxi) / m - 2 c (1 - 2 xi) / D,   dl/ds = 2 / s + 2 t / m - 2 (1 - 2t) / D,
        dl/dd_k = (1 - xi)^2 / m - 2 t / D,   dl/dd_k1 = xi^2 / m - 2 t / D;
        xi -> (x, x_k, w_k), s -> (h_k, w_k):  g_x = g_xi / w_k,  g_x_k = -g_x,  g_w_k = -(g_xi xi + g_s s) / w_k,
        g_h_k = g_g q + g_s / w_k,  g_y_k = g_g;  then scattered back to the bin of each x and through
        the knots: sizes = diff(knots), knots_{1..K-1} = 2B cumsum(f)_{0..K-2} - B (a reverse cumsum back),
        f = m_min + (1 - K m_min) softmax(r) (g_r = p (g_p - sum g_p p)), d = d_min + softplus(r_d + shift)
        (g_r_d = g_d sigmoid(r_d + shift)).

    Autograd records about 70 nodes for the same (softmax, cumsum, the gathers, ...); on 2-D data with 5 layers
    their bookkeeping is most of an NSF training step.  Gradients of gradients raise (``once_differentiable``):
    ``fused=False`` in :func:`rational_quadratic_spline` (the bijections' ``fused`` attribute) for those.
    """

    @staticmethod
    def forward(ctx, x, raw_wh, raw_d, bound, min_size, min_derivative):
        y, logderiv, saved, ctx.meta = spline_forward(x, raw_wh, raw_d, bound, min_size, min_derivative)
        ctx.save_for_backward(*saved)
        return y, logderiv

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, gl):
        g_x, g_raw_wh, g_raw_d = spline_backward(ctx.saved_tensors, ctx.meta, gy, gl)
        return g_x, g_raw_wh, g_raw_d, None, None, None


def spline_forward(x, raw_wh, raw_d, bound: float, min_size: float, min_derivative: float):
    """(g, log g', saved tensors, meta) of :class:`SplineForward`."""
    probs = softmax_last(raw_wh)
    k = probs.shape[-1]
    cum, sizes = _knots_from(probs, bound, min_size)
    shift = math.log(math.expm1(1 - min_derivative))
    inner = min_derivative + F.softplus(raw_d + shift)
    one = inner.new_ones((*inner.shape[:-1], 1))
    d = torch.cat([one, inner, one], dim=-1)
    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)
    idx = (xc.unsqueeze(-1) >= cum[0, ..., 1:-1]).sum(-1, keepdim=True)  # (*S, 1): bin 0..K-1
    both = idx.unsqueeze(0).expand(2, *idx.shape)
    xk, yk = cum.gather(-1, both).squeeze(-1).unbind(0)
    wk, hk = sizes.gather(-1, both).squeeze(-1).unbind(0)
    dk, dk1 = d.gather(-1, torch.cat([idx, idx + 1], -1)).unbind(-1)
    y, logderiv, saved = _in_bin(xc, xk, wk, yk, hk, dk, dk1)
    y = torch.where(inside, y, x)
    logderiv = torch.where(inside, logderiv, torch.zeros_like(logderiv))
    return y, logderiv, (probs, raw_d, inside, idx, *saved), (float(bound), float(min_size), shift, k)


def spline_backward(saved_all, meta, gy, gl):
    """(g_x, g_raw_wh, g_raw_d) of :class:`SplineForward` from the gradients of g and log g' (either may be None)."""
    bound, min_size, shift, k = meta
    probs, raw_d, inside, idx = saved_all[:4]
    saved = saved_all[4:]
    zero = torch.zeros_like(saved[0])
    gy_in = torch.where(inside, gy, zero) if gy is not None else zero
    gl_in = torch.where(inside, gl, zero) if gl is not None else zero
    g_xc, g_xk, g_wk, g_yk, g_hk, g_dk, g_dk1 = _in_bin_backward(saved, gy_in, gl_in)
    g_x = torch.where(inside, g_xc, gy) if gy is not None else g_xc  # the identity outside
    both = idx.unsqueeze(0).expand(2, *idx.shape)
    g_cum = torch.zeros_like(probs[..., :1]).expand(*probs.shape[:-1], k + 1).contiguous()
    g_cum = g_cum.scatter(-1, both, torch.stack([g_xk, g_yk]).unsqueeze(-1))
    g_sizes = torch.zeros_like(probs).scatter(-1, both, torch.stack([g_wk, g_hk]).unsqueeze(-1))
    g_cum = g_cum + F.pad(g_sizes, (1, 0)) - F.pad(g_sizes, (0, 1))
    g_inner = 2 * bound * g_cum[..., 1:k]  # knots 1..K-1 = 2B cumsum(f)_{0..K-2} - B; knots 0 and K are fixed
    g_f = g_inner.flip(-1).cumsum(-1).flip(-1)  # reverse cumsum (f_{K-1} moves no knot)
    g_p = F.pad(g_f, (0, 1)) * (1 - k * min_size)
    g_raw_wh = probs * (g_p - (g_p * probs).sum(-1, keepdim=True))
    g_d = torch.zeros_like(raw_d).scatter_add(-1, (idx - 1).clamp(0, k - 2), torch.where(
        (idx >= 1) & (idx <= k - 1), g_dk.unsqueeze(-1), torch.zeros_like(g_dk.unsqueeze(-1))))
    g_d = g_d.scatter_add(-1, idx.clamp(0, k - 2), torch.where(
        idx <= k - 2, g_dk1.unsqueeze(-1), torch.zeros_like(g_dk1.unsqueeze(-1))))
    return g_x, g_raw_wh, g_d * torch.sigmoid(raw_d + shift)
