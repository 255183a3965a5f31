"""Deterministic autoencoder: a bottleneck code z = f(x) and a decoder g(z) trained to reconstruct x.

Scale.  The encoder sees, and squared error / BCE compare on, the *unit scale*
u(x): discrete levels k in {0..L-1} as u = k / (L - 1) in [0, 1], continuous data
standardised per feature, u = (x - m) / s (``standardize``; the data as they are
without it).  With B examples of D entries,

    recon "mse":  loss = 1/B sum_i ||g(f(u_i)) - u_i||^2                (squared error per example)
    recon "bce":  loss = 1/B sum_i sum_d -[u_id log y_id + (1 - u_id) log(1 - y_id)],
                  y = sigmoid(g(f(u)))                                  (discrete data only)
    recon "nll":  loss = -1/B sum_i log p(x_i | z_i),  z_i = f(u_i)     (nats per example)

where p(x | z) is a normalised decoder likelihood on the data's own scale
(:mod:`deepgen.distributions.outputs`: bernoulli for 2 levels, discretized logistic
for L > 2, a Gaussian with a learned variance per entry for continuous data, the
Jacobian of the standardisation counted), as in the VAE.  The reported ``mse`` term
is the mean squared error per entry on the unit scale, whatever ``recon`` is.

Linear autoencoder.  ``linear=true`` makes encoder and decoder affine (an MLP of
depth 0: no activation anywhere): z = A u + a, u_hat = W z + b.  With squared
error the optimum is PCA (Bourlard & Kamp 1988; Baldi & Hornik 1989): the columns
of W span the top-``latent`` principal subspace of the centred training data (the
biases do the centring), the loss has no other local minimum, and
:meth:`Autoencoder.pca_angle` measures the largest principal angle between the two
subspaces.

No density.  An autoencoder defines no p(x) (``density = "none"``; ``log_prob``
raises).  To sample, it fits one after the fact: during training, ``loss`` keeps a
moving average of the mean mu and covariance Sigma of the training codes, merging
the n-th batch as a two-part mixture with weight a = max(1 / n, ``code_momentum``),

    mu'    = (1 - a) mu + a m
    Sigma' = (1 - a) Sigma + a C + a (1 - a) (m - mu)(m - mu)^T        (m, C: the batch's mean and covariance)

(an equal-weight average of the first 1 / a batches, then exponential), saved with
the weights (:meth:`Autoencoder.fit_code_stats` sets them exactly from a data set); ``sample`` draws
z ~ N(mu, T^2 Sigma) and decodes it: an ex-post Gaussian density in latent space, not
a model of the data's density.  ``code_scale`` returns (mu, sqrt(diag Sigma)), so
traversals sweep where the codes live.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deepgen.data.spec import DataSpec
from deepgen.distributions import make_output, resolve_output
from deepgen.errors import ConfigError, DensityError
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.params import signature_params
from deepgen.nets import MLP, ConvDecoder, ConvEncoder

RECONS = ("mse", "bce", "nll")
DECODERS = ("bernoulli", "categorical", "logistic", "gaussian")


class Autoencoder(LatentModel):
    """Deterministic bottleneck autoencoder (MLP or conv), trained on a reconstruction error.

    ``arch``: "mlp" (flattened data; ``hidden`` units per layer) or "conv" (images; ``channels``
    at the coarsest resolution, halved at each finer one); "auto" picks conv for images.
    ``linear``: affine encoder and decoder (arch mlp; ``hidden``/``depth`` unused): with
    ``recon`` mse, PCA.  ``decode`` is deterministic for recon mse/bce (``mean=False`` rounds
    to the nearest level on discrete data); with recon nll it draws from p(x | z).
    """

    name = "ae"
    density = "none"
    capabilities = frozenset({"encode", "traverse", "conditional"})
    description = ("deterministic autoencoder (no density): MLP or conv bottleneck, squared-error / BCE / NLL "
                   "reconstruction; samples decode a Gaussian fitted to the training codes")
    train_defaults = {"steps": 3000}

    param_constraints = {"latent": ">= 1", "hidden": ">= 1", "channels": ">= 1", "depth": ">= 0",
                         "arch": ("auto", "mlp", "conv"), "recon": RECONS, "linear": (False, True),
                         "context_features": ">= 0"}

    # weight a of each training batch in the moving average of the code statistics (after the first
    # 1 / a batches, which are averaged with equal weights): codes drift while the encoder trains, so
    # the average follows the last ~20 batches (2560 codes at batch 128)
    code_momentum = 0.05

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 256, channels: int = 64, depth: int = 2,
                 arch: str = "auto", recon: str = "mse", linear: bool = False, context_features: int = 0,
                 standardize: bool = True, **extra: Any):
        """Build an autoencoder for data ``spec``.

        Args:
            latent: dimension of the code z.
            hidden: units per hidden layer of the MLP encoder and decoder (arch mlp).
            channels: channels at the coarsest resolution of the conv encoder/decoder (arch conv).
            depth: hidden layers of each MLP, or stride-2 stages of each conv net.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            recon: reconstruction error: "mse" (squared error on the unit scale), "bce" (discrete data) or
                "nll" (a normalised decoder likelihood, nats).
            linear: affine encoder and decoder, no activations (with recon mse: PCA).
            context_features: size of the context vector of a conditional model (0: unconditional).
            standardize: continuous data: work on (x - mean) / std per feature.
        """
        unknown = set(extra) - set(signature_params(type(self)))
        if unknown:
            raise ConfigError(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        super().__init__(spec, latent=latent, hidden=hidden, channels=channels, depth=depth, arch=arch,
                         recon=recon, linear=linear, context_features=context_features, standardize=standardize,
                         **extra)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"{self.name}: data '{spec.name}' has {spec.levels} level; need at least 2")
        if arch == "auto":
            arch = "conv" if spec.is_image and not linear else "mlp"
        if arch == "conv" and not spec.is_image:
            raise ConfigError(f"{self.name} arch 'conv' needs images (C, H, W); data '{spec.name}' has shape "
                              f"{spec.shape}")
        if arch == "conv" and linear:
            raise ConfigError(f"{self.name}: linear=true makes encoder and decoder affine maps; use arch mlp "
                              "(or auto), not conv")
        if recon == "bce" and spec.levels is None:
            raise ConfigError(f"{self.name}: recon 'bce' needs discrete data (levels scaled to [0, 1]); data "
                              f"'{spec.name}' is continuous: use recon mse or nll")
        self.arch, self.recon, self.linear, self.latent = arch, recon, linear, latent
        self.likelihood = None
        p = 1
        if recon == "nll":
            self.decoder_kind = resolve_output("auto", spec, allowed=DECODERS, field="decoder")
            self.likelihood = make_output(self.decoder_kind, spec)
            p = self.likelihood.params_per_dim
        self.params_per_dim = p
        if arch == "conv":
            self.encoder = ConvEncoder(spec.shape, latent, channels, depth, context_features)
            self.decoder = ConvDecoder(spec.shape, latent, spec.shape[0] * p, channels, depth, context_features)
        else:
            d = 0 if linear else depth
            self.encoder = MLP(spec.dim, latent, hidden, d, context_features)
            self.decoder = MLP(latent, spec.dim * p, hidden, d, context_features)
        self.register_buffer("code_mean", torch.zeros(latent))
        self.register_buffer("code_cov", torch.eye(latent))
        self.register_buffer("code_updates", torch.zeros((), dtype=torch.long))

    # --- scales -------------------------------------------------------------------
    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> unit scale: k / (L - 1) for discrete levels, standardised (x - m) / s for continuous data."""
        if self.spec.levels is not None:
            return x / (self.spec.levels - 1)
        return self.to_model_space(x)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        """Unit scale -> data: u (L - 1) clamped to [0, L - 1] (not rounded), or u s + m for continuous data."""
        if self.spec.levels is not None:
            return (u * (self.spec.levels - 1)).clamp(0, self.spec.levels - 1)
        return self.from_model_space(u)

    # --- networks -------------------------------------------------------------------
    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The code z = f(u(x)), (B, latent)."""
        u = self.to_unit(x)
        return self.encoder(u if self.arch == "conv" else u.reshape(len(x), -1), self.check_context(context, len(x)))

    def decoder_params(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's output for each z, shape (B, *data shape, P): the unit-scale reconstruction
        (mse), its logits (bce), or the likelihood's P parameters per entry (nll)."""
        p = self.params_per_dim
        out = self.decoder(z, self.check_context(context, len(z)))
        if self.arch == "conv":
            c, h, w = self.spec.shape
            return out.reshape(len(z), p, c, h, w).movedim(1, -1)
        return out.reshape(len(z), *self.spec.shape, p)

    def _unit_mean(self, params: torch.Tensor) -> torch.Tensor:
        """The reconstruction on the unit scale (unclamped for mse)."""
        if self.recon == "mse":
            return params[..., 0]
        if self.recon == "bce":
            return torch.sigmoid(params[..., 0])
        m = self.likelihood.mean(params)
        return m / (self.spec.levels - 1) if self.spec.levels is not None else m

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """g(z) on the data's scale.  recon mse/bce: the decoder's output (clamped to [0, L - 1] on
        discrete data; ``mean=False`` rounds it to the nearest level).  recon nll: E[x | z] with
        ``mean=True``, else a draw from p(x | z)."""
        params = self.decoder_params(z, context)
        if self.recon == "nll" and not mean:
            return self.from_model_space(self.likelihood.sample(params))
        x = self.from_unit(self._unit_mean(params))
        return torch.round(x) if self.spec.levels is not None and not mean else x

    # --- objective --------------------------------------------------------------------
    def training_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of a training batch x (data scale): x itself (a DAE corrupts it)."""
        return x

    def reconstruction_error(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Per-example reconstruction error of clean ``x`` (data scale) given decoder output ``params``,
        summed over entries: squared error or BCE on the unit scale, or -log p(x | z) in nats."""
        if self.recon == "nll":
            lp = self.likelihood.log_prob(self.to_model_space(x), params).reshape(len(x), -1).sum(-1)
            return -(lp + self.preprocess_log_det())
        u = self.to_unit(x)
        if self.recon == "bce":
            err = F.binary_cross_entropy_with_logits(params[..., 0], u, reduction="none")
        else:
            err = (params[..., 0] - u) ** 2
        return err.reshape(len(x), -1).sum(-1)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Mean reconstruction error of the clean batch; terms ``recon`` (the same, per example: squared
        error, BCE or nats) and ``mse`` (mean squared error per entry of the mean reconstruction, unit scale).  In training mode it
        also updates the moving code statistics (codes of the clean inputs)."""
        x, context = unpack_batch(batch)
        seen = self.training_input(x) if self.training else x
        z = self.encode(seen, context)
        if self.training:
            if seen is x:
                self._track_codes(z)
            else:
                with torch.no_grad():
                    self._track_codes(self.encode(x, context))
        params = self.decoder_params(z, context)
        recon = self.reconstruction_error(x, params).mean()
        with torch.no_grad():  # the error of reconstruct(x), i.e. clamped to the levels' range
            mse = ((self.to_unit(self.from_unit(self._unit_mean(params))) - self.to_unit(x)) ** 2).mean()
        return {"loss": recon, "recon": recon.detach(), "mse": mse}

    # --- the fitted latent Gaussian -------------------------------------------------------
    @torch.no_grad()
    def _track_codes(self, z: torch.Tensor) -> None:
        """Merge batch codes ``z`` (B, latent) into the moving mean and covariance (see the module doc)."""
        z = z.detach().to(self.code_mean.dtype)
        m = z.mean(0)
        zc = z - m
        c = zc.T @ zc / len(z)
        a = max(1.0 / (int(self.code_updates) + 1), self.code_momentum)
        dm = m - self.code_mean
        cov = (1 - a) * self.code_cov + a * c + a * (1 - a) * torch.outer(dm, dm)
        self.code_mean.add_(a * dm)
        self.code_cov.copy_((cov + cov.T) / 2)
        self.code_updates += 1

    @torch.no_grad()
    def fit_code_stats(self, x: torch.Tensor, context: torch.Tensor | None = None, batch_size: int = 1024) -> None:
        """Set the code mean and covariance exactly to those of the codes of ``x`` (e.g. the whole training
        split after training), in place of the moving averages."""
        z = torch.cat([self.encode(x[i:i + batch_size], None if context is None else context[i:i + batch_size])
                       for i in range(0, len(x), batch_size)]).to(self.code_mean.dtype)
        zc = z - z.mean(0)
        self.code_mean.copy_(z.mean(0))
        self.code_cov.copy_(zc.T @ zc / len(z))
        self.code_updates.fill_(max(int(self.code_updates), 1))

    def code_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the training codes: the moving statistics (0 and 1 before training)."""
        return self.code_mean.clone(), self.code_cov.diagonal().clamp(min=0).sqrt()

    def code_factor(self) -> torch.Tensor:
        """A square root R of the code covariance, R R^T = Sigma (eigenvalues clamped at 0), (latent, latent)."""
        w, v = torch.linalg.eigh(self.code_cov)
        return v * w.clamp(min=0).sqrt()

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """z ~ N(mu, T^2 Sigma), the Gaussian fitted to the training codes, decoded (see :meth:`decode`)."""
        context = self.check_context(context, n)
        eps = torch.randn(n, self.latent, device=self.code_mean.device, dtype=self.code_mean.dtype)
        z = self.code_mean + temperature * eps @ self.code_factor().T
        return self.decode(z, context, mean=mean)

    def log_prob(self, x, context=None):
        raise DensityError(
            f"{self.name}: an autoencoder is not a density model: it learns a code and a reconstruction, "
            "never a normalised p(x), so it has no log-likelihood; judge it by its reconstruction error "
            "(`loss`, reconstruct) and its samples (decoded from a Gaussian fitted to its codes)"
        )

    # --- the linear autoencoder is PCA --------------------------------------------------------
    @torch.no_grad()
    def pca_angle(self, x: torch.Tensor) -> float:
        """Largest principal angle (radians) between the span of a linear autoencoder's decoder columns
        and the top-``latent`` principal subspace of the centred data ``x`` on the unit scale: 0 when the
        linear autoencoder has found PCA's subspace.  Computed as arcsin of the largest singular value of
        (I - V V^T) Q, with V the principal directions and Q an orthonormal basis of the decoder's columns."""
        if not self.linear or self.recon != "mse" or self.context_features:
            raise ConfigError(f"{self.name}: pca_angle compares a linear, unconditional autoencoder with recon mse "
                              "to PCA; this one is not (set linear=true, recon=mse)")
        u = self.to_unit(x).reshape(len(x), -1).double()
        _, _, vh = torch.linalg.svd(u - u.mean(0), full_matrices=False)
        v = vh[: self.latent].T
        q, _ = torch.linalg.qr(self.decoder.out.weight.double())
        sines = torch.linalg.svdvals(q - v @ (v.T @ q))
        return float(torch.arcsin(sines.max().clamp(max=1.0)))
