"""Discriminators on (x, z) pairs (BiGAN / ALI): one logit l(x, z) per pair.

Images:   h_x = conv tower(x [+ context as constant channels])      (strided 4x4 convs, LeakyReLU(0.2))
          h_z = MLP([z, context])                                   (LeakyReLU(0.2))
          h   = MLP([h_x, h_z])          the joint hidden layer, (B, hidden)
          l   = w^T h + b
Vectors:  h   = MLP([x, z, context]) (``depth`` LeakyReLU(0.2) layers), l = w^T h + b.

No normalisation layers (D sees all-real and all-fake batches separately, so batch
statistics would tell the batches apart); optional dropout after every hidden
activation (ALI's regulariser for a discriminator; D on few examples overfits).
``minibatch_kernels`` = B > 0 joins minibatch-discrimination features o(h_x) (B numbers:
how close each example's x is to the other x of its batch,
:class:`~deepgen.nets.minibatch.MinibatchDiscrimination`) to h_x (images) or to x
(vectors), so a generator whose G(z) collapse onto a few images is seen as such.
``features(x, z)`` returns the last hidden layer h.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.nets.conv import context_channels
from deepgen.nets.minibatch import MinibatchDiscrimination


def _leaky_mlp(width_in: int, hidden: int, depth: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, hidden), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = hidden
    return layers


class ConvJointDiscriminator(nn.Module):
    """l(x, z) for images x (C, H, W) with H, W divisible by 4 and codes z (latent,).

    x: conv 4x4/2 -> (hidden/2, H/2, W/2) -> conv 4x4/2 -> (hidden, H/4, W/4), flattened;
    z: ``depth`` linear layers of width ``hidden``; the two are joined by ``depth`` linear
    layers of width ``hidden`` and a linear map to one logit.
    """

    def __init__(self, shape, latent: int, hidden: int, depth: int, context_features: int = 0,
                 dropout: float = 0.0, minibatch_kernels: int = 0):
        super().__init__()
        c, h, w = shape
        half = max(1, hidden // 2)
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.x_net = nn.Sequential(
            nn.Conv2d(c + context_features, half, 4, stride=2, padding=1), act(), *drop,
            nn.Conv2d(half, hidden, 4, stride=2, padding=1), act(), *drop, nn.Flatten())
        self.z_net = nn.Sequential(*_leaky_mlp(latent + context_features, hidden, depth, dropout))
        x_features = hidden * (h // 4) * (w // 4)
        self.minibatch = MinibatchDiscrimination(x_features, minibatch_kernels) if minibatch_kernels else None
        self.joint = nn.Sequential(*_leaky_mlp(x_features + minibatch_kernels + hidden, hidden, depth, dropout))
        self.out = nn.Linear(hidden, 1)

    def features(self, x, z, context=None):
        """The joint hidden layer h(x, z), (B, hidden)."""
        hz = z if context is None else torch.cat([z, context.to(z.dtype)], -1)
        hx = self.x_net(context_channels(x, context))
        if self.minibatch is not None:
            hx = torch.cat([hx, self.minibatch(hx)], -1)
        return self.joint(torch.cat([hx, self.z_net(hz)], -1))

    def forward(self, x, z, context=None):
        """Logits l(x, z), shape (B, 1)."""
        return self.out(self.features(x, z, context))


class MLPJointDiscriminator(nn.Module):
    """l(x, z) for vectors: an MLP with LeakyReLU(0.2) on the concatenation [x flattened, z, context]."""

    def __init__(self, in_features: int, latent: int, hidden: int, depth: int, context_features: int = 0,
                 dropout: float = 0.0, minibatch_kernels: int = 0):
        super().__init__()
        self.minibatch = MinibatchDiscrimination(in_features, minibatch_kernels) if minibatch_kernels else None
        width = in_features + minibatch_kernels + latent + context_features
        self.body = nn.Sequential(*_leaky_mlp(width, hidden, depth, dropout))
        self.out = nn.Linear(hidden, 1)

    def features(self, x, z, context=None):
        """The last hidden layer h(x, z), (B, hidden)."""
        x = x.flatten(1)
        if self.minibatch is not None:
            x = torch.cat([x, self.minibatch(x)], -1)
        parts = [x, z] + ([] if context is None else [context.to(z.dtype)])
        return self.body(torch.cat(parts, -1))

    def forward(self, x, z, context=None):
        """Logits l(x, z), shape (B, 1)."""
        return self.out(self.features(x, z, context))
