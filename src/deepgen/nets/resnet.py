"""Small convolutional ResNet used as an image conditioner."""

from __future__ import annotations

import torch
from torch import nn

from deepgen.nets.conv import context_channels


class ResidualBlock(nn.Module):
    """h + conv3x3(relu(conv3x3(relu(h))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, h):
        return h + self.net(h)


class ConvResNet(nn.Module):
    """(B, C_in, H, W) [, context (B, c) broadcast as channels] -> (B, C_out, H, W).

    conv3x3 -> ``blocks`` residual blocks -> relu -> conv3x3 (zero-initialised if ``zero_init``).
    """

    def __init__(self, in_channels, out_channels, hidden=64, blocks=2, context_features=0, zero_init=False):
        super().__init__()
        self.inp = nn.Conv2d(in_channels + context_features, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden) for _ in range(blocks)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, out_channels, 3, padding=1))
        if zero_init:
            nn.init.zeros_(self.out[1].weight)
            nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.blocks(self.inp(context_channels(x, context))))
