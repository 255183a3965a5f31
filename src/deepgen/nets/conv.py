"""Convolutional networks for images: the VAE's encoder/decoder pair and DCGAN's
generator/discriminator pair.  Context (B, c) enters as constant extra channels
(encoders, discriminators) or extra inputs of the first linear map (decoders, generators)."""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError
from deepgen.nets.minibatch import MinibatchDiscrimination
from deepgen.nets.normalization import ReferenceBatch, generator_inputs, norm_layer, run_layers


def context_channels(x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """Append ``context`` (B, c) to images ``x`` (B, C, H, W) as c constant channels."""
    if context is None:
        return x
    return torch.cat([x, context[:, :, None, None].expand(-1, -1, *x.shape[2:]).to(x.dtype)], 1)


def downsampled_size(shape, depth: int, owner: str = "conv net") -> tuple[int, int]:
    """(H / 2^depth, W / 2^depth) of images of ``shape`` (C, H, W); ConfigError if not divisible."""
    c, h, w = shape
    if h % 2**depth or w % 2**depth:
        raise ConfigError(f"{owner}: depth={depth} halves the image {depth} times; "
                          f"{h}x{w} is not divisible by {2**depth} (lower depth or use arch: mlp)")
    return h // 2**depth, w // 2**depth


class ConvEncoder(nn.Module):
    """(B, C, H, W) [+ context as channels] -> (B, out).

    conv3x3 to ``channels / 2^depth`` channels, then ``depth`` stride-2 conv4x4 that halve the
    resolution and double the channels (ending at ``channels``), then a linear map of the flat map.
    """

    def __init__(self, shape, out_features: int, channels: int, depth: int, context_features: int):
        super().__init__()
        c = shape[0]
        h, w = downsampled_size(shape, depth, "conv encoder")
        ch = [max(1, channels // 2 ** (depth - i)) for i in range(depth + 1)]
        layers: list[nn.Module] = [nn.Conv2d(c + context_features, ch[0], 3, padding=1)]
        for i in range(depth):
            layers += [nn.ReLU(), nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Flatten(), nn.Linear(ch[-1] * h * w, out_features)]
        self.net = nn.Sequential(*layers)

    def forward(self, x, context=None):
        return self.net(context_channels(x, context))


class ConvDecoder(nn.Module):
    """(B, latent) [+ context] -> (B, C * P, H, W): the mirror of :class:`ConvEncoder`.

    A linear map to a (channels, H / 2^depth, W / 2^depth) map, ``depth`` stride-2 transposed
    conv4x4 that double the resolution and halve the channels, then conv3x3 to C * P channels.
    """

    def __init__(self, shape, latent: int, out_channels: int, channels: int, depth: int,
                 context_features: int):
        super().__init__()
        h, w = downsampled_size(shape, depth, "conv decoder")
        ch = [max(1, channels // 2**i) for i in range(depth + 1)]
        self.start = (ch[0], h, w)
        self.inp = nn.Linear(latent + context_features, ch[0] * h * w)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.ReLU(), nn.ConvTranspose2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(ch[-1], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z, context=None):
        if context is not None:
            z = torch.cat([z, context], -1)
        return self.net(self.inp(z).reshape(len(z), *self.start))


class DCGANGenerator(nn.Module):
    """DCGAN-style generator for (C, H, W) images with H, W divisible by 4.

    [z, context] -> linear -> (hidden, H/4, W/4) -> ConvT 4x4/2 -> (hidden/2, H/2, W/2)
    -> ConvT 4x4/2 -> (C, H, W).  Every layer but the last has a normalisation + ReLU;
    ``depth - 1`` extra 3x3 conv + norm + ReLU layers follow at H/4 and H/2.

    ``norm``: "batch" (BatchNorm), "virtual" (virtual batch norm with a fixed reference
    batch of ``reference_size`` latent draws, :class:`~deepgen.nets.normalization.ReferenceBatch`)
    or "conditional" (class-conditional BN: the context enters only through a shared
    linear embedding of ``embed_features`` that every BN layer projects to its gain and bias).
    """

    def __init__(self, latent: int, shape, hidden: int, depth: int, context_features: int = 0,
                 norm: str = "batch", embed_features: int = 0, reference_size: int = 0):
        super().__init__()
        c, h, w = shape
        self.start = (hidden, h // 4, w // 4)
        conditional = norm == "conditional"
        self.embed = nn.Linear(context_features, embed_features, bias=False) if conditional else None
        self.reference = ReferenceBatch(reference_size, latent, context_features) if norm == "virtual" else None
        self.fc = nn.Linear(latent + (0 if conditional else context_features), hidden * (h // 4) * (w // 4))
        half = hidden // 2

        def norm_of(ch):
            return norm_layer(norm, ch, True, embed_features, reference_size)

        layers = [norm_of(hidden), nn.ReLU()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=norm_of, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(hidden, half, 4, stride=2, padding=1), norm_of(half), nn.ReLU()]
        layers += _conv3x3_stack(half, depth - 1, norm=norm_of, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(half, c, 4, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z, context=None):
        z, embedding, r = generator_inputs(self.reference, self.embed, z, context)
        return run_layers(self.body, self.fc(z).view(len(z), *self.start), embedding)[r:]


class DCGANDiscriminator(nn.Module):
    """DCGAN-style discriminator: strided 4x4 convs + LeakyReLU(0.2), no normalisation.

    (C [+ context as constant channels], H, W) -> conv 4x4/2 -> (hidden/2, H/2, W/2)
    -> conv 4x4/2 -> (hidden, H/4, W/4) -> flatten (:meth:`features`) -> linear -> one
    logit; ``depth - 1`` extra 3x3 conv + LeakyReLU layers follow each strided conv.  No
    BatchNorm: D sees all-real and all-fake batches separately, and batch statistics
    would let it tell them apart by the batch rather than by the example.
    ``minibatch_kernels`` > 0 appends minibatch-discrimination features
    (:class:`~deepgen.nets.minibatch.MinibatchDiscrimination`) before the last layer.
    """

    def __init__(self, shape, hidden: int, depth: int, context_features: int = 0, minibatch_kernels: int = 0):
        super().__init__()
        c, h, w = shape
        half = hidden // 2
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        layers = [nn.Conv2d(c + context_features, half, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(half, depth - 1, norm=None, act=act)
        layers += [nn.Conv2d(half, hidden, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=None, act=act)
        self.body = nn.Sequential(*layers, nn.Flatten())
        features = hidden * (h // 4) * (w // 4)
        self.minibatch = MinibatchDiscrimination(features, minibatch_kernels) if minibatch_kernels else None
        self.out = nn.Linear(features + minibatch_kernels, 1)

    def features(self, x, context=None):
        """The last hidden layer, flattened: (B, hidden H/4 W/4)."""
        return self.body(context_channels(x, context))

    def forward(self, x, context=None):
        h = self.features(x, context)
        if self.minibatch is not None:
            h = torch.cat([h, self.minibatch(h)], -1)
        return self.out(h)


def _conv3x3_stack(channels, n, norm, act):
    """``n`` x (3x3 conv, ``norm(channels)`` if a norm factory is given, activation)."""
    layers = []
    for _ in range(max(0, n)):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        if norm is not None:
            layers.append(norm(channels))
        layers.append(act())
    return layers
