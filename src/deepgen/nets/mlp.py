"""Multi-layer perceptrons with optional context input and zero-initialised output."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class MLP(nn.Module):
    """x (B, in) [, context (B, c)] -> (B, out); ``depth`` hidden layers of width ``hidden``.

    ``zero_init`` zeroes the last layer, so the network starts as the zero function
    (used by flow conditioners to start every flow at the identity).
    """

    def __init__(self, in_features, out_features, hidden=128, depth=2, context_features=0,
                 activation="relu", zero_init=False):
        super().__init__()
        layers, width = [], in_features + context_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, out_features)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def relu_layers(self) -> list[nn.Linear] | None:
        """The ``nn.Linear`` layers in order (hidden ones, then the output) when the hidden activation is ReLU
        (what a fused implementation of this MLP needs to know), else None."""
        if not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in self.body):
            return None
        return [m for m in self.body if isinstance(m, nn.Linear)] + [self.out]

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer (B, hidden) (the input itself when depth is 0)."""
        if context is not None:
            x = torch.cat([x, context], -1)
        return self.body(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.features(x, context))


class FlatMLP(nn.Module):
    """An :class:`MLP` on flattened inputs whose output is reshaped to ``out_shape``.

    ``leaky_slope`` > 0 uses LeakyReLU(leaky_slope) activations (ReLU otherwise).
    """

    def __init__(self, in_features, out_shape, hidden, depth, context_features, leaky_slope=0.0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.net = MLP(in_features, math.prod(self.out_shape), hidden, depth, context_features,
                       activation="leaky_relu" if leaky_slope > 0 else "relu")
        for m in self.net.modules():
            if isinstance(m, nn.LeakyReLU):  # MLP builds LeakyReLU() with torch's default slope 0.01
                m.negative_slope = leaky_slope

    def features(self, x, context=None):
        """The MLP's last hidden layer on the flattened input: (B, hidden)."""
        return self.net.features(x.flatten(1), context)

    def forward(self, x, context=None):
        return self.net(x.flatten(1), context).view(len(x), *self.out_shape)
