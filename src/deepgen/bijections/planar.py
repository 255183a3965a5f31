"""Planar flow layer (Rezende & Mohamed 2015), with its numerical inverse.

The sampling direction (latent z -> data x, ``inverse``) is the closed-form map

    x = g(z) = z + u_hat h(w.z + b),   h = tanh,
    log|det dg/dz| = log|1 + h'(w.z + b) w.u_hat|

with u replaced by u_hat so that g is invertible (w.u_hat >= -1):

    u_hat = u + (m(w.u) - w.u) w / |w|^2,   m(a) = -1 + softplus(a),  so w.u_hat = m(w.u) >= -1.

The density direction (``forward``) inverts g numerically.  With a = w.z, g(z) = x reads
along w as the scalar equation

    f(a) = a + k h(a + b) - w.x = 0,   k = w.u_hat >= -1,

strictly increasing in a (f' = 1 + k h' >= 1 - h' >= 0, zero at one point at most), with
the root in [w.x - |k|, w.x + |k|] since |h| <= 1.  Then z = x - u_hat h(a + b) and
log|det dz/dx| = -log(1 + k h'(a + b)).

Tolerance.  :func:`solve_planar` solves f(a) = 0 in float64 without gradients by
bracketed Newton (a bisection step whenever Newton leaves the bracket) until the step
is below ``TOL`` (1 + |a|), TOL = 1e-12: the returned a is within
1e-10 (1 + |a*|) + 1e-15 (|w.x| + |k|) / f'(a*) of the root (the second term is float64
rounding of f, negligible unless k is huge or f'(a*) tiny; tested).  At the degenerate boundary k = -1, a* = -b (f'(a*) = 0,
dz/dx infinite) f is cubic at the root and a is only determined to about
(float64 eps)^(1/3) ~ 1e-5, but the residual |g(z) - x| stays at rounding level.

Gradients of the numerical inverse come from the implicit function theorem with the
value pinned to the solver's root:

    a = a* - (f(a*) - stopgrad f(a*)) / stopgrad f'(a*)

equals a* exactly and has da/dtheta = -(df/dtheta) / f'(a*) (one Newton step from the root,
with only its first-order term kept, so float32 rounding of f cannot move the value).

|w|^2 is guarded by ``W_EPS``: with |w|^2 < W_EPS (w essentially 0) the layer is the
translation x = z + u h(b); the constraint k >= -1 holds exactly whenever |w|^2 >= W_EPS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijections.base import Bijection

TOL = 1e-12
MAX_ITER = 200
W_EPS = 1e-30


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """softplus^{-1}(y) = log(expm1(y)) for y > 0 (stable for large y)."""
    return y + torch.log(-torch.expm1(-y))


@torch.no_grad()
def solve_planar(s: torch.Tensor, k: torch.Tensor, b: torch.Tensor, tol: float = TOL,
                 max_iter: int = MAX_ITER) -> torch.Tensor:
    """The root a of a + k tanh(a + b) = s per element (k >= -1), in float64, without gradients.

    Bracketed Newton (rtsafe): the bracket [s - |k|, s + |k|] holds the root and shrinks on the
    sign of f; each step takes Newton's point when it falls strictly inside the bracket and is
    less than half the step before last (or is itself below the tolerance), the bracket's
    midpoint otherwise.  Stops when every
    step is below ``tol`` (1 + |a|).
    """
    s, k, b = (t.detach().double() for t in torch.broadcast_tensors(s, k, b))
    lo, hi = s - k.abs(), s + k.abs()
    a = (s - k * torch.tanh(s + b)).clamp(lo, hi)  # one fixed-point step: exact when k h is flat
    old_step = prev_step = hi - lo
    for _ in range(max_iter):
        t = torch.tanh(a + b)
        f = a + k * t - s
        fp = 1 + k * (1 - t * t)
        lo = torch.where(f <= 0, a, lo)
        hi = torch.where(f >= 0, a, hi)
        newton = a - f / fp
        # Newton only inside the bracket and when it at least halves the step before last (rtsafe),
        # or when it is below the tolerance (at the root: its rounding-level step may touch the bracket)
        dn = (newton - a).abs()
        good = ((newton > lo) & (newton < hi) & (dn < 0.5 * old_step)) | (dn <= tol * (1 + a.abs()))
        new = torch.where(f == 0, a, torch.where(good, newton, 0.5 * (lo + hi)))
        step = (new - a).abs()
        a, old_step, prev_step = new, prev_step, step
        if not bool((step > tol * (1 + a.abs())).any()):
            break
    return a


def constrain_planar(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(u_hat, k = w.u_hat) for raw u, w of shape (..., D): u_hat = u + (m(w.u) - w.u) w / |w|^2 with
    m(a) = -1 + softplus(a), so k = m(w.u) >= -1 (the translation u, k = w.u, where |w|^2 < W_EPS)."""
    wu = (w * u).sum(-1, keepdim=True)
    n2 = w.square().sum(-1, keepdim=True)
    n2g = n2.clamp_min(W_EPS)
    rho = n2 / n2g  # 1 unless |w|^2 < W_EPS
    m = F.softplus(wu) - 1
    u_hat = u + (m - wu) * w / n2g
    k = m * rho + wu * (1 - rho)
    return u_hat, k.squeeze(-1)


def planar_map(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling direction x = z + u_hat tanh(w.z + b) with per-row parameters u, w (B, D), b (B,)
    (an amortized planar layer, e.g. a VAE posterior): returns (x, log|det dx/dz| = log(1 + k h'))."""
    u_hat, k = constrain_planar(u, w)
    t = torch.tanh((w * z).sum(-1) + b)
    return z + t.unsqueeze(-1) * u_hat, torch.log1p(k * (1 - t * t))


class PlanarLayer(Bijection):
    """One planar layer on (B, D) vectors; parameters u, w (D,) and b (scalar), see the module docstring.

    Initialisation: w ~ N(0, I / D) (|w| ~ 1), b = 0, and u chosen so that u_hat = v with
    v ~ N(0, init_scale^2 I): a map near the identity that is not degenerate.
    """

    def __init__(self, dim: int, init_scale: float = 0.01):
        super().__init__()
        w = torch.randn(dim) / math.sqrt(dim)
        v = init_scale * torch.randn(dim)
        n2 = w.square().sum()
        wv = (w * v).sum()
        # want m(w.u) = w.v with the same component orthogonal to w: w.u = softplus^{-1}(1 + w.v)
        wu = inverse_softplus(1 + wv)
        self.u = nn.Parameter(v + (wu - wv) * w / n2)
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(()))

    def constrained(self):
        """(u_hat, k = w.u_hat): the invertibility constraint applied to the raw (u, w)."""
        return constrain_planar(self.u, self.w)

    def inverse(self, z, context=None):
        """Sampling direction, closed form: x = z + u_hat tanh(w.z + b)."""
        u_hat, k = self.constrained()
        t = torch.tanh(z @ self.w + self.b)
        x = z + t.unsqueeze(1) * u_hat
        return x, torch.log1p(k * (1 - t * t))

    def forward(self, x, context=None):
        """Density direction: z = g^{-1}(x) by :func:`solve_planar`, gradients by the implicit function theorem."""
        u_hat, k = self.constrained()
        s = x @ self.w
        a_star = solve_planar(s, k, self.b).to(x.dtype)
        t_star = torch.tanh(a_star + self.b)
        f = a_star + k * t_star - s
        fp = (1 + k * (1 - t_star * t_star)).detach().clamp_min(torch.finfo(x.dtype).tiny)
        a = a_star - (f - f.detach()) / fp
        t = torch.tanh(a + self.b)
        z = x - t.unsqueeze(1) * u_hat
        return z, -torch.log1p(k * (1 - t * t))
