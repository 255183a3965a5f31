"""Glow (Kingma & Dhariwal 2018): multi-scale flow of ActNorm, invertible 1x1 convolutions
and affine couplings, with a learned Gaussian prior at every split.

For images (C, H, W) (optionally after the logit preprocessing of the dequantized pixels,
``logit_alpha > 0``, its Jacobian counted), each of the ``scales`` levels is

    squeeze (C, H, W) -> (4C, H/2, W/2)
    steps_per_scale x [ ActNorm -> invertible 1x1 conv (LU) -> affine coupling ]
    split (all levels but the last): half of the channels z_out leave with the learned prior
        p(z_out | h) = N(mu(h), sigma(h)^2), and the other half h goes on to the next level
    top (last level, ``learn_top``): p(z_top) = N(mu, sigma^2) with learned mu, sigma (and a
        linear function of the context in a conditional flow)

One step, on x with C channels (m = first half of the channels, the coupling's kept half):

    ActNorm:    x <- (x - b) exp(log s),               log|det| = H W sum log s
    1x1 conv:   x <- W x,  W = P L (U + diag(sign s exp(log|s|))),   log|det| = H W sum log|s|
    coupling:   x_b <- x_b exp(s(x_a)) + t(x_a),  s soft-clamped to B tanh(s / B),  log|det| = sum s

so log p(x) = sum_level [log N(z'_level; 0, I) - sum log sigma_level] + sum log|det| (see
:class:`deepgen.bijections.ConditionalPrior`: each prior is an affine bijection followed by
the flow's fixed N(0, I) base, which makes temperature sampling z = mu + sigma T eps).
Couplings and priors are zero-initialised, so after ActNorm's data-dependent initialisation
(first training batch) the flow is ActNorm + rotations.  Vectors are refused (use realnvp,
maf or nsf).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections import (
    ActNorm, AffineCoupling, Compose, ConditionalPrior, FactorOut, Inverse, InvertibleConv1x1, Logit, Squeeze,
    channel_mask,
)
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import ConvResNet


class TopPriorNet(nn.Module):
    """(mu, log sigma) of the top level: a learned (2C, H, W) map plus a zero-initialised linear map
    of the context broadcast over positions; ignores its (empty) input."""

    def __init__(self, shape, context_features: int):
        super().__init__()
        c, h, w = shape
        self.bias = nn.Parameter(torch.zeros(2 * c, h, w))
        self.context = nn.Linear(context_features, 2 * c) if context_features else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def forward(self, h, context=None):
        out = self.bias.expand(h.shape[0], *self.bias.shape)
        if self.context is not None:
            out = out + self.context(context)[:, :, None, None]
        return out


def glow_step(shape, channels: int, blocks: int, scale_bound: float, context_features: int):
    """ActNorm -> invertible 1x1 conv -> affine coupling (first half of the channels kept)."""
    c = shape[0]
    net = ConvResNet(c, 2 * c, channels, blocks, context_features, zero_init=True)
    return [ActNorm(c), InvertibleConv1x1(c), AffineCoupling(channel_mask(shape, 0), net, scale_bound)]


def image_glow(shape, scales: int, steps_per_scale: int, channels: int, blocks: int, scale_bound: float,
               learn_top: bool, context_features: int):
    """The multi-scale Glow stack on (C, H, W) images (see the module docstring)."""
    c, h, w = shape
    if h % 2**scales or w % 2**scales:
        raise ConfigError(f"glow: scales={scales} squeezes {scales} times and needs H and W divisible by "
                          f"2^{scales}; image is {h}x{w}")

    def build(level_shape, level):
        ch, hh, ww = level_shape
        sq = (4 * ch, hh // 2, ww // 2)
        out = [Squeeze()]
        for _ in range(steps_per_scale):
            out += glow_step(sq, channels, blocks, scale_bound, context_features)
        if level == scales - 1:
            if learn_top:
                out.append(ConditionalPrior(sq[0], TopPriorNet(sq, context_features), scale_bound))
        else:
            split = sq[0] // 2
            rest = sq[0] - split
            prior_net = ConvResNet(rest, 2 * split, channels, 0, context_features, zero_init=True)
            out.append(ConditionalPrior(split, prior_net, scale_bound))
            out.append(FactorOut(split, Compose(build((rest, sq[1], sq[2]), level + 1))))
        # undo the squeeze on the latent (a fixed permutation, log|det| = 0): every level maps its input
        # shape to itself, so FactorOut keeps shapes and the base is N(0, I) over the data's shape
        out.append(Inverse(Squeeze()))
        return out

    return build((c, h, w), 0)


class Glow(Flow):
    """Glow: multi-scale ActNorm / LU 1x1 conv / affine coupling steps with learned split priors.

    ActNorm initialises itself from the first training batch (more than one example, training
    mode); before that (e.g. scoring or sampling an untrained model, or a first call in eval
    mode) it is the identity.  :meth:`initialize` runs the initialisation explicitly.
    """

    name = "glow"
    description = "Glow: ActNorm, invertible 1x1 conv (LU), affine couplings, learned split priors (images)"
    data_shapes = frozenset({"image"})
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "scales": ">= 1", "steps_per_scale": ">= 1", "channels": ">= 1", "blocks": ">= 0",
                         "scale_bound": "> 0", "logit_alpha": "in [0, 0.5)", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, scales: int = 2, steps_per_scale: int = 6, channels: int = 32,
                 blocks: int = 1, scale_bound: float = 3.0, logit_alpha: float = 0.05, learn_top: bool = True,
                 context_features: int = 0, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a Glow for image data ``spec``.

        Args:
            scales: multi-scale levels L; each squeezes 2x2 (H, W divisible by 2^L) and all but the last split.
            steps_per_scale: flow steps K per level (ActNorm, 1x1 conv, affine coupling).
            channels: channels of each coupling's (and split prior's) conv ResNet conditioner.
            blocks: residual blocks per coupling conditioner.
            scale_bound: bound B of the coupling log-scales and prior log-sigmas, soft-clamped to B tanh(s / B).
            logit_alpha: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            learn_top: learn the top level's prior N(mu, sigma^2) (else N(0, I)).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, scales=scales, steps_per_scale=steps_per_scale, channels=channels, blocks=blocks,
                         scale_bound=scale_bound, logit_alpha=logit_alpha, learn_top=learn_top,
                         context_features=context_features, dequantization=dequantization, standardize=standardize)
        if not spec.is_image:
            raise ConfigError(f"glow expects images (C, H, W), got shape {spec.shape}; for vectors use "
                              f"realnvp, maf or nsf")
        layers = image_glow(spec.shape, scales, steps_per_scale, channels, blocks, scale_bound, bool(learn_top),
                            context_features)
        if logit_alpha > 0:
            if spec.levels is None:
                raise ConfigError("glow: logit_alpha > 0 needs discrete images in [0, levels); set logit_alpha: 0")
            layers.insert(0, Logit(logit_alpha))
        self._set_transform(Compose(layers))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Data-dependent initialisation of every not yet initialised ActNorm from batch ``x`` (data scale,
        more than one example); the model's train / eval mode is left as it was."""
        if len(x) < 2:
            raise ConfigError("glow: ActNorm initialisation needs a batch of more than one example")
        mode = self.training
        self.train()
        try:
            self.log_prob(x, context)
        finally:
            self.train(mode)
