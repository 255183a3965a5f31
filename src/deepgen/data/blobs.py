"""``blobs``: a synthetic image dataset with known, independent factors of variation.

Each 16x16 grey image (16 levels, integers 0..15) shows one anti-aliased disc.  Four factors are
drawn independently and uniformly from fixed grids (as in dSprites):

    pos_x, pos_y   8 centres each, 4.0 .. 11.0 pixels
    size           4 radii: 1.5, 2.1, 2.7, 3.3 pixels
    intensity      4 brightnesses: 0.4, 0.6, 0.8, 1.0 of the top level

    pixel(u, v) = round(15 * intensity * clip(radius + 1/2 - |(u, v) - centre|, 0, 1))

(pixel centres at integer coordinates; the clip gives a one-pixel linear edge).  The split is
10000 / 1000 / 1000 images, generated from fixed seeds (nothing downloaded).  ``Splits.factors``
holds each image's factor indices (int64, (N, 4)) and ``Splits.factor_names`` their names, so a
disentanglement metric (:mod:`deepgen.evaluation.disentanglement`) can compare codes with them.
There are no class labels.
"""

from __future__ import annotations

import zlib

import torch

from deepgen.data.spec import DataSpec, Splits

SIZE = 16
LEVELS = 16
FACTORS: dict[str, tuple[float, ...]] = {
    "pos_x": tuple(4.0 + i for i in range(8)),
    "pos_y": tuple(4.0 + i for i in range(8)),
    "size": (1.5, 2.1, 2.7, 3.3),
    "intensity": (0.4, 0.6, 0.8, 1.0),
}
SPLIT_SIZES = {"train": 10000, "val": 1000, "test": 1000}
DESCRIPTION = (f"synthetic discs with independent factors (pos_x 8, pos_y 8, size 4, intensity 4 values); "
               f"{SIZE}x{SIZE} grey, {LEVELS} levels (0..{LEVELS - 1}); "
               + "/".join(str(v) for v in SPLIT_SIZES.values()) + "; no class labels, factors for disentanglement")


def render(factors: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 16, 16) on levels 0..15 for factor indices ``factors`` (N, 4) (order of FACTORS)."""
    values = [torch.tensor(v)[factors[:, i]] for i, v in enumerate(FACTORS.values())]
    cx, cy, radius, intensity = (v[:, None, None] for v in values)
    grid = torch.arange(SIZE, dtype=torch.float32)
    dist = torch.sqrt((grid[None, None, :] - cx) ** 2 + (grid[None, :, None] - cy) ** 2)
    cover = (radius + 0.5 - dist).clamp(0, 1)
    return torch.round((LEVELS - 1) * intensity * cover).unsqueeze(1)


def sample_factors(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` independent uniform draws of every factor's index: int64 (n, 4)."""
    return torch.stack([torch.randint(len(v), (n,), generator=generator) for v in FACTORS.values()], 1)


def load_blobs() -> Splits:
    """The fixed blobs splits with their factor indices."""
    spec = DataSpec("blobs", (1, SIZE, SIZE), LEVELS, DESCRIPTION)
    parts, factors = {}, {}
    for split, n in SPLIT_SIZES.items():
        g = torch.Generator().manual_seed(zlib.crc32(f"blobs/{split}".encode()))
        factors[split] = sample_factors(n, g)
        parts[split] = render(factors[split])
    return Splits(spec, **parts, factors=factors, factor_names=tuple(FACTORS))
