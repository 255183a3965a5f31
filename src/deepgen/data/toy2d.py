"""Built-in 2-D densities, generated in torch (nothing downloaded).

Every dataset is continuous (``levels = None``), shape ``(2,)``, roughly within
[-4, 4]^2, with fixed splits of 10000 / 2000 / 2000 points.  Each split is drawn
with its own seed ``crc32("<name>/<split>")``, so it is identical in every
process and run.  NLLs are in nats per point; bits/dim = NLL / (2 ln 2).

``MODES`` gives the mixture centers and std of ``ring8`` and ``grid25`` for
mode-coverage metrics.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import torch

from deepgen.data.spec import DataSpec, Splits, validate_array
from deepgen.errors import unknown_name

SPLIT_SIZES = {"train": 10000, "val": 2000, "test": 2000}

_Gen = torch.Generator


def _randn(n: int, g: _Gen, d: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=g)


def _rand(n: int, g: _Gen, d: int = 1) -> torch.Tensor:
    return torch.rand(n, d, generator=g)


def _polar(r: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(r cos theta, r sin theta) for column vectors r, theta."""
    return torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=1)


def _mixture(centers: torch.Tensor, std: float, n: int, g: _Gen) -> torch.Tensor:
    """Equal-weight isotropic Gaussian mixture: x = centers[k] + std * eps, k ~ U{0..K-1}."""
    k = torch.randint(len(centers), (n,), generator=g)
    return centers[k] + std * _randn(n, g)


def _ring8_centers() -> torch.Tensor:
    theta = torch.arange(8, dtype=torch.float32).unsqueeze(1) * (2 * math.pi / 8)
    return _polar(torch.full_like(theta, 2.0), theta)


def _grid25_centers() -> torch.Tensor:
    v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(v, v)


MODES: dict[str, tuple[torch.Tensor, float]] = {
    "ring8": (_ring8_centers(), 0.02),
    "grid25": (_grid25_centers(), 0.05),
}


def _moons(n: int, g: _Gen) -> torch.Tensor:
    # Upper arc (cos t, sin t) and lower arc (1 - cos t, 0.5 - sin t), t ~ U[0, pi];
    # noise std 0.1, then centred and scaled by 2.
    t = _rand(n, g) * math.pi
    upper = (torch.arange(n) % 2 == 0).unsqueeze(1)
    arc = _polar(torch.ones_like(t), t)
    x = torch.where(upper, arc, torch.tensor([1.0, 0.5]) - arc)
    x = x + 0.1 * _randn(n, g)
    return 2.0 * (x - torch.tensor([0.5, 0.25]))


def _circles(n: int, g: _Gen) -> torch.Tensor:
    # Two concentric circles, radii 3 and 1.5, equal weight, isotropic noise std 0.1.
    r = torch.where(_rand(n, g) < 0.5, 3.0, 1.5)
    return _polar(r, 2 * math.pi * _rand(n, g)) + 0.1 * _randn(n, g)


def _rings(n: int, g: _Gen) -> torch.Tensor:
    # Four concentric rings, radii 0.75, 1.5, 2.25, 3, equal weight, noise std 0.08.
    r = 0.75 * (1 + torch.randint(4, (n, 1), generator=g)).float()
    return _polar(r, 2 * math.pi * _rand(n, g)) + 0.08 * _randn(n, g)


def _checkerboard(n: int, g: _Gen) -> torch.Tensor:
    # Uniform on the 8 dark squares of a 4x4 board of 2x2 squares covering [-4, 4]^2.
    x1 = _rand(n, g) * 4 - 2
    x2 = _rand(n, g) - 2 * torch.randint(2, (n, 1), generator=g).float()
    x2 = x2 + torch.floor(x1) % 2
    return 2.0 * torch.cat([x1, x2], dim=1)


def _spirals(n: int, g: _Gen) -> torch.Tensor:
    # Two interleaved arms: t = sqrt(u) * 3 pi, arm (-t cos t, t sin t) and its mirror, / 3.
    t = torch.sqrt(_rand(n, g)) * 3 * math.pi
    arm = torch.cat([-t * torch.cos(t), t * torch.sin(t)], dim=1) + 0.5 * _rand(n, g, 2)
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).unsqueeze(1)
    return sign * arm / 3 + 0.1 * _randn(n, g)


def _pinwheel(n: int, g: _Gen) -> torch.Tensor:
    # Five arms: (1 + 0.3 e1, 0.1 e2) rotated by 2 pi k / 5 + 0.25 exp(1 + 0.3 e1), scaled by 2.
    k = torch.randint(5, (n,), generator=g)
    f = _randn(n, g) * torch.tensor([0.3, 0.1]) + torch.tensor([1.0, 0.0])
    angle = 2 * math.pi * k / 5 + 0.25 * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (n, 2, 2)
    return 2.0 * torch.einsum("nij,nj->ni", rot, f)


def _swissroll(n: int, g: _Gen) -> torch.Tensor:
    # t ~ U[1.5 pi, 4.5 pi], (t cos t, t sin t) + N(0, 1), all divided by 4.
    t = 1.5 * math.pi * (1 + 2 * _rand(n, g))
    return (_polar(t, t) + _randn(n, g)) / 4


def _ring8(n: int, g: _Gen) -> torch.Tensor:
    return _mixture(*MODES["ring8"], n, g)


def _grid25(n: int, g: _Gen) -> torch.Tensor:
    return _mixture(*MODES["grid25"], n, g)


_SAMPLERS: dict[str, Callable[[int, _Gen], torch.Tensor]] = {
    "moons": _moons,
    "circles": _circles,
    "ring8": _ring8,
    "grid25": _grid25,
    "checkerboard": _checkerboard,
    "spirals": _spirals,
    "pinwheel": _pinwheel,
    "rings": _rings,
    "swissroll": _swissroll,
}

_SIZES = "/".join(str(v) for v in SPLIT_SIZES.values()) + " train/val/test"

TOY_DATASETS: dict[str, str] = {
    "moons": f"two interleaved half-moons, noise std 0.2; x in about [-3.4, 3.4], y in about [-1.9, 1.9]; {_SIZES}",
    "circles": f"two concentric circles, radii 3 and 1.5, noise std 0.1; within [-3.4, 3.4]; {_SIZES}",
    "ring8": f"8 Gaussians, std 0.02, equally spaced on a circle of radius 2; within [-2.1, 2.1]; {_SIZES}",
    "grid25": f"25 Gaussians, std 0.05, on the grid {{-4,-2,0,2,4}}^2; within [-4.2, 4.2]; {_SIZES}",
    "checkerboard": f"uniform on the dark squares of a 4x4 checkerboard of 2x2 squares; [-4, 4]^2; {_SIZES}",
    "spirals": f"two interleaved spirals, noise std 0.1; within about [-3.5, 3.5]; {_SIZES}",
    "pinwheel": f"5-arm pinwheel of rotated Gaussians; within about [-4, 4]; {_SIZES}",
    "rings": f"4 concentric rings, radii 0.75/1.5/2.25/3, noise std 0.08; within [-3.3, 3.3]; {_SIZES}",
    "swissroll": f"2-D swiss roll t(cos t, sin t)/4, t in [1.5pi, 4.5pi], noise std 0.25; about [-4, 4]; {_SIZES}",
}


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points of dataset ``name`` as an (n, 2) float32 tensor, drawn from ``generator``."""
    if name not in _SAMPLERS:
        raise unknown_name("dataset", name, TOY_DATASETS)
    return _SAMPLERS[name](int(n), generator).to(torch.float32)


def split_seed(name: str, split: str) -> int:
    """Stable seed of one split: crc32 of ``"<name>/<split>"`` (same in every process)."""
    return zlib.crc32(f"{name}/{split}".encode())


def load_toy(name: str) -> Splits:
    """Fixed train / val / test splits (10000 / 2000 / 2000 points) of toy dataset ``name``."""
    if name not in TOY_DATASETS:
        raise unknown_name("dataset", name, TOY_DATASETS)
    spec = DataSpec(name=name, shape=(2,), levels=None, description=TOY_DATASETS[name])
    parts = {
        split: validate_array(
            sample_toy(name, size, torch.Generator().manual_seed(split_seed(name, split))),
            spec,
            f"toy dataset '{name}' ({split})",
        )
        for split, size in SPLIT_SIZES.items()
    }
    return Splits(spec, **parts)
