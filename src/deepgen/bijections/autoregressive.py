"""Masked affine autoregressive bijection (MAF, Papamakarios et al. 2017; IAF, Kingma et al. 2016).

A conditioner network NN (a MADE: output d sees only inputs before d in its ordering)
gives a shift and an unbounded log-scale per dimension; the log-scale is soft-clamped:

    mu, a = NN(x, context),     alpha = B tanh(a / B)
    z_i   = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i))                 (forward: one pass)
    log|det dz/dx| = -sum_i alpha_i

The Jacobian is triangular in the ordering, so its determinant is the product of
the diagonal.  The inverse x_i = z_i exp(alpha_i(x_<i)) + mu_i(x_<i) needs x_<i
first: D passes, each recomputing every x_i from the previous estimate; after pass
k the first k dims in the ordering are exact, so D passes give x exactly (and the
log-det is -sum alpha of the last pass, whose inputs are exact where it matters).
Unrolling the D passes gives the exact gradient too (the Jacobian of one pass in x
is nilpotent).

MAF uses this bijection as is (density in one pass, sampling in D);
IAF is ``Inverse(MaskedAutoregressive(...))`` (sampling in one pass, density in D).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections.fused_autoregressive import fused_made_affine
from deepgen.bijections.base import Bijection


class MaskedAutoregressive(Bijection):
    """Affine autoregressive map on vectors (B, D).

    ``conditioner(x, context)`` returns (B, D, 2): [..., 0] the shift mu, [..., 1] the unbounded
    log-scale; it must be autoregressive (output i depends only on inputs before i in some
    ordering).  ``scale_bound`` B soft-clamps the log-scales to B tanh(a / B).
    """

    def __init__(self, conditioner: nn.Module, scale_bound: float = 3.0):
        super().__init__()
        self.conditioner = conditioner
        self.scale_bound = float(scale_bound)
        # a conditioner with ``fused_parts()`` (a MADE) runs as one fused node; False: always plain autograd
        self.fused = True

    def _shift_log_scale(self, x, context):
        h = self.conditioner(x, context)
        mu, a = h[..., 0], h[..., 1]
        return mu, self.scale_bound * torch.tanh(a / self.scale_bound)

    def fused_spec(self):
        """("made", static arguments, tensors) for :mod:`~deepgen.bijections.fused_stack`, or None when this layer
        does not run fused (a conditioner without ``fused_parts``, or ``fused`` is False)."""
        if not self.fused:
            return None
        parts = getattr(self._modules["conditioner"], "fused_parts", None)  # (no nn.Module attribute lookup)
        parts = parts() if parts is not None else None
        if parts is None:
            return None
        layers, direct = parts
        tensors = [t for layer in layers for t in layer] + (list(direct) if direct is not None else [])
        return ("made", (self.scale_bound, len(layers) - 1, direct is not None), tensors)

    def forward(self, x, context=None):
        parts = getattr(self.conditioner, "fused_parts", None)
        parts = parts() if parts is not None and self.fused else None
        if parts is not None:  # one autograd node (deepgen.bijections.fused_autoregressive)
            return fused_made_affine(x, context, self.scale_bound, *parts)
        mu, alpha = self._shift_log_scale(x, context)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(1)

    def inverse(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):
            mu, alpha = self._shift_log_scale(x, context)
            x = z * torch.exp(alpha) + mu
        return x, alpha.sum(1)
