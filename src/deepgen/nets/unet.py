"""U-Net generator of pix2pix (Isola et al. 2017; Ronneberger et al. 2015), sized for the image.

Encoder: ``levels`` = n stride-2 4x4 convolutions e_1 .. e_n, each halving H and W
(floor(H / 2) for odd sides) and doubling the channels from ``channels`` up to
``max_channels``; by default the encoder halves until the smaller side is 1, so an
8x8 image has n = 3 (8 -> 4 -> 2 -> 1), a 32x48 one n = 5 (-> 1x1), a 256x256 one n = 8,
as in the paper.  Decoder: n transposed 4x4 convolutions, each doubling the size back to
exactly that of the matching encoder map (``output_size``, so odd sides work), with a skip
connection at every scale:

    d_n = e_n,   d_{i-1} = up_i([e_i, d_i])   (i < n: concatenated channels),   out = up_1([e_1, d_1]).

Layers as in pix2pix: down = LeakyReLU(0.2), conv, norm (no activation before the first,
no norm on the first and on the innermost); up = ReLU, transposed conv, norm, and dropout
p = ``dropout`` in the ``dropout_blocks`` innermost up blocks (never the outermost).  The
dropout is the generator's only noise (pix2pix found that input noise z was ignored):
active in training mode, off in eval mode.  The output has no activation (the model maps
it to its data scale, e.g. a sigmoid for discrete levels).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError

NORMS = ("batch", "instance", "none")


def image_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation ``kind`` of a conv layer: BatchNorm2d, InstanceNorm2d (affine) or none (identity)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r} ({', '.join(NORMS)})")


def unet_levels(height: int, width: int, levels: int | None = None, owner: str = "unet") -> int:
    """The number of halvings n: by default until the smaller side is 1 (floor(log2(min(H, W))));
    a given ``levels`` must leave at least one pixel (min(H, W) >= 2^levels), else ConfigError."""
    side = min(height, width)
    if side < 2:
        raise ConfigError(f"{owner}: a U-Net needs images of at least 2x2 pixels, got {height}x{width}")
    most = side.bit_length() - 1  # floor(log2(side))
    if levels is None:
        return most
    if levels < 1 or levels > most:
        raise ConfigError(f"{owner}: levels={levels} halves a {height}x{width} image {levels} times; "
                          f"choose 1..{most} (or leave it unset: {most}, down to one pixel)")
    return levels


class UNet(nn.Module):
    """(B, ``in_channels``, H, W) -> (B, ``out_channels``, H, W) with skip connections at every scale.

    ``size`` = (H, W) fixes the number of levels (see :func:`unet_levels`); the net accepts only
    inputs of that size.  Channels at level i (1-based): min(channels 2^(i-1), max_channels).
    """

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int], channels: int = 64,
                 max_channels: int | None = None, levels: int | None = None, norm: str = "batch",
                 dropout: float = 0.5, dropout_blocks: int = 3):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        n = unet_levels(*self.size, levels)
        self.levels = n
        top = max_channels or 8 * channels
        ch = [in_channels] + [min(channels * 2**i, top) for i in range(n)]
        self.down = nn.ModuleList()
        for i in range(1, n + 1):
            layers = [] if i == 1 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(ch[i - 1], ch[i], 4, stride=2, padding=1))
            if 1 < i < n:
                layers.append(image_norm(norm, ch[i]))
            self.down.append(nn.Sequential(*layers))
        # up[i - 1] maps level i's decoder input to level i - 1's size
        self.dropout_levels = set(range(n, n - min(dropout_blocks, n - 1), -1)) if dropout > 0 else set()
        self.up = nn.ModuleList()
        for i in range(1, n + 1):
            inp = ch[i] if i == n else 2 * ch[i]
            out = out_channels if i == 1 else ch[i - 1]
            self.up.append(nn.ModuleDict({
                "act": nn.ReLU(),
                "conv": nn.ConvTranspose2d(inp, out, 4, stride=2, padding=1),
                "post": nn.Sequential(*([] if i == 1 else [image_norm(norm, out)])
                                      + ([nn.Dropout(dropout)] if i in self.dropout_levels else [])),
            }))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"UNet built for {self.size[0]}x{self.size[1]} images, got {tuple(x.shape[-2:])}")
        skips = [x]
        h = x
        for down in self.down:
            h = down(h)
            skips.append(h)
        # skips[i] = e_i (skips[0] = the input, whose size the outermost up block restores)
        for i in range(self.levels, 0, -1):
            if i < self.levels:
                h = torch.cat([skips[i], h], 1)
            up = self.up[i - 1]
            h = up["post"](up["conv"](up["act"](h), output_size=skips[i - 1].shape[-2:]))
        return h
