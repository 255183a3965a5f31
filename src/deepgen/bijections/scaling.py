"""Learned diagonal scaling (NICE's last layer, Dinh, Krueger & Bengio 2014).

    z = x * exp(s),     log|det dz/dx| = sum_i s_i

with one free log-scale s_i per dimension (no conditioner: the same for every example).
It lets an otherwise volume-preserving flow (additive couplings) change volume,
and weights the dimensions: a large s_i marks a dimension the model finds unimportant.
s starts at 0 (the identity).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections.base import Bijection


class DiagonalScaling(Bijection):
    """z = x * exp(s) with a learned log-scale per element of ``shape`` (the per-example shape)."""

    def __init__(self, shape):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def _ld(self, x):
        return self.log_scale.sum().expand(x.shape[0])

    def forward(self, x, context=None):
        return x * torch.exp(self.log_scale), self._ld(x)

    def inverse(self, z, context=None):
        return z * torch.exp(-self.log_scale), -self._ld(z)
