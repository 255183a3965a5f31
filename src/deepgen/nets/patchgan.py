"""PatchGAN discriminator (Isola et al. 2017): one real/fake score per image patch.

``downsamples`` = n stride-2 4x4 convolutions (channels ``channels``, doubled each time
up to 8 ``channels``), then a 3x3 conv and a 3x3 conv to one score per position,
LeakyReLU(0.2) between layers and no normalisation (D sees all-real and all-fake batches
separately; batch statistics would let it tell them apart by the batch).  The output is
a grid of (B, 1, H_n, W_n) scores, H_n = floor(H / 2^n), each a function of one square
patch of the input whose side, the receptive field, is

    r_0 = 5 (two 3x3 convs),   r_n = 2 r_{n-1} + 2   =>   r_n = 7 * 2^n - 2  (5, 12, 26, 54, 110, ...)

(pix2pix's 70x70 PatchGAN on 256x256 images is r = 70 with 3 strided and two 4x4 convs;
here the patch is chosen for the image: :func:`patch_downsamples`).  Averaging a loss
over the grid models the image as a Markov random field of patches: D judges local
texture and sharpness, and the L1 term of pix2pix the low frequencies.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError


def receptive_field(downsamples: int) -> int:
    """Side in pixels of the input patch each score of a PatchGAN with ``downsamples`` strided convs sees."""
    return 7 * 2**downsamples - 2


def patch_downsamples(patch: int, height: int, width: int, owner: str = "patchgan") -> int:
    """The fewest strided convs n whose receptive field 7 * 2^n - 2 is at least ``patch`` pixels;
    ConfigError if the image is too small to halve n times (min(H, W) < 2^n)."""
    n = 0
    while receptive_field(n) < patch:
        n += 1
    if min(height, width) < 2**n:
        raise ConfigError(f"{owner}: patch={patch} needs {n} halvings (receptive field {receptive_field(n)} "
                          f"pixels) but the image is {height}x{width}; choose patch <= "
                          f"{receptive_field(max(0, min(height, width).bit_length() - 1))}")
    return n


class PatchGAN(nn.Module):
    """(B, ``in_channels``, H, W) -> (B, 1, H / 2^n, W / 2^n) patch scores (logits), n = ``downsamples``."""

    def __init__(self, in_channels: int, channels: int = 64, downsamples: int = 1):
        super().__init__()
        self.downsamples = downsamples
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        layers: list[nn.Module] = []
        width = in_channels
        for i in range(downsamples):
            out = min(channels * 2**i, 8 * channels)
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), act()]
            width = out
        out = min(channels * 2**downsamples, 8 * channels)
        layers += [nn.Conv2d(width, out, 3, padding=1), act(), nn.Conv2d(out, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.downsamples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
