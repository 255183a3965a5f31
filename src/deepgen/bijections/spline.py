"""Monotone rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios 2019) and the
coupling and autoregressive bijections built on them.

The spline maps [-B, B] onto itself through K bins with knots (x_k, y_k), k = 0..K, and
positive knot derivatives d_k.  Inside bin k, with w_k = x_{k+1} - x_k, h_k = y_{k+1} - y_k,
s_k = h_k / w_k and xi = (x - x_k) / w_k in [0, 1],

    g(x) = y_k + h_k [s_k xi^2 + d_k xi (1 - xi)] / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]

    g'(x) = s_k^2 [d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2]
            / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]^2

Outside [-B, B] the map is the identity (linear tails, log-derivative 0); the boundary
derivatives d_0 = d_K = 1 make the spline join the tails smoothly.  The inverse solves the
quadratic a xi^2 + b xi + c = 0 in the bin that holds y, with

    a = h_k (s_k - d_k) + (y - y_k) (d_{k+1} + d_k - 2 s_k)
    b = h_k d_k - (y - y_k) (d_{k+1} + d_k - 2 s_k)
    c = -s_k (y - y_k),              xi = 2c / (-b - sqrt(b^2 - 4ac))

Unconstrained parameters per transformed coordinate: K widths, K heights, K - 1 inner
derivatives (3K - 1 in all), mapped as

    w = 2B [w_min + (1 - K w_min) softmax(widths)]          (the same for heights, h_min)
    d = d_min + softplus(derivatives + log(e^{1 - d_min} - 1))

The shift inside the softplus maps a raw 0 to d = 1, so zero parameters (a zero-initialised
conditioner) give equal bins with every derivative 1: the identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from deepgen.bijections.base import Bijection
from deepgen.bijections.fused_spline import SplineForward, _knots_from, softmax_last
from deepgen.ops import sum_except_batch

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def spline_param_count(bins: int) -> int:
    """Unconstrained spline parameters per transformed coordinate: K widths, K heights, K - 1 derivatives."""
    return 3 * bins - 1


def _knots(raw: torch.Tensor, bound: float, min_size: float):
    """Knot positions (..., K + 1) from -B to B and bin sizes (..., K) from raw sizes (..., K)."""
    return _knots_from(softmax_last(raw), bound, min_size)


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


def rational_quadratic_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                              derivatives: torch.Tensor, inverse: bool = False, tail_bound: float = 3.0,
                              min_bin_width: float = MIN_BIN_WIDTH, min_bin_height: float = MIN_BIN_HEIGHT,
                              min_derivative: float = MIN_DERIVATIVE, fused: bool = True):
    """Elementwise monotone RQ spline on [-B, B], identity outside (see the module docstring).

    ``fused`` (the forward direction, equal minimum bin width and height, K >= 2): the whole spline as one
    autograd node with its gradient written out (:class:`SplineForward`); False: plain autograd, e.g. for
    gradients of gradients.

    ``x`` has any shape S; ``widths`` and ``heights`` are unconstrained (*S, K), ``derivatives``
    unconstrained (*S, K - 1) (the inner knots).  Returns (y, log|dy/dx|) elementwise, both of
    shape S; ``inverse=True`` evaluates g^{-1} and log|d g^{-1}/dy| instead.
    """
    bins = widths.shape[-1]
    if min_bin_width * bins > 1 or min_bin_height * bins > 1:
        raise ValueError(f"minimum bin width/height too large for {bins} bins")
    bound = float(tail_bound)
    if fused and not inverse and min_bin_width == min_bin_height and bins >= 2:  # one autograd node
        return SplineForward.apply(x, torch.stack([widths, heights]), derivatives, bound, min_bin_width,
                                   float(min_derivative))
    if min_bin_width == min_bin_height:  # both sets of knots in one pass (half the ops)
        cum, sizes = _knots(torch.stack([widths, heights]), bound, min_bin_width)
        (cum_w, cum_h), (w, h) = cum.unbind(0), sizes.unbind(0)
    else:
        cum_w, w = _knots(widths, bound, min_bin_width)
        cum_h, h = _knots(heights, bound, min_bin_height)
    shift = math.log(math.expm1(1 - min_derivative))
    inner = min_derivative + F.softplus(derivatives + shift)
    one = inner.new_ones((*inner.shape[:-1], 1))
    d = torch.cat([one, inner, one], dim=-1)  # boundary derivatives 1: smooth join with the linear tails

    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)  # evaluate safely everywhere, keep the result only inside
    knots = cum_h if inverse else cum_w
    idx = (xc.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1)  # bin index in 0..K-1
    xk, wk = _gather(cum_w, idx), _gather(w, idx)
    yk, hk = _gather(cum_h, idx), _gather(h, idx)
    dk, dk1 = _gather(d, idx), _gather(d[..., 1:], idx)
    sk = hk / wk
    curve = dk1 + dk - 2 * sk

    if inverse:
        dy = xc - yk
        a = hk * (sk - dk) + dy * curve
        b = hk * dk - dy * curve
        c = -sk * dy
        disc = (b.square() - 4 * a * c).clamp_min(0)
        xi = 2 * c / (-b - disc.sqrt())
        out = xi * wk + xk
    else:
        xi = (xc - xk) / wk
    t = xi * (1 - xi)
    den = sk + curve * t
    num_deriv = sk.square() * (dk1 * xi.square() + 2 * sk * t + dk * (1 - xi).square())
    logderiv = torch.log(num_deriv) - 2 * torch.log(den)
    if inverse:
        logderiv = -logderiv
    else:
        out = yk + hk * (sk * xi.square() + dk * t) / den
    out = torch.where(inside, out, x)
    return out, torch.where(inside, logderiv, torch.zeros_like(logderiv))


class _SplineBijection(Bijection):
    """Shared settings of the spline bijections; splits raw (..., 3K - 1) into the three groups."""

    def __init__(self, bins: int, tail_bound: float, min_bin_width: float, min_bin_height: float,
                 min_derivative: float):
        super().__init__()
        if bins < 1:
            raise ValueError(f"spline needs at least 1 bin, got {bins}")
        self.bins, self.tail_bound = int(bins), float(tail_bound)
        self.min_bin_width, self.min_bin_height = float(min_bin_width), float(min_bin_height)
        self.min_derivative = float(min_derivative)
        self.fused = True  # False: the spline through plain autograd (e.g. to take gradients of gradients)

    def spline(self, x: torch.Tensor, raw: torch.Tensor, inverse: bool):
        k = self.bins
        return rational_quadratic_spline(x, raw[..., :k], raw[..., k: 2 * k], raw[..., 2 * k:], inverse,
                                         self.tail_bound, self.min_bin_width, self.min_bin_height,
                                         self.min_derivative, fused=self.fused)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, tail_bound={self.tail_bound}"


class SplineCoupling(_SplineBijection):
    """Coupling on vectors (B, D): coordinates with mask 1 pass through, the others go through RQ
    splines whose parameters a conditioner computes from the kept ones:

        y_kept = x_kept,    y_free = g(x_free; NN(x_kept, context)),    log|det| = sum log g'(x_free)

    ``conditioner`` maps (B, #kept) [, context] to (B, #free * (3K - 1)).
    """

    def __init__(self, mask: torch.Tensor, conditioner: nn.Module, bins: int = 8, tail_bound: float = 3.0,
                 min_bin_width: float = MIN_BIN_WIDTH, min_bin_height: float = MIN_BIN_HEIGHT,
                 min_derivative: float = MIN_DERIVATIVE):
        super().__init__(bins, tail_bound, min_bin_width, min_bin_height, min_derivative)
        mask = torch.as_tensor(mask).reshape(-1)
        self.register_buffer("kept", mask.nonzero().squeeze(1))
        self.register_buffer("free", (mask == 0).nonzero().squeeze(1))
        self.conditioner = conditioner

    def _couple(self, x, context, inverse):
        raw = self.conditioner(x[:, self.kept], context)
        raw = raw.reshape(len(x), len(self.free), spline_param_count(self.bins))
        y_free, ld = self.spline(x[:, self.free], raw, inverse)
        y = x.clone()
        y[:, self.free] = y_free
        return y, ld.sum(-1)

    def forward(self, x, context=None):
        return self._couple(x, context, inverse=False)

    def inverse(self, y, context=None):
        return self._couple(y, context, inverse=True)


class SplineAutoregressive(_SplineBijection):
    """Autoregressive RQ spline on vectors (B, D): z_d = g(x_d; NN(x_<d, context)) in the
    conditioner's ordering.

    ``conditioner(x, context=c)`` maps (B, D) to (B, D, 3K - 1) with output d depending only on
    the inputs before d in its ordering (a MADE network).  The density direction is one pass;
    the inverse takes D passes (pass t fixes position t of the ordering).
    """

    def __init__(self, conditioner: nn.Module, bins: int = 8, tail_bound: float = 3.0,
                 min_bin_width: float = MIN_BIN_WIDTH, min_bin_height: float = MIN_BIN_HEIGHT,
                 min_derivative: float = MIN_DERIVATIVE):
        super().__init__(bins, tail_bound, min_bin_width, min_bin_height, min_derivative)
        self.conditioner = conditioner

    def fused_spec(self):
        """("made-spline", static arguments, tensors) for :mod:`~deepgen.bijections.fused_stack` when the conditioner
        is a single-mask MADE (``layers`` of masked linear layers, ``direct``) and the spline can run fused; else
        None."""
        net = self.conditioner
        layers = getattr(net, "layers", None)
        if (not self.fused or layers is None or getattr(net, "num_masks", 0) != 1 or self.bins < 2
                or getattr(net, "k", None) != spline_param_count(self.bins) or self.min_bin_width != self.min_bin_height
                or not all(hasattr(layer, "fused_triple") for layer in layers)):
            return None
        tensors = [t for layer in layers for t in layer.fused_triple(0)]
        if net.direct is not None:
            tensors += net.direct.fused_triple(0)[:2]
        return ("made-spline", (self.bins, self.tail_bound, self.min_bin_width, self.min_derivative, len(layers) - 1,
                                net.direct is not None), tensors)

    def forward(self, x, context=None):
        z, ld = self.spline(x, self.conditioner(x, context=context), inverse=False)
        return z, sum_except_batch(ld)

    def inverse(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):  # after pass t the first t positions of the ordering are exact
            x, ld = self.spline(z, self.conditioner(x, context=context), inverse=True)
        return x, sum_except_batch(ld)
