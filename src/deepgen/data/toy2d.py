"""Built-in 2-D densities, generated in torch (nothing downloaded).

Every dataset is continuous (``levels = None``), shape ``(2,)``, roughly within
[-4, 4]^2, with fixed splits of 10000 / 2000 / 2000 points.  Each split is drawn
with its own seed ``crc32("<name>/<split>")``, so it is identical in every
process and run.  NLLs are in nats per point; bits/dim = NLL / (2 ln 2).

``MODES`` gives the mixture centers and std of ``ring8`` and ``grid25`` for
mode-coverage metrics.

Labels.  Every dataset but ``swissroll`` is a mixture, and each point carries
the index of the component it was drawn from (computed from the same random
draws, so the points are those of an unlabelled sampler); ``TOY_CLASSES`` names
the components: moons (upper, lower arc), circles (outer, inner), rings (radius
0.75 (k+1)), ring8 / grid25 (index into ``MODES[name][0]``), pinwheel (arm k at
angle 2 pi k / 5), spirals (arm 0, arm 1 = its mirror image), checkerboard (dark
square ``2 * column + row``, columns left to right, rows bottom to top).
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import torch

from deepgen.data.labels import label_summary
from deepgen.data.spec import DataSpec, Splits, validate_array
from deepgen.errors import unknown_name

SPLIT_SIZES = {"train": 10000, "val": 2000, "test": 2000}

_Gen = torch.Generator
_Drawn = tuple[torch.Tensor, "torch.Tensor | None"]  # points (n, 2), component ids (n,) or None


def _randn(n: int, g: _Gen, d: int = 2) -> torch.Tensor:
    """(n, d) standard normal draws."""
    return torch.randn(n, d, generator=g)


def _rand(n: int, g: _Gen, d: int = 1) -> torch.Tensor:
    """(n, d) uniform draws on [0, 1)."""
    return torch.rand(n, d, generator=g)


def _polar(r: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(r cos theta, r sin theta) for column vectors r, theta."""
    return torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=1)


def _mixture(centers: torch.Tensor, std: float, n: int, g: _Gen) -> _Drawn:
    """Equal-weight isotropic Gaussian mixture: x = centers[k] + std * eps, k ~ U{0..K-1}; returns (x, k)."""
    k = torch.randint(len(centers), (n,), generator=g)
    return centers[k] + std * _randn(n, g), k


def _ring8_centers() -> torch.Tensor:
    """The 8 centres at angles 2 pi k / 8 on the circle of radius 2."""
    theta = torch.arange(8, dtype=torch.float32).unsqueeze(1) * (2 * math.pi / 8)
    return _polar(torch.full_like(theta, 2.0), theta)


def _grid25_centers() -> torch.Tensor:
    """The 25 centres {-4,-2,0,2,4}^2 (row-major in x, then y)."""
    v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(v, v)


MODES: dict[str, tuple[torch.Tensor, float]] = {
    "ring8": (_ring8_centers(), 0.02),
    "grid25": (_grid25_centers(), 0.05),
}


def _moons(n: int, g: _Gen) -> _Drawn:
    """Upper arc (cos t, sin t) and lower arc (1 - cos t, 0.5 - sin t), t ~ U[0, pi];
    noise std 0.1, then centred and scaled by 2.  Even points upper (label 0), odd lower (1).
    """
    t = _rand(n, g) * math.pi
    arc_id = torch.arange(n) % 2
    upper = (arc_id == 0).unsqueeze(1)
    arc = _polar(torch.ones_like(t), t)
    x = torch.where(upper, arc, torch.tensor([1.0, 0.5]) - arc)
    x = x + 0.1 * _randn(n, g)
    return 2.0 * (x - torch.tensor([0.5, 0.25])), arc_id


def _circles(n: int, g: _Gen) -> _Drawn:
    """Two concentric circles, radii 3 (label 0) and 1.5 (label 1), equal weight, noise std 0.1."""
    outer = _rand(n, g) < 0.5
    r = torch.where(outer, 3.0, 1.5)
    return _polar(r, 2 * math.pi * _rand(n, g)) + 0.1 * _randn(n, g), (~outer).long().squeeze(1)


def _rings(n: int, g: _Gen) -> _Drawn:
    """Four concentric rings, radii 0.75 (k + 1) for label k = 0..3, equal weight, noise std 0.08."""
    k = torch.randint(4, (n, 1), generator=g)
    r = 0.75 * (1 + k).float()
    return _polar(r, 2 * math.pi * _rand(n, g)) + 0.08 * _randn(n, g), k.squeeze(1)


def _checkerboard(n: int, g: _Gen) -> _Drawn:
    """Uniform on the 8 dark squares of a 4x4 board of 2x2 squares covering [-4, 4]^2.
    Column c = floor(x1) + 2 (0..3, left to right); the draw b picks the lower (b = 1) or
    upper (b = 0) dark square of that column; label = 2 c + (1 - b).
    """
    x1 = _rand(n, g) * 4 - 2
    u = _rand(n, g)
    b = torch.randint(2, (n, 1), generator=g)
    x2 = u - 2 * b.float()
    column = torch.floor(x1)
    x2 = x2 + column % 2
    label = 2 * (column.long() + 2) + (1 - b)
    return 2.0 * torch.cat([x1, x2], dim=1), label.squeeze(1)


def _spirals(n: int, g: _Gen) -> _Drawn:
    """Two interleaved arms: t = sqrt(u) * 3 pi, arm (-t cos t, t sin t) and its mirror, / 3.
    Even points on the arm (label 0), odd points on the mirror (label 1).
    """
    t = torch.sqrt(_rand(n, g)) * 3 * math.pi
    arm = torch.cat([-t * torch.cos(t), t * torch.sin(t)], dim=1) + 0.5 * _rand(n, g, 2)
    arm_id = torch.arange(n) % 2
    sign = torch.where(arm_id == 0, 1.0, -1.0).unsqueeze(1)
    return sign * arm / 3 + 0.1 * _randn(n, g), arm_id


def _pinwheel(n: int, g: _Gen) -> _Drawn:
    """Five arms: (1 + 0.3 e1, 0.1 e2) rotated by 2 pi k / 5 + 0.25 exp(1 + 0.3 e1), scaled by 2; label = arm k."""
    k = torch.randint(5, (n,), generator=g)
    f = _randn(n, g) * torch.tensor([0.3, 0.1]) + torch.tensor([1.0, 0.0])
    angle = 2 * math.pi * k / 5 + 0.25 * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (n, 2, 2)
    return 2.0 * torch.einsum("nij,nj->ni", rot, f), k


def _swissroll(n: int, g: _Gen) -> _Drawn:
    """t ~ U[1.5 pi, 4.5 pi], (t cos t, t sin t) + N(0, 1), all divided by 4.  No components: no labels."""
    t = 1.5 * math.pi * (1 + 2 * _rand(n, g))
    return (_polar(t, t) + _randn(n, g)) / 4, None


def _ring8(n: int, g: _Gen) -> _Drawn:
    """8 Gaussians on a circle; label = centre index."""
    return _mixture(*MODES["ring8"], n, g)


def _grid25(n: int, g: _Gen) -> _Drawn:
    """25 Gaussians on a grid; label = centre index."""
    return _mixture(*MODES["grid25"], n, g)


_SAMPLERS: dict[str, Callable[[int, _Gen], _Drawn]] = {
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


def _indexed(k: int) -> tuple[str, ...]:
    """Class names "0" .. "k-1"."""
    return tuple(str(i) for i in range(k))


TOY_CLASSES: dict[str, tuple[str, ...]] = {
    "moons": ("upper", "lower"),
    "circles": ("outer", "inner"),
    "ring8": _indexed(8),
    "grid25": _indexed(25),
    "checkerboard": _indexed(8),
    "spirals": _indexed(2),
    "pinwheel": _indexed(5),
    "rings": ("r=0.75", "r=1.5", "r=2.25", "r=3"),
    "swissroll": (),
}

_DESCRIPTIONS = {
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

TOY_DATASETS: dict[str, str] = {
    name: desc + (f"; {label_summary(TOY_CLASSES[name])}" if TOY_CLASSES[name] else "")
    for name, desc in _DESCRIPTIONS.items()
}


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points of dataset ``name`` as an (n, 2) float32 tensor, drawn from ``generator``."""
    return sample_toy_labelled(name, n, generator)[0]


def sample_toy_labelled(name: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` points of ``name`` (float32 (n, 2)) and their component ids (int64 (n,), None for swissroll).

    The points are exactly those of :func:`sample_toy` with the same generator state.
    """
    if name not in _SAMPLERS:
        raise unknown_name("dataset", name, TOY_DATASETS)
    x, k = _SAMPLERS[name](int(n), generator)
    return x.to(torch.float32), k


def split_seed(name: str, split: str) -> int:
    """Stable seed of one split: crc32 of ``"<name>/<split>"`` (same in every process)."""
    return zlib.crc32(f"{name}/{split}".encode())


def load_toy(name: str) -> Splits:
    """Fixed train / val / test splits (10000 / 2000 / 2000 points) of toy dataset ``name``, with labels."""
    if name not in TOY_DATASETS:
        raise unknown_name("dataset", name, TOY_DATASETS)
    spec = DataSpec(name=name, shape=(2,), levels=None, description=TOY_DATASETS[name])
    parts, labels = {}, {}
    for split, size in SPLIT_SIZES.items():
        x, k = sample_toy_labelled(name, size, torch.Generator().manual_seed(split_seed(name, split)))
        parts[split] = validate_array(x, spec, f"toy dataset '{name}' ({split})")
        if k is not None:
            labels[split] = k
    return Splits(spec, **parts, labels=labels, classes=TOY_CLASSES[name])
