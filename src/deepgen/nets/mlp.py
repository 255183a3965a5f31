"""Multi-layer perceptron with optional context input and zero-initialised output."""

from __future__ import annotations

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

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:
            x = torch.cat([x, context], -1)
        return self.out(self.body(x))
