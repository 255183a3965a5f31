"""Continuous normalizing flow (Chen et al. 2018; FFJORD, Grathwohl et al. 2019).

The bijection is the time-T flow of an ODE dz/dt = f(t, z, c).  By the instantaneous
change of variables, log|det| evolves as d log|det dz(t)/dz(0)| / dt = tr(df/dz), so one
solve of the augmented ODE gives both the map and its log-determinant.  We integrate in
rescaled time s = t / T in [0, 1] (so a learnable T just scales the dynamics):

    dz/ds = T f(sT, z, c),     dl/ds = T tr(df/dz)(sT, z, c),     l(0) = 0

``forward`` (data -> latent) integrates s: 0 -> 1 and returns (z(1), l(1)) = (z, log|det dz/dx|);
``inverse`` integrates s: 1 -> 0 and returns (x, log|det dx/dz|).  The figures are those of the
numerical solution: exact up to the solver tolerance (``rtol``, ``atol``).

Trace.  ``trace="exact"`` computes tr(df/dz) with D vector-Jacobian products (cheap for small D);
``trace="hutchinson"`` uses the unbiased estimate tr(A) = E[e^T A e] with one noise vector e
(``noise``: Gaussian or Rademacher, E[e e^T] = I) drawn once per solve and held fixed during it,
so l(1) = int T e^T (df/dz) e ds is an unbiased estimate of log|det| (one vector-Jacobian product
per evaluation).  The dynamics network must treat the examples of a batch independently.

Solver.  ``torchdiffeq.odeint`` with ``solver`` (adaptive: dopri5, bosh3, ...; fixed-grid: rk4,
euler, ... with ``step_size`` in s), backpropagating through the solver's operations, or
``adjoint=True``: ``odeint_adjoint`` (O(1) memory, a second solve backwards in time for the gradients).
The number of dynamics evaluations (NFE) of the last solve is ``last_nfe``; with the adjoint,
``last_nfe_backward`` holds the evaluations made by the previous solve's backward pass.

Regularisation (RNODE, Finlay et al. 2020).  With ``regularize=True`` a training-mode solve also
integrates the kinetic energy and the Jacobian Frobenius norm (Hutchinson, same noise)

    dE/ds = T ||f||^2,     dF/ds = T ||e^T df/dz||^2

and keeps their per-example values in ``last_regularization`` = (E, F) for the model's loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from deepgen.bijections.base import Bijection

TRACES = ("exact", "hutchinson")
NOISES = ("gaussian", "rademacher")
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_SOLVERS = ("rk4", "midpoint", "euler", "heun2", "heun3")
SOLVERS = ADAPTIVE_SOLVERS + FIXED_SOLVERS


def exact_trace(f: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """tr(df/dz) per example, from D vector-Jacobian products (examples must be independent)."""
    flat = f.reshape(len(f), -1)
    total = torch.zeros(len(f), dtype=f.dtype, device=f.device)
    for i in range(flat.shape[1]):
        g = torch.autograd.grad(flat[:, i].sum(), z, create_graph=create_graph, retain_graph=True,
                                allow_unused=True)[0]
        if g is not None:  # None: f does not depend on z
            total = total + g.reshape(len(f), -1)[:, i]
    return total


def hutchinson_vjp(f: torch.Tensor, z: torch.Tensor, e: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """e^T df/dz per example (one vector-Jacobian product)."""
    g = torch.autograd.grad(f, z, e, create_graph=create_graph, retain_graph=True, allow_unused=True)[0]
    return torch.zeros_like(z) if g is None else g


def draw_noise(like: torch.Tensor, kind: str) -> torch.Tensor:
    """Noise with E[e e^T] = I: standard normal or Rademacher (+-1)."""
    if kind == "gaussian":
        return torch.randn_like(like)
    return torch.randint(0, 2, like.shape, device=like.device).to(like.dtype) * 2 - 1


class CNFDynamics(nn.Module):
    """The augmented right-hand side in rescaled time (see the module docstring); counts its calls in ``nfe``.

    ``rhs(s, state, context, noise, trace, regularize)``; :class:`CNF` binds the per-solve inputs
    into a closure, so nothing of one solve is stored on the module.
    """

    def __init__(self, net: nn.Module, log_time: torch.Tensor, learn_time: bool):
        super().__init__()
        self.net = net
        if learn_time:
            self.log_time = nn.Parameter(log_time)
        else:
            self.register_buffer("log_time", log_time)
        self.nfe = 0

    @property
    def time(self) -> torch.Tensor:
        """Integration time T = exp(log_time)."""
        return self.log_time.exp()

    def rhs(self, s: torch.Tensor, state: tuple[torch.Tensor, ...], context: torch.Tensor | None,
            noise: torch.Tensor | None, trace: str, regularize: bool) -> tuple[torch.Tensor, ...]:
        self.nfe += 1
        # a graph is needed when the caller differentiates (training, or the adjoint's backward pass)
        need_graph = torch.is_grad_enabled()
        z = state[0]
        with torch.enable_grad():
            if not (need_graph and z.requires_grad):
                z = z.detach().requires_grad_(True)
            T = self.time.to(z.dtype)
            f = self.net(s.to(z.dtype) * T, z, context)
            vjp = None
            if trace == "exact":
                div = exact_trace(f, z, need_graph)
            else:
                vjp = hutchinson_vjp(f, z, noise, need_graph)
                div = (vjp * noise).reshape(len(z), -1).sum(1)
            out = [T * f, T * div]
            if regularize:
                if vjp is None:
                    vjp = hutchinson_vjp(f, z, noise, need_graph)
                out.append(T * f.reshape(len(z), -1).square().sum(1))
                out.append(T * vjp.reshape(len(z), -1).square().sum(1))
        if not need_graph:
            out = [o.detach() for o in out]
        return tuple(out)


class CNF(Bijection):
    """The time-T map of dz/dt = f(t, z, c), ``dynamics`` = f called as ``dynamics(t, z, context)``.

    Args (see the module docstring): ``time`` T (learned through log T if ``learn_time``), ``trace``
    "exact" or "hutchinson", ``noise`` "gaussian" or "rademacher", ``rtol``/``atol``, ``solver``,
    ``step_size`` (fixed-grid solvers, in s in [0, 1]), ``adjoint``, ``regularize`` (RNODE terms).
    """

    def __init__(self, dynamics: nn.Module, time: float = 1.0, learn_time: bool = False, trace: str = "exact",
                 noise: str = "rademacher", rtol: float = 1e-5, atol: float = 1e-5, solver: str = "dopri5",
                 step_size: float = 0.1, adjoint: bool = False, regularize: bool = False):
        super().__init__()
        if trace not in TRACES:
            raise ValueError(f"CNF: trace must be one of {TRACES}, got {trace!r}")
        if noise not in NOISES:
            raise ValueError(f"CNF: noise must be one of {NOISES}, got {noise!r}")
        if solver not in SOLVERS:
            raise ValueError(f"CNF: solver must be one of {SOLVERS}, got {solver!r}")
        if not time > 0:
            raise ValueError(f"CNF: time must be > 0, got {time}")
        self.func = CNFDynamics(dynamics, torch.tensor(math.log(time)), learn_time)
        self.trace, self.noise = trace, noise
        self.rtol, self.atol, self.solver, self.step_size = float(rtol), float(atol), solver, float(step_size)
        self.adjoint, self.regularize = bool(adjoint), bool(regularize)
        self.last_nfe = 0
        self.last_nfe_backward = 0
        self._nfe_mark = 0
        self.last_regularization: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def time(self) -> torch.Tensor:
        return self.func.time

    def forward(self, x, context=None):
        return self._solve(x, context, 0.0, 1.0)

    def inverse(self, y, context=None):
        return self._solve(y, context, 1.0, 0.0)

    def _solve(self, x: torch.Tensor, context: torch.Tensor | None, s0: float, s1: float):
        func = self.func
        self.last_nfe_backward = func.nfe - self._nfe_mark  # the adjoint backward of the previous solve
        regularize = self.regularize and self.training
        trace, noise = self.trace, None
        if trace == "hutchinson" or regularize:
            noise = draw_noise(x, self.noise)  # drawn once: held fixed during the whole solve

        def rhs(s, st):
            return func.rhs(s, st, context, noise, trace, regularize)

        zeros = x.new_zeros(len(x))
        state = (x, zeros) + ((zeros, zeros) if regularize else ())
        t = torch.tensor([s0, s1], dtype=x.dtype, device=x.device)
        kwargs = dict(rtol=self.rtol, atol=self.atol, method=self.solver,
                      options={"step_size": self.step_size} if self.solver in FIXED_SOLVERS else None)
        start = func.nfe
        try:
            if self.adjoint:
                params = tuple(p for p in func.parameters() if p.requires_grad)
                if context is not None and context.requires_grad:
                    params = params + (context,)
                out = odeint_adjoint(rhs, state, t, adjoint_params=params, **kwargs)
            else:
                out = odeint(rhs, state, t, **kwargs)
        finally:
            self.last_nfe = func.nfe - start
            self._nfe_mark = func.nfe
        final = [o[-1] for o in out]
        self.last_regularization = (final[2], final[3]) if regularize else None
        return final[0], final[1]
