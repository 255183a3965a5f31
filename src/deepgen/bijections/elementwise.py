"""Elementwise bijections: logit preprocessing and a fixed affine map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepgen.bijections.base import Bijection
from deepgen.ops import sum_except_batch


class Logit(Bijection):
    """Logit preprocessing of data in (0, 1) (RealNVP, Dinh et al. 2017).

        p = alpha + (1 - 2 alpha) y,     s = log p - log(1 - p)
        log|ds/dy| = sum_i [ log(1 - 2 alpha) - log p_i - log(1 - p_i) ]

    ``alpha`` keeps p away from 0 and 1 so the logit stays finite.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"logit alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, y, context=None):
        p = self.alpha + (1 - 2 * self.alpha) * y
        s = torch.log(p) - torch.log1p(-p)
        ld = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return s, sum_except_batch(ld)

    def inverse(self, s, context=None):
        p = torch.sigmoid(s)
        y = (p - self.alpha) / (1 - 2 * self.alpha)
        # log|dy/ds| = log p + log(1 - p) - log(1 - 2 alpha), with log p = -softplus(-s)
        ld = -F.softplus(-s) - F.softplus(s) - math.log(1 - 2 * self.alpha)
        return y, sum_except_batch(ld)


class Affine(Bijection):
    """Fixed elementwise affine map y = (x - shift) / scale; log|det| = -sum log scale."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def _ld(self, x):
        return (-torch.log(self.scale)).expand_as(x[0]).sum().expand(x.shape[0])

    def forward(self, x, context=None):
        return (x - self.shift) / self.scale, self._ld(x)

    def inverse(self, y, context=None):
        return y * self.scale + self.shift, -self._ld(y)
