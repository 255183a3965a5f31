"""Variational dequantization (Flow++, Ho, Chen, Srinivas, Duan & Abbeel 2019).

A flow on discrete data k in {0..L-1}^D models y = (k + u) / L.  Uniform dequantization
draws u ~ U[0, 1)^D; variational dequantization draws u from a learned conditional density
q(u | k) and reports the variational bound

    log P(k) >= E_{u ~ q(u | k)}[ log p_Y((k + u) / L) - log q(u | k) ] - D log L,

which is the uniform bound when q is uniform (log q = 0) and at least as tight at its optimum.
Both densities are trained together on this bound.  q(u | k) is itself a flow:

    eps ~ N(0, I),  s = g^{-1}(eps; k),  u = sigmoid(s),
    log q(u | k) = log N(eps) - log|det ds/deps| - sum log sigmoid'(s),

with g a stack of affine couplings (checkerboard masks and conv ResNets for images, alternating
masks and MLPs for vectors) whose conditioners also see k scaled to [-1, 1].  Their last layers
start at zero, so a fresh q is the logit-normal sigmoid(N(0, I)).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections import AffineCoupling, Compose, KeptToFree, Logit, alternating_mask, checkerboard_mask
from deepgen.data.spec import DataSpec
from deepgen.distributions import StandardNormal
from deepgen.nets import MLP, ConvResNet

DEQUANTIZATIONS = ("uniform", "variational")


class ImageContext(nn.Module):
    """A conv conditioner that sees an image-shaped context: net(cat(x, context) along channels)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, context=None):
        return self.net(torch.cat([x, context.to(x.dtype)], 1))


class VariationalDequantizer(nn.Module):
    """q(u | k) on [0, 1)^shape: ``couplings`` affine couplings conditioned on k (see the module docstring)."""

    def __init__(self, spec: DataSpec, couplings: int = 4, hidden: int = 32, depth: int = 1,
                 scale_bound: float = 3.0):
        super().__init__()
        self.levels = spec.levels
        shape = tuple(spec.shape)
        layers = []
        for i in range(couplings):
            if len(shape) == 3:
                c = shape[0]
                mask = checkerboard_mask(shape, i % 2)
                net = ImageContext(ConvResNet(2 * c, 2 * c, hidden, depth, zero_init=True))
            else:
                d = shape[0]
                mask = alternating_mask(d, i % 2) if d > 1 else torch.zeros(1)
                kept = int(mask.sum())
                net = KeptToFree(mask, MLP(kept, 2 * (d - kept), hidden, max(depth, 1), d, zero_init=True))
            layers.append(AffineCoupling(mask, net, scale_bound))
        self.flow = Compose([Logit(0.0), *layers])  # forward: u -> logit(u) -> eps
        self.base = StandardNormal(shape)

    def context(self, k: torch.Tensor) -> torch.Tensor:
        """k scaled to [-1, 1]: what the conditioners see."""
        return 2 * k / max(self.levels - 1, 1) - 1

    def sample(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, log q(u | k)): one reparameterised draw per example of k, u in (0, 1)."""
        eps = self.base.sample(len(k)).to(k.dtype)
        u, ld = self.flow.inverse(eps, self.context(k))
        return u.clamp(1e-6, 1 - 1e-6), self.base.log_prob(eps) - ld

    def log_prob(self, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """log q(u | k) of given noise u in (0, 1)."""
        eps, ld = self.flow(u, self.context(k))
        return self.base.log_prob(eps) + ld
