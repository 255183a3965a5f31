"""PixelCNN networks (van den Oord, Kalchbrenner & Kavukcuoglu 2016): masked convolutions and the
residual stack built from them.

A masked convolution multiplies its kernel by a fixed binary mask M before convolving,

    y = conv2d(x, W * M) + b,

so the output at pixel (i, j) sees only the pixels above row i and the pixels left of column j in
row i (a raster scan), and, at the centre (i, j) itself, only some channels.  For images with C
channels (e.g. R, G, B), the feature maps of every layer are split into C contiguous groups,
group(f) = floor(f C / F) for feature f of F; at the centre tap

    mask "A" (first layer):   output group c sees input group c' iff c' <  c
    mask "B" (later layers):  output group c sees input group c' iff c' <= c

so the feature maps of group c depend only on the image channels < c of the current pixel and on
every channel of earlier pixels: the ordering is raster with the channels inside a pixel (R, then G
given R, then B given R and G).  With C = 1, mask A drops the centre tap and mask B keeps it.
The mask is applied by multiplication in ``forward`` (masked weights get zero gradient).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepgen.errors import ConfigError


def channel_groups(features: int, groups: int) -> torch.Tensor:
    """(features,) long: group(f) = floor(f * groups / features), contiguous blocks of (nearly) equal size."""
    return torch.arange(features) * groups // features


def conv_mask(in_channels: int, out_channels: int, kernel_size: int, mask_type: str,
              data_channels: int = 1) -> torch.Tensor:
    """(out, in, k, k) bool mask of a PixelCNN convolution (see the module docstring)."""
    if mask_type not in ("A", "B"):
        raise ConfigError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"a masked convolution needs an odd kernel size, got {kernel_size}")
    k, mid = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k, dtype=torch.bool)
    mask[:, :, :mid, :] = True  # every row above
    mask[:, :, mid, :mid] = True  # left of the centre in the current row
    g_out = channel_groups(out_channels, data_channels)[:, None]
    g_in = channel_groups(in_channels, data_channels)[None, :]
    mask[:, :, mid, mid] = g_in < g_out if mask_type == "A" else g_in <= g_out
    return mask


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` ('same' padding, odd kernel) whose kernel is multiplied by a PixelCNN mask "A" or "B"
    for images of ``data_channels`` channels (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str = "B",
                 data_channels: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.mask_type, self.data_channels = mask_type, data_channels
        self.register_buffer("mask", conv_mask(in_channels, out_channels, kernel_size, mask_type, data_channels),
                             persistent=False)  # derived from the sizes: rebuilt, never saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, data_channels={self.data_channels}"


class MaskedResidualBlock(nn.Module):
    """The PixelCNN residual block (van den Oord et al. 2016, figure 5), all convolutions mask B:

        h <- h + conv1x1(relu(drop(conv_kxk(relu(conv1x1(relu(h) + b(c)))))))      (2F -> F -> F -> 2F)

    with b(c) a learned bias per feature map from the context c (class-conditional PixelCNN)."""

    def __init__(self, channels: int, kernel_size: int, data_channels: int, dropout: float = 0.0,
                 context_features: int = 0):
        super().__init__()
        mid = channels // 2
        self.reduce = MaskedConv2d(channels, mid, 1, "B", data_channels)
        self.conv = MaskedConv2d(mid, mid, kernel_size, "B", data_channels)
        self.expand = MaskedConv2d(mid, channels, 1, "B", data_channels)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.context = nn.Linear(context_features, channels, bias=False) if context_features else None

    def forward(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        a = F.relu(h)
        if self.context is not None:
            a = a + self.context(context)[:, :, None, None]
        a = F.relu(self.conv(F.relu(self.reduce(a))))
        return h + self.expand(self.drop(a))


class PixelCNNNet(nn.Module):
    """The PixelCNN stack: a ``kernel`` x ``kernel`` mask-A convolution (C -> F), ``blocks`` residual
    blocks (mask B, ``block_kernel`` in the middle), then ReLU -> 1x1 (F -> F) -> ReLU -> 1x1 (F -> C K),
    all mask B.  Output channel c K + k is number k of image channel c (the channel groups line up), so
    the result (B, C K, H, W) reads as (B, C, K, H, W).  ``context_features``: a learned per-feature bias
    from the context after the first layer and in every block.

    ``in_channels`` (default C): input channels of the first (mask A) convolution, a multiple of C split
    into C contiguous groups, group c encoding image channel c, e.g. a categorical channel of K values
    fed as K one-hot channels (``in_channels = C K``, laid out channel-major); a mask-A convolution over
    a one-hot input is a learned embedding of every value at every kernel tap."""

    def __init__(self, data_channels: int, out_per_channel: int, channels: int = 64, blocks: int = 4,
                 kernel: int = 7, block_kernel: int = 3, dropout: float = 0.0, context_features: int = 0,
                 in_channels: int | None = None):
        super().__init__()
        c = data_channels
        if channels // 2 < c:
            raise ConfigError(f"pixelcnn: channels={channels} is too few for {c} image channels (the residual "
                              f"blocks' {channels // 2} middle feature maps are split into {c} groups); "
                              f"use channels >= {2 * c}")
        in_channels = c if in_channels is None else int(in_channels)
        if in_channels < c or in_channels % c:
            raise ConfigError(f"pixelcnn: in_channels={in_channels} must be a positive multiple of the {c} "
                              "image channels (one contiguous group of inputs per channel)")
        self.data_channels, self.out_per_channel, self.in_channels = c, out_per_channel, in_channels
        self.first = MaskedConv2d(in_channels, channels, kernel, "A", c)
        self.first_context = nn.Linear(context_features, channels, bias=False) if context_features else None
        self.blocks = nn.ModuleList(MaskedResidualBlock(channels, block_kernel, c, dropout, context_features)
                                    for _ in range(blocks))
        self.head = MaskedConv2d(channels, channels, 1, "B", c)
        self.out = MaskedConv2d(channels, c * out_per_channel, 1, "B", c)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, C, K, H, W): the K numbers of every conditional of every pixel and
        channel."""
        h = self.first(x)
        if self.first_context is not None:
            h = h + self.first_context(context)[:, :, None, None]
        for block in self.blocks:
            h = block(h, context)
        out = self.out(F.relu(self.head(F.relu(h))))
        b, _, hh, ww = out.shape
        return out.view(b, self.data_channels, self.out_per_channel, hh, ww)
