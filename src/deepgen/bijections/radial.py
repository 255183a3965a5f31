"""Radial flow layer (Rezende & Mohamed 2015), with its inverse.

The sampling direction (latent z -> data x, ``inverse``) is the closed-form map

    x = g(z) = z + beta h(alpha, r) (z - z0),   r = |z - z0|,   h = 1 / (alpha + r),
    log|det dg/dz| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r)
                   = (D - 1) log((alpha + beta + r) / (alpha + r)) + log(1 + alpha beta / (alpha + r)^2)

with the invertibility constraint beta >= -alpha from unconstrained (alpha', beta'):

    alpha = softplus(alpha'),   beta = -alpha + softplus(beta').

The density direction (``forward``) inverts g along the ray from z0: x - z0 is parallel to
z - z0 and the radii satisfy r_x = r (1 + beta / (alpha + r)), strictly increasing in r >= 0
when beta >= -alpha.  This scalar equation is the quadratic

    r^2 + (alpha + beta - r_x) r - alpha r_x = 0,

whose one non-negative root is taken in closed form (the cancellation-free branch of the
quadratic formula), so the inverse is exact up to float rounding: no iteration, no tolerance,
and plain autograd gives its gradients.  Then z = z0 + (x - z0) (alpha + r) / (alpha + beta + r).
At the boundary beta = -alpha (reached only when softplus(beta') underflows) g stays
invertible (r_x = r^2 / (alpha + r)) but its Jacobian vanishes at z0 (log|det| -> -inf there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijections.base import Bijection
from deepgen.bijections.planar import inverse_softplus


def radial_radius(r_x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The root r >= 0 of r (1 + beta / (alpha + r)) = r_x (alpha > 0, beta >= -alpha, r_x >= 0)."""
    q = alpha + beta - r_x
    disc = (q * q + 4 * alpha * r_x).clamp_min(torch.finfo(r_x.dtype).tiny)
    sq = disc.sqrt()
    plus = 0.5 * (sq - q)  # no cancellation when q <= 0
    den = torch.where(q > 0, q + sq, torch.ones_like(q))
    return torch.where(q > 0, 2 * alpha * r_x / den, plus)  # = plus, rewritten for q > 0


class RadialLayer(Bijection):
    """One radial layer on (B, D) vectors; parameters z0 (D,), alpha', beta' (scalars), see the module docstring.

    Initialisation: z0 ~ N(0, I), alpha = 1 and beta = init_scale * N(0, 1): near the identity.
    """

    def __init__(self, dim: int, init_scale: float = 0.01):
        super().__init__()
        self.dim = int(dim)
        self.z0 = nn.Parameter(torch.randn(dim))
        one = torch.ones(())
        self.alpha_raw = nn.Parameter(inverse_softplus(one))
        beta = init_scale * torch.randn(())
        self.beta_raw = nn.Parameter(inverse_softplus(one + beta))

    def constrained(self):
        """(alpha, beta) with alpha > 0 and beta >= -alpha."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def _logdet(self, r, alpha, beta):
        ab = alpha + beta  # = softplus(beta') >= 0 exactly
        radial = (self.dim - 1) * (torch.log(ab + r) - torch.log(alpha + r)) if self.dim > 1 else 0.0
        return radial + torch.log1p(alpha * beta / (alpha + r).square())

    def inverse(self, z, context=None):
        """Sampling direction, closed form: x = z0 + (z - z0) (alpha + beta + r) / (alpha + r)."""
        alpha, beta = self.constrained()
        d = z - self.z0
        r = d.norm(dim=1)
        x = self.z0 + d * ((alpha + beta + r) / (alpha + r)).unsqueeze(1)
        return x, self._logdet(r, alpha, beta)

    def forward(self, x, context=None):
        """Density direction: the radius from the quadratic (:func:`radial_radius`), then rescale along the ray."""
        alpha, beta = self.constrained()
        d = x - self.z0
        r = radial_radius(d.norm(dim=1), alpha, beta)
        z = self.z0 + d * ((alpha + r) / (alpha + beta + r)).unsqueeze(1)
        return z, -self._logdet(r, alpha, beta)

