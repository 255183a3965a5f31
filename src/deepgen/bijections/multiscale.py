"""Reshaping bijections for multi-scale image flows (RealNVP, Glow).

``Squeeze`` trades space for channels: (C, H, W) -> (4C, H/2, W/2), log|det| = 0.
``FactorOut`` implements the multi-scale architecture: half of the channels are
"factored out" (sent to the base density as they are) and the inner bijection
acts on the other half.  Because the base density is a product over dimensions,
keeping the factored-out half in place is the same model and keeps shapes fixed.
"""

from __future__ import annotations

import torch

from deepgen.bijections.base import Bijection


class Squeeze(Bijection):
    """Space-to-depth by 2x2 blocks; volume preserving."""

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, c * 4, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y, context=None):
        b, c, h, w = y.shape
        y = y.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(b, c // 4, h * 2, w * 2), y.new_zeros(b)


class FactorOut(Bijection):
    """Identity on the first ``keep`` channels, ``inner`` on the rest."""

    def __init__(self, keep: int, inner: Bijection):
        super().__init__()
        self.keep = keep
        self.inner = inner

    def forward(self, x, context=None):
        out, ld = self.inner(x[:, self.keep :], context)
        return torch.cat([x[:, : self.keep], out], 1), ld

    def inverse(self, y, context=None):
        out, ld = self.inner.inverse(y[:, self.keep :], context)
        return torch.cat([y[:, : self.keep], out], 1), ld


class Flatten(Bijection):
    """(B, *shape) <-> (B, D): lets a vector flow (MAF, NICE, splines) model images; log|det| = 0."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x, context=None):
        return x.reshape(len(x), -1), x.new_zeros(len(x))

    def inverse(self, y, context=None):
        return y.reshape(len(y), *self.shape), y.new_zeros(len(y))
