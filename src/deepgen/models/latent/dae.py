"""Denoising autoencoder (Vincent et al. 2008): an autoencoder that reconstructs x from a corrupted x~.

Everything is the :class:`~deepgen.models.latent.ae.Autoencoder` (same networks, same
reconstruction errors, same fitted code Gaussian for sampling) except what the encoder
sees in training: a corrupted copy x~ ~ q(x~ | x), while the loss still scores the
*clean* x,

    loss = 1/B sum_i err(x_i, g(f(u(x~_i)))),     x~_i ~ q(. | x_i),

so the network must learn to undo the corruption.  On the unit scale u (levels
k / (L - 1) in [0, 1], continuous data standardised) with p = ``noise_level``:

    gaussian     u~ = u + p eps,  eps ~ N(0, I)                 (p: a standard deviation)
    masking      u~_d = 0 with probability p, else u_d          (level 0; the feature mean for
                                                                 standardised continuous data)
    salt-pepper  u~_d = lo_d or hi_d, each with probability p/2, else u_d
                 (lo, hi: levels 0 and L - 1; for continuous data the training split's
                 per-feature minimum and maximum, recorded by ``fit_preprocessing``)

Corrupted discrete data are put back on their levels (clamped, rounded), so the
network is trained on exactly what :meth:`DenoisingAutoencoder.corrupt` produces.
Corruption happens in training mode only; evaluation (validation loss, reconstruct,
encode) sees the input as given.  The moving code statistics are taken from the
codes of the clean inputs, so ``sample`` and ``traverse`` see clean codes.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.latent.ae import Autoencoder

NOISES = ("gaussian", "masking", "salt-pepper")


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder: the :class:`Autoencoder` trained to reconstruct clean x from a corrupted copy
    (``noise`` gaussian / masking / salt-pepper of strength ``noise_level``, training mode only)."""

    name = "dae"
    description = ("denoising autoencoder (no density): reconstructs clean x from a gaussian / masking / "
                   "salt-pepper corrupted copy; samples decode a Gaussian fitted to the codes")
    param_constraints = {**Autoencoder.param_constraints, "noise": NOISES, "noise_level": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 256, channels: int = 64, depth: int = 2,
                 arch: str = "auto", recon: str = "mse", linear: bool = False, noise: str = "gaussian",
                 noise_level: float = 0.25, context_features: int = 0, standardize: bool = True):
        """Build a denoising autoencoder for data ``spec``.

        Args:
            latent: dimension of the code z.
            hidden: units per hidden layer of the MLP encoder and decoder (arch mlp).
            channels: channels at the coarsest resolution of the conv encoder/decoder (arch conv).
            depth: hidden layers of each MLP, or stride-2 stages of each conv net.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            recon: reconstruction error: "mse" (squared error on the unit scale), "bce" (discrete data) or
                "nll" (a normalised decoder likelihood, nats).
            linear: affine encoder and decoder, no activations.
            noise: corruption of the training inputs: "gaussian", "masking" or "salt-pepper".
            noise_level: gaussian: noise std on the unit scale; masking / salt-pepper: fraction of entries hit.
            context_features: size of the context vector of a conditional model (0: unconditional).
            standardize: continuous data: work on (x - mean) / std per feature.
        """
        if noise in ("masking", "salt-pepper") and noise_level > 1:
            raise ConfigError(f"dae: noise_level is the fraction of entries that {noise} hits, so it must be in "
                              f"[0, 1]; got {noise_level}")
        super().__init__(spec, latent=latent, hidden=hidden, channels=channels, depth=depth, arch=arch,
                         recon=recon, linear=linear, context_features=context_features, standardize=standardize,
                         noise=noise, noise_level=noise_level)
        self.noise, self.noise_level = noise, float(noise_level)
        if spec.levels is None:
            # salt-pepper extremes of continuous data, per feature (per channel for images), data units
            self.register_buffer("data_min", torch.full_like(self.data_loc, -3.0))
            self.register_buffer("data_max", torch.full_like(self.data_loc, 3.0))

    @torch.no_grad()
    def fit_preprocessing(self, x: torch.Tensor) -> None:
        """The base's standardisation, and (continuous data) the training split's per-feature minimum and
        maximum: salt-pepper's extremes (-3 and 3 until fitted)."""
        super().fit_preprocessing(x)
        if self.spec.levels is None and len(x):
            x = x.to(self.data_min.device, self.data_min.dtype)
            dims = (0, 2, 3) if self.spec.is_image else (0,)
            self.data_min.copy_(x.amin(dims).reshape(self.data_min.shape))
            self.data_max.copy_(x.amax(dims).reshape(self.data_max.shape))

    @torch.no_grad()
    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """A corrupted copy of ``x`` (data scale in, data scale out; discrete data stay on their levels),
        drawn with the global RNG: see the module doc for each ``noise``."""
        u = self.to_unit(x)
        p = self.noise_level
        if self.noise == "gaussian":
            u = u + p * torch.randn_like(u)
        elif self.noise == "masking":
            u = torch.where(torch.rand_like(u) < p, torch.zeros_like(u), u)
        else:
            if self.spec.levels is not None:
                lo, hi = torch.zeros_like(u), torch.ones_like(u)
            else:
                lo, hi = (self.to_unit(b).expand_as(u) for b in (self.data_min, self.data_max))
            r = torch.rand_like(u)
            u = torch.where(r < p / 2, lo, torch.where(r < p, hi, u))
        out = self.from_unit(u)
        return torch.round(out) if self.spec.levels is not None else out

    def training_input(self, x: torch.Tensor) -> torch.Tensor:
        """The corrupted copy the encoder sees in training (the loss scores the clean x)."""
        return self.corrupt(x) if self.noise_level > 0 else x
