"""A learned conditional Gaussian prior written as a bijection (Glow's split prior).

At a multi-scale split the factored-out channels z_out (the first ``split`` channels)
get the prior p(z_out | h) = N(mu(h), sigma(h)^2) given the channels h that go on
(the rest).  That is the same model as the conditional affine bijection

    mu, log sigma = NN(h, context),           log sigma <- B tanh(log sigma / B)
    z' = (z_out - mu(h)) / sigma(h),          log|det dz'/dz_out| = -sum log sigma(h)

followed by the flow's N(0, I) base on z' (h passes through unchanged; its Jacobian
block is the identity, so the determinant is that of the z_out block).  Sampling
z' ~ N(0, T^2 I) gives z_out = mu(h) + sigma(h) T eps: temperature scales the prior's
noise, and T = 0 gives the prior's mode mu(h).

With ``split`` equal to all channels there is no h: the conditioner sees an empty
(B, 0, ...) tensor and the context only, which gives Glow's learned top prior
(``learn_top``).  The conditioner's last layer is zero-initialised in Glow, so a fresh
prior is N(0, I) (the identity map).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections.base import Bijection
from deepgen.ops import sum_except_batch


class ConditionalPrior(Bijection):
    """z'_out = (z_out - mu(h)) exp(-log sigma(h)) on the first ``split`` channels; ``conditioner``
    maps (h, context) to 2 * split channels (mu, log sigma) along dim 1."""

    def __init__(self, split: int, conditioner: nn.Module, scale_bound: float = 3.0):
        super().__init__()
        self.split = int(split)
        self.conditioner = conditioner
        self.scale_bound = float(scale_bound)

    def _params(self, h, context):
        mu, log_sigma = self.conditioner(h, context).chunk(2, dim=1)
        return mu, self.scale_bound * torch.tanh(log_sigma / self.scale_bound)

    def forward(self, x, context=None):
        z_out, h = x[:, : self.split], x[:, self.split :]
        mu, log_sigma = self._params(h, context)
        return torch.cat([(z_out - mu) * torch.exp(-log_sigma), h], 1), -sum_except_batch(log_sigma)

    def inverse(self, z, context=None):
        eps, h = z[:, : self.split], z[:, self.split :]
        mu, log_sigma = self._params(h, context)
        return torch.cat([mu + eps * torch.exp(log_sigma), h], 1), sum_except_batch(log_sigma)
