"""Activation normalisation (Glow, Kingma & Dhariwal 2018): a per-channel affine map
with data-dependent initialisation.

    z = (x - loc_c) * exp(log_scale_c),      log|det dz/dx| = (H W) sum_c log_scale_c

(channels along dim 1; H W is the number of positions per channel, 1 for vectors).

Initialisation.  On the first forward call in training mode with a batch of more than
one example, ``loc`` and ``log_scale`` are set so that this batch leaves the layer with
zero mean and unit variance per channel:

    loc_c = mean_c,     log_scale_c = -log(std_c)         (std_c <= min_std: log_scale_c = 0)

A channel with (near) zero variance, e.g. a pixel that is always black, is only centred
(scale 1): no NaN, no inf.  The ``initialized`` flag is a persistent buffer, so it is
saved with the weights and a loaded model never re-initialises.  When torch.distributed
is initialised the batch sums (count, sum, sum of squares) are all-reduced first, so
every process computes the same statistics of the global batch.

A layer used before initialisation (sampling or scoring an untrained model, a forward
pass in eval mode, or the one-example dummy pass a flow runs when it is built) is the
identity and does not initialise.  :meth:`ActNorm.initialize` does it explicitly.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from deepgen.bijections.base import Bijection


class ActNorm(Bijection):
    """Per-channel affine normalisation, initialised from the first training batch."""

    def __init__(self, num_features: int, min_std: float = 1e-6):
        super().__init__()
        self.num_features = int(num_features)
        self.min_std = float(min_std)
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))

    def _view(self, t, x):
        return t.reshape(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set loc and log_scale from batch ``x`` (all-reduced across processes under DDP); marks the layer initialised."""
        dims = [0] + list(range(2, x.dim()))
        xd = x.detach().to(torch.float64)
        stats = torch.stack([
            torch.full((self.num_features,), float(xd.numel() // self.num_features), dtype=torch.float64,
                       device=x.device),
            xd.sum(dims), xd.square().sum(dims),
        ])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        n, s1, s2 = stats
        mean = s1 / n
        var = (s2 / n - mean.square()).clamp_min(0.0)
        std = var.sqrt()
        log_scale = torch.where(std > self.min_std, -torch.log(std.clamp_min(self.min_std)), torch.zeros_like(std))
        self.loc.copy_(mean.to(self.loc.dtype))
        self.log_scale.copy_(log_scale.to(self.log_scale.dtype))
        self.initialized.fill_(1)

    def _logdet(self, x):
        positions = x[0, 0].numel()
        return (positions * self.log_scale.sum()).expand(x.shape[0])

    def forward(self, x, context=None):
        if not self.initialized and self.training and x.shape[0] > 1:
            self.initialize(x)
        z = (x - self._view(self.loc, x)) * torch.exp(self._view(self.log_scale, x))
        return z, self._logdet(x)

    def inverse(self, z, context=None):
        x = z * torch.exp(-self._view(self.log_scale, z)) + self._view(self.loc, z)
        return x, -self._logdet(z)
