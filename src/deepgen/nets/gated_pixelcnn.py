"""The gated PixelCNN network (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016,
"Conditional Image Generation with PixelCNN Decoders"): two stacks of causal convolutions whose
receptive field together is every earlier pixel of the raster scan (no blind spot), gated units
and a class context.

Layer l, with v (vertical stack) and h (horizontal stack) maps of ``channels`` = F features:

    v' = V_l * v                  (k//2+1) x k conv padded so row i sees rows i-k//2 .. i    (2F)
    h' = H_l * h + L_l shift(v')  1 x (k//2+1) conv on columns j-k//2 .. j of row i, plus a 1x1
                                  link from v' shifted down one row (rows < i only)           (2F)
    v <- gate(v' + A_l c + M_l * m)
    h <- h + R_l dropout(gate(h' + B_l c + N_l * m))     (no residual at the first layer, whose input is x)
    s <- s + S_l gate(h' + B_l c + N_l * m)              (skip connections)
    gate([a, b]) = tanh(a) * sigmoid(b)

with c the context (a one-hot label; its linear maps A_l c, B_l c are biases constant over the image)
and m an optional spatial conditioning map (B, F_m, H, W) (``cond_channels`` = F_m > 0), entering
through 1x1 convolutions M_l, N_l: the location-dependent conditioning of the conditional PixelCNN
paper, e.g. feature maps decoded from a latent z (PixelVAE).  m must not depend on x (it is added at
the pixel's own location, to every channel group); with ``cond_channels=0`` (the default) the layers
hold no such maps and behave as before.
The output is relu -> 1x1 -> relu -> 1x1 of the skip sum, C K numbers per pixel.

Causality.  The vertical stack at row i sees the input rows <= i, so after the one-row shift the
link brings rows < i: all of them, every column, with enough layers.  The horizontal stack sees
the current row left of the pixel; the current pixel itself is handled by channel groups: feature f
of n belongs to group g(f) = floor(f C / n) (the data's channel c is group c), and at the current
pixel a tap from group a to group b is kept when a < b in the first layer (mask A: the pixel's own
channel is never seen) and a <= b after it (mask B).  Output channel c (group c) then sees the
channels < c of its own pixel and everything in earlier pixels: the raster order with channels
inside a pixel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def channel_groups(n: int, groups: int) -> torch.Tensor:
    """(n,) group of each of n features split into ``groups`` contiguous groups: floor(f groups / n)."""
    return torch.arange(n) * groups // n


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for x = [a, b] split along the channels."""
    a, b = x.chunk(2, 1)
    return torch.tanh(a) * torch.sigmoid(b)


class RowConv(nn.Conv2d):
    """A 1 x w convolution over columns j-w+1 .. j of the same row, whose tap on the current pixel (the
    last column) keeps input group a -> output group b only when a < b (``strict``, mask A) or a <= b
    (mask B).  w = 1 is a channel-masked 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, width: int, in_groups: torch.Tensor,
                 out_groups: torch.Tensor, strict: bool, bias: bool = True):
        super().__init__(in_channels, out_channels, (1, width), bias=bias)
        mask = torch.ones(out_channels, in_channels, 1, width)
        keep = out_groups[:, None] > in_groups[None, :] if strict else out_groups[:, None] >= in_groups[None, :]
        mask[:, :, 0, -1] = keep.float()
        self.register_buffer("mask", mask, persistent=False)  # derived from the sizes: not saved
        self.width = width

    def forward(self, x):
        return F.conv2d(F.pad(x, (self.width - 1, 0, 0, 0)), self.weight * self.mask, self.bias)


class ColumnConv(nn.Conv2d):
    """A (k//2+1) x k convolution whose output at row i sees input rows i-k//2 .. i, columns j-k//2 .. j+k//2."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__(in_channels, out_channels, (kernel // 2 + 1, kernel))
        self.half = kernel // 2

    def forward(self, x):
        return super().forward(F.pad(x, (self.half, self.half, self.half, 0)))


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Row i gets row i-1 (row 0 gets zeros)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class GatedLayer(nn.Module):
    """One layer of both stacks (see the module docstring)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, image_channels: int, first: bool,
                 context_features: int, dropout: float, cond_channels: int = 0):
        super().__init__()
        groups_in = torch.arange(in_channels) if first else channel_groups(in_channels, image_channels)
        groups = channel_groups(channels, image_channels)
        groups2 = torch.cat([groups, groups])  # the tanh and sigmoid halves of a gate share their groups
        self.first = first
        self.vertical = ColumnConv(in_channels, 2 * channels, kernel)
        self.horizontal = RowConv(in_channels, 2 * channels, kernel // 2 + 1, groups_in, groups2, strict=first)
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)  # rows above: every group may see them
        self.residual = RowConv(channels, channels, 1, groups, groups, strict=False)
        self.skip = RowConv(channels, channels, 1, groups, groups, strict=False)
        self.context_v = nn.Linear(context_features, 2 * channels, bias=False) if context_features else None
        self.context_h = nn.Linear(context_features, 2 * channels, bias=False) if context_features else None
        self.dropout = nn.Dropout(dropout)
        if cond_channels:  # only then: an unconditioned net keeps its parameter names
            self.cond_v = nn.Conv2d(cond_channels, 2 * channels, 1, bias=False)
            self.cond_h = nn.Conv2d(cond_channels, 2 * channels, 1, bias=False)

    def forward(self, v, h, context=None, cond=None):
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.link(down_shift(v_pre))
        if context is not None:
            v_pre = v_pre + self.context_v(context)[:, :, None, None]
            h_pre = h_pre + self.context_h(context)[:, :, None, None]
        if cond is not None:
            v_pre = v_pre + self.cond_v(cond)
            h_pre = h_pre + self.cond_h(cond)
        v_out = gate(v_pre)
        g = gate(h_pre)
        update = self.residual(self.dropout(g))
        h_out = update if self.first else h + update
        return v_out, h_out, self.skip(g)


class GatedPixelCNNNet(nn.Module):
    """(B, C, H, W) [+ context (B, c)] [+ cond map (B, F_m, H, W)] -> (B, C * K, H, W): the K parameters of
    p(x_{c,i,j} | earlier, c, m) at channel index c K + k, causal in the raster order with channels inside a
    pixel.  ``cond_channels`` F_m > 0 adds the spatial conditioning map m (see the module docstring); the
    forward pass then needs ``cond`` with as many rows as x (crop it with x when running on the first rows)."""

    def __init__(self, image_channels: int, params_per_dim: int, channels: int = 64, layers: int = 6,
                 kernel: int = 3, context_features: int = 0, dropout: float = 0.0, cond_channels: int = 0):
        super().__init__()
        if channels < image_channels:
            raise ValueError(f"channels ({channels}) must be at least the image's channels ({image_channels})")
        if kernel < 2:
            raise ValueError(f"kernel must be >= 2, got {kernel}")
        c, k = image_channels, params_per_dim
        self.image_channels, self.params_per_dim = c, k
        self.layers = nn.ModuleList(
            GatedLayer(c if i == 0 else channels, channels, kernel, c, i == 0, context_features, dropout,
                       cond_channels)
            for i in range(layers))
        self.cond_channels = cond_channels
        groups = channel_groups(channels, c)
        out_groups = torch.arange(c).repeat_interleave(k)
        self.head = RowConv(channels, channels, 1, groups, groups, strict=False)
        self.out = RowConv(channels, c * k, 1, groups, out_groups, strict=False)

    def forward(self, x, context=None, cond=None):
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f"the net was built with cond_channels={self.cond_channels}: "
                             + ("pass a conditioning map" if cond is None else "it takes no conditioning map"))
        v = h = x
        skip = 0
        for layer in self.layers:
            v, h, s = layer(v, h, context, cond)
            skip = skip + s
        return self.out(F.relu(self.head(F.relu(skip))))
