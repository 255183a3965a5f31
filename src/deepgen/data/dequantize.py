"""Uniform dequantization of discrete data for continuous-density models.

Data k in {0..L-1}^D are mapped to y = (k + u) / L in [0, 1)^D with u ~ U[0,1)^D.
For any density p_Y on [0,1)^D, Jensen's inequality gives

    log P(k) >= E_u[ log p_Y((k + u) / L) ] - D log L,

so ``log p_Y(y) - D log L`` with one draw of u is an unbiased estimate of a lower
bound on the discrete log-likelihood (Theis et al. 2016).  Its negative, divided
by D ln 2, is the bits/dim figure every flow paper reports.
"""

from __future__ import annotations

import math

import torch


def dequantize(k: torch.Tensor, levels: int) -> tuple[torch.Tensor, float]:
    """y = (k + u) / L and the per-example log-density correction -D log L."""
    u = torch.rand_like(k)
    d = k[0].numel()
    return (k + u) / levels, -d * math.log(levels)


def quantize(y: torch.Tensor, levels: int) -> torch.Tensor:
    """Inverse map for samples: k = clamp(floor(y L), 0, L - 1)."""
    return torch.floor(y * levels).clamp_(0, levels - 1)
