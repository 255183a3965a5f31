"""Normalizing flows: a base density plus a bijection (change of variables).

    log p(x) = log p_Z(f(x)) + log|det df/dx|,     x = f^{-1}(z), z ~ p_Z

On discrete data the flow models y = (k + u) / L and reports the dequantized
bound log p_Y(y) - D log L (see :mod:`deepgen.data.dequantize`).
"""

from __future__ import annotations

import torch

from deepgen.bijections import (
    AffineCoupling, Bijection, Compose, FactorOut, KeptToFree, Logit, Squeeze,
    alternating_mask, channel_mask, checkerboard_mask,
)
from deepgen.data.dequantize import dequantize, quantize
from deepgen.data.spec import DataSpec
from deepgen.distributions import StandardNormal
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.models.registry import register
from deepgen.nets import MLP, ConvResNet


class Flow(GenerativeModel):
    """A flow: ``transform`` maps data-space y to latent z, ``base`` is N(0, I) over z."""

    family = "flow"
    density = "exact"

    def _set_transform(self, transform: Bijection) -> None:
        self.transform = transform
        with torch.no_grad():
            z, _ = transform(torch.full((1, *self.spec.shape), 0.5))
        self.base = StandardNormal(tuple(z.shape[1:]))

    def log_prob(self, x, context=None):
        correction = 0.0
        if self.spec.levels is not None:
            x, correction = dequantize(x, self.spec.levels)
        z, logabsdet = self.transform(x, context)
        return self.base.log_prob(z) + logabsdet + correction

    def sample(self, n, context=None, temperature=1.0):
        z = self.base.sample(n, temperature)
        y, _ = self.transform.inverse(z, context)
        if self.spec.levels is not None:
            y = quantize(y, self.spec.levels)
        return y

    def distribution(self, context=None) -> "FlowDistribution":
        """A ``torch.distributions.Distribution`` view (continuous data only)."""
        return FlowDistribution(self, context)


class FlowDistribution(torch.distributions.Distribution):
    """Bridge to ``torch.distributions``: ``log_prob``, ``sample`` and ``rsample`` of a flow."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, flow: Flow, context=None):
        if flow.spec.levels is not None:
            raise ConfigError("FlowDistribution needs continuous data; this flow models discrete levels")
        self.flow, self.context = flow, context
        super().__init__(event_shape=torch.Size(flow.spec.shape), validate_args=False)

    def log_prob(self, value):
        return self.flow.log_prob(value, self.context)

    def rsample(self, sample_shape=torch.Size()):
        n = int(torch.Size(sample_shape).numel())
        z = self.flow.base.sample(n)
        x, _ = self.flow.transform.inverse(z, self.context)
        return x.reshape(*sample_shape, *self.event_shape)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)


@register
class RealNVP(Flow):
    """RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): affine couplings with bounded scales.

    Vectors: ``couplings`` layers with alternating masks and MLP conditioners
    (``hidden`` wide, ``depth`` hidden layers).
    Images: conv ResNet conditioners (``channels`` wide, ``blocks`` residual blocks) in a multi-scale stack; each of ``scales - 1`` scales has 3 checkerboard
    couplings, a squeeze, 3 channel couplings and factors out half the channels;
    the last scale has 4 checkerboard couplings.  ``logit_alpha > 0`` applies the
    logit preprocessing to dequantized images in [0, 1) (its Jacobian counted).
    """

    name = "realnvp"
    description = "RealNVP affine-coupling flow (exact density); vectors or multi-scale images"

    def __init__(self, spec: DataSpec, couplings: int = 8, hidden: int = 64, depth: int = 2,
                 scales: int = 2, channels: int = 32, blocks: int = 1, scale_bound: float = 3.0,
                 logit_alpha: float = 0.05, context_features: int = 0):
        super().__init__(spec, couplings=couplings, hidden=hidden, depth=depth, scales=scales, channels=channels,
                         blocks=blocks, scale_bound=scale_bound, logit_alpha=logit_alpha,
                         context_features=context_features)
        if spec.is_image:
            layers = self._image_layers(spec, scales, channels, blocks, scale_bound, context_features)
            if logit_alpha > 0:
                if spec.levels is None:
                    raise ConfigError("logit_alpha > 0 needs discrete images in [0, levels); set logit_alpha: 0")
                layers.insert(0, Logit(logit_alpha))
        elif len(spec.shape) == 1:
            d = spec.shape[0]
            if d < 2:
                raise ConfigError(f"realnvp needs at least 2 dimensions, data '{spec.name}' has {d}")
            layers = []
            for i in range(couplings):
                mask = alternating_mask(d, i % 2)
                kept = int(mask.sum())
                net = MLP(kept, 2 * (d - kept), hidden, depth, context_features, zero_init=True)
                layers.append(AffineCoupling(mask, KeptToFree(mask, net), scale_bound))
        else:
            raise ConfigError(f"realnvp expects vectors (D,) or images (C, H, W), got shape {spec.shape}")
        self._set_transform(Compose(layers))

    @staticmethod
    def _image_layers(spec, scales, hidden, blocks, bound, ctx):
        c, h, w = spec.shape
        if scales < 1 or h % 2 ** (scales - 1) or w % 2 ** (scales - 1):
            raise ConfigError(f"realnvp: scales={scales} needs H and W divisible by 2^(scales-1); image is {h}x{w}")

        def coupling(mask):
            ch = mask.shape[0]
            return AffineCoupling(mask, ConvResNet(ch, 2 * ch, hidden, blocks, ctx, zero_init=True), bound)

        def build(shape, level):
            ch, hh, ww = shape
            if level == scales - 1:
                return [coupling(checkerboard_mask(shape, i % 2)) for i in range(4)]
            out = [coupling(checkerboard_mask(shape, i % 2)) for i in range(3)]
            sq = (4 * ch, hh // 2, ww // 2)
            out.append(Squeeze())
            out += [coupling(channel_mask(sq, i % 2)) for i in range(3)]
            keep = sq[0] // 2
            out.append(FactorOut(keep, Compose(build((sq[0] - keep, sq[1], sq[2]), level + 1))))
            return out

        return build((c, h, w), 0)

