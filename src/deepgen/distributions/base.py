"""Base densities and Gaussian formulas.  Every ``log_prob`` sums over the event
dimensions and keeps its normalizing constant, so it is a true log-density in nats."""

from __future__ import annotations

import torch
from torch import nn

from deepgen.ops import LOG_2PI, sum_except_batch


def gaussian_log_prob(z: torch.Tensor, mu, log_std) -> torch.Tensor:
    """log N(z; mu, diag sigma^2) summed over the last dimension:

        sum_j -1/2 ((z_j - mu_j) / sigma_j)^2 - log sigma_j - 1/2 log(2 pi)
    """
    eps = (z - mu) * torch.exp(-log_std)
    return (-0.5 * eps**2 - log_std - 0.5 * LOG_2PI).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: sum_j -z_j^2 / 2 - 1/2 log(2 pi)."""
    return (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)


def gaussian_kl(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) = sum_j 1/2 (mu_j^2 + sigma_j^2 - 1) - log sigma_j, per row."""
    return (0.5 * (mu**2 + torch.exp(2 * log_std) - 1) - log_std).sum(-1)


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
