"""MLP generator and discriminator variants of the GAN tricks (normalised generator, minibatch features).

The plain GAN pair on vectors is two :class:`~deepgen.nets.mlp.FlatMLP`; these classes are
used when a trick needs more: normalisation layers in the generator (batch, virtual or
class-conditional batch norm) or minibatch discrimination in the discriminator.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.nets.minibatch import MinibatchDiscrimination
from deepgen.nets.mlp import FlatMLP
from deepgen.nets.normalization import ReferenceBatch, generator_inputs, norm_layer, run_layers


class MLPGenerator(nn.Module):
    """[z, context] -> ``depth`` x (linear, norm, ReLU) -> linear -> ``out_shape``.

    ``norm`` as for :class:`~deepgen.nets.conv.DCGANGenerator`: "batch", "virtual" (a fixed
    reference batch of ``reference_size`` draws goes through the net with every batch) or
    "conditional" (the context enters only through BN gains and biases computed from a shared
    linear embedding of size ``embed_features``).
    """

    def __init__(self, latent: int, out_shape, hidden: int, depth: int, context_features: int = 0,
                 norm: str = "batch", embed_features: int = 0, reference_size: int = 0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        conditional = norm == "conditional"
        self.embed = nn.Linear(context_features, embed_features, bias=False) if conditional else None
        self.reference = ReferenceBatch(reference_size, latent, context_features) if norm == "virtual" else None
        layers, width = [], latent + (0 if conditional else context_features)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), norm_layer(norm, hidden, False, embed_features, reference_size),
                       nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        self.body = nn.Sequential(*layers)

    def forward(self, z, context=None):
        z, embedding, r = generator_inputs(self.reference, self.embed, z, context)
        return run_layers(self.body, z, embedding)[r:].view(len(z) - r, *self.out_shape)


class MLPDiscriminator(FlatMLP):
    """The GAN's MLP discriminator (LeakyReLU(``leaky_slope``), one logit) with optional minibatch
    discrimination: ``minibatch_kernels`` > 0 appends o(f(x)) to the last hidden layer f(x)."""

    def __init__(self, in_features: int, hidden: int, depth: int, context_features: int = 0,
                 leaky_slope: float = 0.2, minibatch_kernels: int = 0):
        super().__init__(in_features, (1,), hidden, depth, context_features, leaky_slope=leaky_slope)
        self.minibatch = None
        if minibatch_kernels:
            width = self.net.out.in_features
            self.minibatch = MinibatchDiscrimination(width, minibatch_kernels)
            self.net.out = nn.Linear(width + minibatch_kernels, 1)

    def forward(self, x, context=None):
        h = self.features(x, context)
        if self.minibatch is not None:
            h = torch.cat([h, self.minibatch(h)], -1)
        return self.net.out(h)
