"""Priors p(z) on the codes of an adversarial autoencoder: a standard Gaussian or a Gaussian mixture.

    gaussian   p(z) = N(z; 0, I_d)
    mixture    p(z) = 1/K sum_k N(z; m_k, s^2 I_d),   m_k = r (cos 2 pi k / K, sin 2 pi k / K, 0, ..., 0)

The mixture puts K equally weighted isotropic components (std s) on a circle of radius r in the
first two code coordinates, the other coordinates centred at 0: in 2-D codes, the 10-component
"petal" prior of Makhzani et al. (2016, fig. 4), here with round components.  Its moments, per
coordinate: mean (1/K) sum_k m_k (0 for K >= 2) and variance s^2 + (1/K) sum_k m_k^2 - mean^2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.errors import ConfigError

PRIORS = ("gaussian", "mixture")


class CodePrior(nn.Module):
    """p(z) over codes of size ``latent``: ``kind`` "gaussian" (N(0, I)) or "mixture" (see the module doc)."""

    def __init__(self, latent: int, kind: str = "gaussian", components: int = 10, radius: float = 4.0,
                 std: float = 0.5, owner: str = "aae"):
        super().__init__()
        if kind not in PRIORS:
            raise ConfigError(f"{owner}: prior must be one of {', '.join(PRIORS)}, got {kind!r}")
        if kind == "mixture" and latent < 2:
            raise ConfigError(f"{owner}: the mixture prior places its components on a circle in the first two "
                              f"code coordinates; it needs latent >= 2, got {latent}")
        self.kind, self.latent = kind, latent
        if kind == "gaussian":
            means, s = torch.zeros(1, latent), 1.0
        else:
            angles = 2 * math.pi * torch.arange(components, dtype=torch.float64) / components
            means = torch.zeros(components, latent, dtype=torch.float64)
            means[:, 0], means[:, 1] = radius * torch.cos(angles), radius * torch.sin(angles)
            means, s = means.float(), float(std)
        self.std = s
        self.register_buffer("means", means, persistent=False)  # (K, latent): rebuilt from the parameters

    @property
    def components(self) -> int:
        return len(self.means)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               return_components: bool = False):
        """n draws z = m_k + T s eps, k uniform, eps ~ N(0, I) (T: ``temperature``), shape (n, latent);
        with ``return_components`` also the component index k of each draw, (n,)."""
        m = self.means
        k = torch.randint(self.components, (n,), device=m.device, generator=generator)
        eps = torch.randn(n, self.latent, device=m.device, dtype=m.dtype, generator=generator)
        z = m[k] + temperature * self.std * eps
        return (z, k) if return_components else z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row: logsumexp_k [-log K + log N(z; m_k, s^2 I)]."""
        m = self.means.to(z.dtype)
        d = z.shape[-1]
        sq = ((z.unsqueeze(-2) - m) ** 2).sum(-1)  # (..., K)
        log_n = -0.5 * sq / self.std ** 2 - d * math.log(self.std) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(log_n, -1) - math.log(self.components)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) per coordinate of p(z), each (latent,)."""
        m = self.means
        mean = m.mean(0)
        var = self.std ** 2 + (m ** 2).mean(0) - mean ** 2
        return mean.clone(), var.clamp(min=0).sqrt()
