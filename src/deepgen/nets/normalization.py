"""Normalisation layers of the GAN tricks: virtual batch norm, class-conditional batch norm, spectral norm.

* :class:`VirtualBatchNorm` (Salimans et al. 2016): each example is normalised with the
  statistics of a fixed reference batch *and itself*, never of the other examples in its
  batch, so a generator's output for one z does not depend on the rest of the batch.
* :class:`ConditionalBatchNorm` (de Vries et al. 2017; BigGAN, Brock et al. 2018): batch
  norm whose gain and bias are linear functions of a (shared) class embedding.
* :func:`spectral_normalize` (Miyato et al. 2018): every linear and conv weight divided by
  its largest singular value (one power iteration per training forward).
"""

from __future__ import annotations

import torch
from torch import nn


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation over channel dim 1 of (N, C) or (N, C, H, W) inputs.

    The first ``reference_size`` = R rows of every input are the reference batch (the
    generator runs its fixed reference z through the network with every batch).  With
    S the number of spatial positions, the reference statistics per channel are

        mu_r = mean over the R S reference values,   s_r = mean of their squares,

    and example i (one of the other rows) with its own per-channel spatial mean m_i and
    mean square q_i is normalised with the statistics of the reference batch plus itself,

        mu_i = (R mu_r + m_i) / (R + 1),   var_i = (R s_r + q_i) / (R + 1) - mu_i^2,
        y_i  = gamma (x_i - mu_i) / sqrt(var_i + eps) + beta.

    The reference rows are normalised with (mu_r, s_r - mu_r^2).  Train and eval modes
    compute the same thing (there are no running statistics).
    """

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5):
        super().__init__()
        if reference_size < 1:
            raise ValueError(f"VirtualBatchNorm needs a reference batch of >= 1 examples, got {reference_size}")
        self.reference_size, self.eps = reference_size, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reference_size
        if len(x) < r:
            raise ValueError(f"VirtualBatchNorm: the input has {len(x)} rows, fewer than the reference batch ({r})")
        spatial = tuple(range(2, x.ndim))
        m = x.mean(dim=spatial) if spatial else x  # (N, C) per-example channel means
        q = (x * x).mean(dim=spatial) if spatial else x * x
        mu_r, s_r = m[:r].mean(0), q[:r].mean(0)  # (C,)
        mu = torch.cat([mu_r.expand(r, -1), (r * mu_r + m[r:]) / (r + 1)])
        sq = torch.cat([s_r.expand(r, -1), (r * s_r + q[r:]) / (r + 1)])
        var = (sq - mu * mu).clamp_min(0.0)
        shape = (len(x), x.shape[1]) + (1,) * len(spatial)
        y = (x - mu.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        cshape = (1, x.shape[1]) + (1,) * len(spatial)
        return y * self.weight.reshape(cshape) + self.bias.reshape(cshape)


class ConditionalBatchNorm(nn.Module):
    """Batch norm with class-dependent gain and bias (BigGAN's conditional BN):

        y = (1 + W_g e) * BN(x) + W_b e,

    BN without its own affine parameters, e the (B, E) embedding of the class that the
    generator computes once and shares between all its conditional BN layers, W_g and
    W_b zero-initialised (every layer starts as plain batch norm).
    """

    def __init__(self, num_features: int, embed_features: int, image: bool):
        super().__init__()
        self.norm = (nn.BatchNorm2d if image else nn.BatchNorm1d)(num_features, affine=False)
        self.gain = nn.Linear(embed_features, num_features, bias=False)
        self.shift = nn.Linear(embed_features, num_features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        shape = (len(x), x.shape[1]) + (1,) * (x.ndim - 2)
        return (1 + self.gain(embedding)).reshape(shape) * self.norm(x) + self.shift(embedding).reshape(shape)


class ReferenceBatch(nn.Module):
    """The fixed reference batch of a generator with virtual batch norm: ``size`` latent draws
    z_ref ~ N(0, I) from a fixed seed (buffers, saved with the weights) and, for a conditional
    generator, contexts that cycle one-hot over the context features.  :meth:`prepend` puts
    them in front of every batch; the generator drops those rows from its output."""

    def __init__(self, size: int, latent: int, context_features: int = 0, seed: int = 0):
        super().__init__()
        self.size = size
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("z", torch.randn(size, latent, generator=g))
        ctx = torch.zeros(size, context_features)
        if context_features:
            ctx[torch.arange(size), torch.arange(size) % context_features] = 1.0
        self.register_buffer("context", ctx)

    def prepend(self, z: torch.Tensor, context: torch.Tensor | None):
        z = torch.cat([self.z.to(z.dtype), z])
        if context is not None:
            context = torch.cat([self.context.to(context.dtype), context])
        return z, context


def norm_layer(kind: str, num_features: int, image: bool, embed_features: int = 0,
               reference_size: int = 0) -> nn.Module:
    """The normalisation ``kind`` of a generator layer: "batch", "virtual" or "conditional"."""
    if kind == "batch":
        return (nn.BatchNorm2d if image else nn.BatchNorm1d)(num_features)
    if kind == "virtual":
        return VirtualBatchNorm(num_features, reference_size)
    if kind == "conditional":
        return ConditionalBatchNorm(num_features, embed_features, image)
    raise ValueError(f"unknown generator normalisation {kind!r} (batch, virtual, conditional)")


def generator_inputs(reference: "ReferenceBatch | None", embed: nn.Module | None, z: torch.Tensor,
                     context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """What a normalised generator feeds its first layer: (input, class embedding or None, r).

    With virtual BN the reference batch is put in front (r = its size: the caller drops the first
    r output rows); with conditional BN the context becomes the shared embedding and is not
    appended to z; otherwise a context is appended to z."""
    r = 0
    if reference is not None:
        r = reference.size
        z, context = reference.prepend(z, context)
    if embed is not None:
        return z, embed(context), r
    if context is not None:
        z = torch.cat([z, context], -1)
    return z, None, r


def run_layers(layers, h: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
    """Apply ``layers`` in order; conditional BN layers also receive the class ``embedding``."""
    for layer in layers:
        h = layer(h, embedding) if isinstance(layer, ConditionalBatchNorm) else layer(h)
    return h


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every Linear / Conv / ConvTranspose weight of
    ``module``, in place: W -> W / sigma(W), sigma estimated by one power iteration per training
    forward (torch's parametrization; u and v are buffers, saved with the weights)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            spectral_norm(m)
    return module
