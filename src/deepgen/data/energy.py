"""Unnormalised 2-D targets p(z) = exp(-U(z)) / Z for variational inference.

The four potentials of Rezende & Mohamed (2015, table 1 and figure 3), with

    w1(z) = sin(2 pi z1 / 4),  w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2),  w3(z) = 3 sigmoid((z1 - 1) / 0.3)

    U1(z) = ((|z| - 2) / 0.4)^2 / 2 - log(exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2))
    U2(z) = ((z2 - w1) / 0.4)^2 / 2
    U3(z) = -log(exp(-((z2 - w1) / 0.35)^2 / 2) + exp(-((z2 - w1 + w2) / 0.35)^2 / 2))
    U4(z) = -log(exp(-((z2 - w1) / 0.4)^2 / 2) + exp(-((z2 - w1 + w3) / 0.35)^2 / 2))

U2, U3 and U4 do not grow along z1, so exp(-U) has infinite mass on the plane; the paper
shows them on the square [-4, 4]^2.  deepgen adds the wall (z1 / 4.5)^20 to those three
(below 0.1 inside the paper's square, above 8 beyond |z1| = 5), which makes Z finite
and leaves the pictures as printed.

A target has no samples: a model fits it by minimising

    KL(q || p) = E_q[log q(z) + U(z)] + log Z,     ELBO = E_q[-U(z) - log q(z)] <= log Z,

and ``log_z()`` gives the true log Z by quadrature on a fine grid over ``box`` (outside
it exp(-U) is below 1e-7 of its peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from deepgen.data.spec import DataSpec


def _w1(z):
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z):
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z):
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _wall(z):
    """(z1 / 4.5)^20: confines U2..U4 along z1 (see the module docstring)."""
    return (z[:, 0] / 4.5) ** 20


def _two_bumps(a, sa, b, sb):
    """-log(exp(-(a / sa)^2 / 2) + exp(-(b / sb)^2 / 2)), computed stably."""
    return -torch.logsumexp(torch.stack([-0.5 * (a / sa) ** 2, -0.5 * (b / sb) ** 2]), dim=0)


def u1(z):
    r = z.norm(dim=1)
    return 0.5 * ((r - 2) / 0.4) ** 2 + _two_bumps(z[:, 0] - 2, 0.6, z[:, 0] + 2, 0.6)


def u2(z):
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _wall(z)


def u3(z):
    a = z[:, 1] - _w1(z)
    return _two_bumps(a, 0.35, a + _w2(z), 0.35) + _wall(z)


def u4(z):
    a = z[:, 1] - _w1(z)
    return _two_bumps(a, 0.4, a + _w3(z), 0.35) + _wall(z)


@dataclass(frozen=True)
class EnergyTarget:
    """A named potential U on the plane; ``box`` = (lo, hi) bounds every coordinate for quadrature,
    ``view`` the square that pictures show (the paper's figures show [-4, 4]^2)."""

    name: str
    potential: Callable[[torch.Tensor], torch.Tensor]
    description: str
    box: tuple[float, float] = (-6.0, 6.0)
    view: tuple[float, float] = (-4.5, 4.5)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(self.name, (2,), None, f"unnormalised target exp(-U)/Z: {self.description}")

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """U(z) per row of z (n, 2), in the dtype of z."""
        return self.potential(z)

    def grid(self, n: int = 401, box: tuple[float, float] | None = None) -> tuple[torch.Tensor, float]:
        """(n*n, 2) cell centres of an n x n grid over ``box`` (default: the target's) and the cell area."""
        lo, hi = box or self.box
        h = (hi - lo) / n
        xs = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
        gx, gy = torch.meshgrid(xs, xs, indexing="xy")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), h * h

    def log_z(self, n: int = 1001) -> float:
        """log Z = log of the integral of exp(-U) over the plane, by the midpoint rule on an n x n grid
        over ``box`` in float64 (the default n agrees with n = 4001 to 1e-12)."""
        return _log_z(self, n)


TARGETS: dict[str, EnergyTarget] = {
    "energy-u1": EnergyTarget("energy-u1", u1, "ring of radius 2 with two lobes at z1 = +-2 (Rezende & Mohamed "
                              "2015, U1)"),
    "energy-u2": EnergyTarget("energy-u2", u2, "sine wave z2 = sin(pi z1 / 2) (Rezende & Mohamed 2015, U2; "
                              "+ a wall at |z1| ~ 4.5)"),
    "energy-u3": EnergyTarget("energy-u3", u3, "sine wave and its split branch (Rezende & Mohamed 2015, U3; "
                              "+ a wall at |z1| ~ 4.5)"),
    "energy-u4": EnergyTarget("energy-u4", u4, "sine wave and a shifted sigmoid branch (Rezende & Mohamed 2015, "
                              "U4; + a wall at |z1| ~ 4.5)"),
}


@lru_cache(maxsize=None)
def _log_z(target: EnergyTarget, n: int) -> float:
    pts, area = target.grid(n)
    neg_u = torch.cat([-target.energy(chunk) for chunk in pts.split(1 << 18)])
    return float(torch.logsumexp(neg_u, 0) + math.log(area))


def load_target(name: str) -> EnergyTarget | None:
    """The built-in target ``name``, or None when ``name`` is not one."""
    return TARGETS.get(name)


def is_target(name: str) -> bool:
    return name in TARGETS
