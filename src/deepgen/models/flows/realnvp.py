"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): affine couplings with bounded scales.

Two architectures, built by two separate builders:

* :func:`vector_realnvp` for vectors (D,): ``couplings`` layers with alternating
  masks and MLP conditioners (``hidden`` wide, ``depth`` hidden layers) that see
  only the kept coordinates and predict (s, t) only for the free ones;
* :func:`image_realnvp` for images (C, H, W): conv ResNet conditioners
  (``channels`` wide, ``blocks`` residual blocks) in a multi-scale stack; each of
  ``scales - 1`` scales has 3 checkerboard couplings, a squeeze, 3 channel
  couplings and factors out half the channels; the last scale has 4 checkerboard
  couplings.  ``logit_alpha > 0`` applies the logit preprocessing to dequantized
  images in [0, 1) (its Jacobian counted).

A parameter of the other architecture is refused (``shape_params``), never ignored.
"""

from __future__ import annotations

from deepgen.bijections import (
    AffineCoupling, Compose, FactorOut, KeptToFree, Logit, Squeeze, alternating_mask, channel_mask,
    checkerboard_mask,
)
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import MLP, ConvResNet


def vector_realnvp(d: int, couplings: int, hidden: int, depth: int, scale_bound: float, context_features: int):
    """Affine couplings on (D,) vectors with alternating masks and kept-to-free MLP conditioners."""
    layers = []
    for i in range(couplings):
        mask = alternating_mask(d, i % 2)
        kept = int(mask.sum())
        net = MLP(kept, 2 * (d - kept), hidden, depth, context_features, zero_init=True)
        layers.append(AffineCoupling(mask, KeptToFree(mask, net), scale_bound))
    return layers


def image_realnvp(shape, scales: int, channels: int, blocks: int, scale_bound: float, context_features: int):
    """Multi-scale affine couplings on (C, H, W) images with conv ResNet conditioners."""
    c, h, w = shape
    if scales < 1 or h % 2 ** (scales - 1) or w % 2 ** (scales - 1):
        raise ConfigError(f"realnvp: scales={scales} needs H and W divisible by 2^(scales-1); image is {h}x{w}")

    def coupling(mask):
        ch = mask.shape[0]
        return AffineCoupling(mask, ConvResNet(ch, 2 * ch, channels, blocks, context_features, zero_init=True),
                              scale_bound)

    def build(level_shape, level):
        ch, hh, ww = level_shape
        if level == scales - 1:
            return [coupling(checkerboard_mask(level_shape, i % 2)) for i in range(4)]
        out = [coupling(checkerboard_mask(level_shape, i % 2)) for i in range(3)]
        sq = (4 * ch, hh // 2, ww // 2)
        out.append(Squeeze())
        out += [coupling(channel_mask(sq, i % 2)) for i in range(3)]
        keep = sq[0] // 2
        out.append(FactorOut(keep, Compose(build((sq[0] - keep, sq[1], sq[2]), level + 1))))
        return out

    return build((c, h, w), 0)


class RealNVP(Flow):
    """RealNVP: affine couplings, scales soft-clamped to ``scale_bound`` tanh(s / bound),
    zero-initialised conditioners (the flow starts as the identity).

        y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)),   log|det| = sum (1 - m) s

    Vectors use ``couplings``, ``hidden``, ``depth``; images use ``scales``, ``channels``,
    ``blocks``, ``logit_alpha`` (see the module docstring).  ``context_features`` > 0 makes every
    conditioner see the context: a conditional flow p(x | context).
    """

    name = "realnvp"
    description = "RealNVP affine-coupling flow (exact density); vectors or multi-scale images"
    shape_params = {"vector": ("couplings", "hidden", "depth"),
                    "image": ("scales", "channels", "blocks", "logit_alpha")}

    param_constraints = {"couplings": ">= 1", "hidden": ">= 1", "depth": ">= 0", "scales": ">= 1",
                         "channels": ">= 1", "blocks": ">= 0", "scale_bound": "> 0", "logit_alpha": "in [0, 0.5)",
                         "context_features": ">= 0", "dequantization": DEQUANTIZATIONS}

    def __init__(self, spec: DataSpec, couplings: int = 8, hidden: int = 64, depth: int = 2,
                 scales: int = 2, channels: int = 32, blocks: int = 1, scale_bound: float = 3.0,
                 logit_alpha: float = 0.05, context_features: int = 0, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a RealNVP for data ``spec``.

        Args:
            couplings: affine coupling layers (vectors); the masks alternate halves.
            hidden: units per hidden layer of each coupling's conditioner MLP (vectors).
            depth: hidden layers of each conditioner MLP (vectors).
            scales: multi-scale levels (images); each ends with a squeeze and factors out half.
            channels: channels of each conditioner ResNet (images).
            blocks: residual blocks per conditioner ResNet (images).
            scale_bound: bound B of the log-scales, soft-clamped to B tanh(s / B).
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, couplings=couplings, hidden=hidden, depth=depth, scales=scales, channels=channels,
                         blocks=blocks, scale_bound=scale_bound, logit_alpha=logit_alpha,
                         context_features=context_features, dequantization=dequantization, standardize=standardize)
        if spec.is_image:
            layers = image_realnvp(spec.shape, scales, channels, blocks, scale_bound, context_features)
            if logit_alpha > 0:
                if spec.levels is None:
                    raise ConfigError("logit_alpha > 0 needs discrete images in [0, levels); set logit_alpha: 0")
                layers.insert(0, Logit(logit_alpha))
        elif len(spec.shape) == 1:
            d = spec.shape[0]
            if d < 2:
                raise ConfigError(f"realnvp needs at least 2 dimensions, data '{spec.name}' has {d}")
            layers = vector_realnvp(d, couplings, hidden, depth, scale_bound, context_features)
        else:
            raise ConfigError(f"realnvp expects vectors (D,) or images (C, H, W), got shape {spec.shape}")
        self._set_transform(Compose(layers))
