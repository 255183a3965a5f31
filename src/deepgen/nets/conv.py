"""Convolutional networks for images: the VAE's encoder/decoder pair and DCGAN's
generator/discriminator pair.  Context (B, c) enters as constant extra channels
(encoders, discriminators) or extra inputs of the first linear map (decoders, generators)."""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError


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
    -> ConvT 4x4/2 -> (C, H, W).  Every layer but the last has BatchNorm + ReLU;
    ``depth - 1`` extra 3x3 conv + BatchNorm + ReLU layers follow at H/4 and H/2.
    """

    def __init__(self, latent: int, shape, hidden: int, depth: int, context_features: int = 0):
        super().__init__()
        c, h, w = shape
        self.start = (hidden, h // 4, w // 4)
        self.fc = nn.Linear(latent + context_features, hidden * (h // 4) * (w // 4))
        half = hidden // 2
        layers = [nn.BatchNorm2d(hidden), nn.ReLU()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=True, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(hidden, half, 4, stride=2, padding=1), nn.BatchNorm2d(half), nn.ReLU()]
        layers += _conv3x3_stack(half, depth - 1, norm=True, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(half, c, 4, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z, context=None):
        if context is not None:
            z = torch.cat([z, context], -1)
        return self.body(self.fc(z).view(len(z), *self.start))


class DCGANDiscriminator(nn.Module):
    """DCGAN-style discriminator: strided 4x4 convs + LeakyReLU(0.2), no normalisation.

    (C [+ context as constant channels], H, W) -> conv 4x4/2 -> (hidden/2, H/2, W/2)
    -> conv 4x4/2 -> (hidden, H/4, W/4) -> linear -> one logit; ``depth - 1`` extra
    3x3 conv + LeakyReLU layers follow each strided conv.  No BatchNorm: D sees
    all-real and all-fake batches separately, and batch statistics would let it
    tell them apart by the batch rather than by the example.
    """

    def __init__(self, shape, hidden: int, depth: int, context_features: int = 0):
        super().__init__()
        c, h, w = shape
        half = hidden // 2
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        layers = [nn.Conv2d(c + context_features, half, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(half, depth - 1, norm=False, act=act)
        layers += [nn.Conv2d(half, hidden, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=False, act=act)
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.out = nn.Linear(hidden * (h // 4) * (w // 4), 1)

    def forward(self, x, context=None):
        return self.out(self.body(context_channels(x, context)))


def _conv3x3_stack(channels, n, norm, act):
    layers = []
    for _ in range(max(0, n)):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        if norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(act())
    return layers
