"""Base densities.  Every ``log_prob`` sums over the event dimensions and keeps
its normalizing constant, so it is a true log-density in nats."""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.bijections.base import sum_except_batch

LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    """N(0, I) over an event of shape ``shape``:

        log p(z) = -1/2 sum_i z_i^2 - D/2 log(2 pi).

    ``sample(n, temperature=T)`` draws from N(0, T^2 I).
    """

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        d = z[0].numel()
        return -0.5 * sum_except_batch(z**2) - 0.5 * d * LOG_2PI

    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        m = self._device_marker
        return temperature * torch.randn(n, *self.shape, device=m.device, dtype=m.dtype)
