"""A discriminator that also returns one of its hidden layers: VAE-GAN's Dis_l(x) (Larsen et al. 2016).

    forward(x, context) -> (logit l(x) of shape (B, 1), Dis_l(x) of shape (B, *feature shape))

Images: the DCGAN discriminator (:class:`~deepgen.nets.conv.DCGANDiscriminator`: strided 4x4 convs
+ LeakyReLU(0.2), no normalisation); vectors: an MLP with LeakyReLU(0.2).  Layer l counts the
hidden activations from the input (1 = the first); ``feature_layer = 0`` takes the last one, the
input of the final linear map.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError
from deepgen.nets.conv import DCGANDiscriminator, context_channels
from deepgen.nets.mlp import FlatMLP


class FeatureDiscriminator(nn.Module):
    """D(x) = sigmoid(l(x)) with the activations of hidden layer ``feature_layer`` returned alongside l(x).

    ``shape``: (C, H, W) for the conv discriminator (H, W divisible by 4) or (D,) for the MLP;
    ``hidden``: the conv's channels at H/4 (H/2: half) or the MLP's width; ``depth``: conv: 1 + extra
    3x3 layers per resolution, MLP: hidden layers.
    """

    def __init__(self, shape, hidden: int, depth: int, context_features: int = 0, feature_layer: int = 0):
        super().__init__()
        shape = tuple(shape)
        self.conv = len(shape) == 3
        if self.conv:
            net = DCGANDiscriminator(shape, hidden, depth, context_features)
            self.body, self.out = net.body, net.out
        else:
            mlp = FlatMLP(shape[0], (1,), hidden, depth, context_features, leaky_slope=0.2).net
            self.body, self.out = mlp.body, mlp.out
        acts = [i for i, m in enumerate(self.body) if isinstance(m, nn.LeakyReLU)]
        if feature_layer < 0 or feature_layer > len(acts):
            raise ConfigError(f"feature_layer must be in [0, {len(acts)}] for this discriminator "
                              f"({len(acts)} hidden layers; 0 = the last), got {feature_layer}")
        self.layers = len(acts)
        self.feature_layer = feature_layer or len(acts)
        self._cut = acts[self.feature_layer - 1] + 1  # body[:cut] ends with the chosen activation

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conv:
            h = context_channels(x, context)
        else:
            h = x.flatten(1)
            if context is not None:
                h = torch.cat([h, context.to(h.dtype)], -1)
        feats = self.body[:self._cut](h)
        h = self.body[self._cut:](feats)
        if self.conv:
            h = h.flatten(1)
        return self.out(h), feats
