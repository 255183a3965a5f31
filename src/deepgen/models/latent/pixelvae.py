"""PixelVAE (Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez & Courville 2017): a VAE whose decoder is a
small gated PixelCNN conditioned on the latent through location-dependent feature maps.

Model.  z ~ N(0, I_d); a conv decoder turns z into feature maps m(z) (B, F, H, W) (the VAE's
ConvDecoder with F = ``pixel_channels`` output channels), and the image is autoregressive given them,
in the raster order with channels inside a pixel:

    log p(x | z) = sum_{i, j} sum_{ch} log p(x_{ch,i,j} | x_{:, <i, :}, x_{:, i, <j}, x_{<ch, i, j}, m(z))

every conditional from one pass of a gated PixelCNN (:mod:`deepgen.nets.gated_pixelcnn`) whose gates
all receive m(z) through 1x1 convolutions (tanh(W_f * x + M_f * m) * sigmoid(W_g * x + M_g * m)).  Each
conditional is normalized on the data's levels (categorical up to 32 levels, Bernoulli for 2, a
mixture of discretized logistics above, a Gaussian mixture on continuous images), so log p(x | z)
is an exact discrete log-probability.  A few layers (``pixel_layers``) give a local decoder: it
models the fine texture, and the global shape must come through z.

Inference network q(z | x) = N(mu(x), diag sigma(x)^2) (the VAE's conv encoder, optionally followed by
a planar / IAF flow).  Training maximises

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || N(0, I))
    loss    = -(rec - beta * sum_j max(lambda, KL_j))        ("free bits" lambda = ``free_bits``)

with KL_j the batch mean of latent j's analytic KL (Kingma et al. 2016): below lambda nats a latent's
KL gets no gradient, which keeps the autoregressive decoder from making q collapse onto the prior.
``free_bits=0`` and ``beta=1`` give the negative ELBO.  ``elbo`` and ``log_prob`` always use the
plain bound: ``log_prob`` is the importance-weighted IWAE_k of :class:`~deepgen.models.latent.vae.VAE`
(one PixelCNN pass per importance sample; exact conditionals, so the bound is as for any VAE).

Decoding (``decode``, ``sample``) is ancestral: H W C sequential steps; step (i, j, ch) runs the net
on rows 0..i (with the maps' rows 0..i) and draws x_{ch,i,j} from its conditional.  ``mean=True``
takes each conditional's mode instead of a draw (a greedy decode: the image is on the data's
levels, deterministic given z; not E[x | z], which has no closed form here).
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import standard_normal_log_prob
from deepgen.errors import ConfigError
from deepgen.models.autoregressive.base import OUTPUT_HEADS, output_head
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.latent.posteriors import POSTERIORS, FlowPosterior
from deepgen.models.latent.vae import VAE
from deepgen.nets import ConvDecoder, ConvEncoder
from deepgen.nets.gated_pixelcnn import GatedPixelCNNNet

# Examples per PixelCNN pass in log_likelihood (see there).
_ROWS = 1024


class PixelVAE(VAE):
    """VAE with a gated-PixelCNN decoder conditioned on feature maps of z (images only).

    ``channels`` / ``depth``: the conv encoder and the z -> maps conv decoder (as the VAE's arch conv).
    ``pixel_layers`` / ``pixel_channels`` / ``pixel_kernel``: the PixelCNN (``pixel_channels`` is also
    the number of feature maps of z).  ``output``: each conditional's head (see gated-pixelcnn).
    ``free_bits``: nats per latent dimension below which the KL is not penalised (training only).
    """

    name = "pixelvae"
    density = "bound"
    capabilities = VAE.capabilities
    data_shapes = frozenset({"image"})
    description = ("PixelVAE: VAE whose decoder p(x | z) is a small gated PixelCNN conditioned on feature maps "
                   "of z (IWAE log p(x), images)")
    # digits: pixel_layers 4 + free bits 0.5 + dropout 0.3, 1500 steps of batch 64 at lr 2e-3: test IWAE 78.2 (k=50);
    # without free bits the KL stays near 0.2 nats (q collapses onto the prior)
    train_defaults = {"steps": 1500, "batch_size": 64, "lr": 2e-3}

    param_constraints = {"latent": ">= 1", "channels": ">= 1", "depth": ">= 0", "pixel_layers": ">= 1",
                         "pixel_channels": ">= 1", "pixel_kernel": ">= 2", "dropout": "in [0, 1)",
                         "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1", "beta": ">= 0",
                         "free_bits": ">= 0", "iw_samples": ">= 1", "posterior": POSTERIORS,
                         "posterior_layers": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, channels: int = 64, depth: int = 2, pixel_layers: int = 4,
                 pixel_channels: int = 32, pixel_kernel: int = 3, dropout: float = 0.3, output: str = "auto",
                 components: int = 5, beta: float = 1.0, free_bits: float = 0.5, iw_samples: int = 100,
                 posterior: str = "gaussian", posterior_layers: int = 4, context_features: int = 0,
                 standardize: bool = True):
        """Build a PixelVAE for image data ``spec`` (C, H, W).

        Args:
            latent: dimension of the latent z ~ N(0, I).
            channels: channels at the coarsest resolution of the conv encoder and of the z -> maps decoder.
            depth: stride-2 stages of the conv encoder and decoder (H and W divisible by 2^depth).
            pixel_layers: gated layers of the PixelCNN decoder (few: a local decoder leaves the shape to z).
            pixel_channels: features of each PixelCNN stack, and feature maps of z (at least C).
            pixel_kernel: k of each gated layer's k x k receptive field.
            dropout: dropout on the PixelCNN's horizontal-stack gates (training only).
            output: each conditional p(x_d | x_<d, z): "auto" (bernoulli for 2 levels, categorical up to 32
                levels, logistic-mixture above, gaussian-mixture for continuous data) or one of the heads.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            beta: weight of the KL term in the training loss (1: the ELBO; log_prob always uses 1).
            free_bits: KL floor in nats per latent dimension in the training loss (0: none).
            iw_samples: importance samples k of log_prob's IWAE bound (and of scores).
            posterior: q(z | x): "gaussian" (diagonal), "planar" or "iaf" (a flow on a diagonal-Gaussian draw).
            posterior_layers: flow steps of a planar or iaf posterior.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                it enters the encoder and the z -> maps decoder.
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        # Not VAE.__init__: this model's hyper-parameters differ; the VAE's methods only need the attributes below.
        LatentModel.__init__(self, spec, latent=latent, channels=channels, depth=depth, pixel_layers=pixel_layers,
                             pixel_channels=pixel_channels, pixel_kernel=pixel_kernel, dropout=dropout,
                             output=output, components=components, beta=beta, free_bits=free_bits,
                             iw_samples=iw_samples, posterior=posterior, posterior_layers=posterior_layers,
                             context_features=context_features, standardize=standardize)
        if not spec.is_image:
            raise ConfigError(f"{self.name} expects images (C, H, W); data '{spec.name}' has shape "
                              f"{tuple(spec.shape)} (for vectors use vae)")
        c = spec.shape[0]
        if pixel_channels < c:
            raise ConfigError(f"{self.name}: pixel_channels ({pixel_channels}) must be at least the image's {c} "
                              "channels (one feature group per channel)")
        self.arch = "conv"
        self.decoder_kind, self.output = output_head(self.name, spec, output, components)
        self.latent = latent
        self.beta = beta
        self.free_bits = free_bits
        self.iw_samples = iw_samples
        self.flow = None if posterior == "gaussian" else FlowPosterior(posterior, latent, posterior_layers,
                                                                        4 * latent)
        q_out = 2 * latent + (0 if self.flow is None else self.flow.features)
        self.encoder = ConvEncoder(spec.shape, q_out, channels, depth, context_features)
        self.decoder = ConvDecoder(spec.shape, latent, pixel_channels, channels, depth, context_features)
        self.pixel = GatedPixelCNNNet(c, self.output.params_per_dim, pixel_channels, pixel_layers, pixel_kernel,
                                      0, dropout, cond_channels=pixel_channels)
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)

    # --- the autoregressive decoder ---------------------------------------------------
    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        """Model-space x as the PixelCNN's input: discrete levels mapped to [-1, 1]."""
        return y if self.spec.levels is None else 2 * y / (self.spec.levels - 1) - 1

    def feature_maps(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """m(z): (B, pixel_channels, H, W), the maps every gate of the PixelCNN sees."""
        return self.decoder(z, context)

    def _pixel_params(self, y: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W, K) conditionals' parameters for the H' rows of model-space y (maps cropped alike)."""
        b, c, h, w = y.shape
        out = self.pixel(self._scaled(y), cond=maps[:, :, :h])
        return out.view(b, c, -1, h, w).permute(0, 1, 3, 4, 2)

    def conditionals(self, x: torch.Tensor, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D, K) parameters of p(x_d | x_<d, z) for every dim d (flattened (C, H, W) order)."""
        y = self.to_model_space(x)
        return self._pixel_params(y, self.feature_maps(z, context)).reshape(len(x), self.spec.dim, -1)

    def log_likelihood(self, x, z, context=None) -> torch.Tensor:
        """log p(x | z) = sum_d log p(x_d | x_<d, z) per example (nats, data units; one PixelCNN pass).

        Run in slices of ``_ROWS`` examples: log_prob hands over k x B rows at once, and on a CPU the
        PixelCNN is 2-3x faster per image on a thousand rows than on tens of thousands (cache-bound)."""
        if len(x) > _ROWS:
            return torch.cat([self.log_likelihood(x[i:i + _ROWS], z[i:i + _ROWS],
                                                  None if context is None else context[i:i + _ROWS])
                              for i in range(0, len(x), _ROWS)])
        y = self.to_model_space(x)
        lp = self.output.log_prob(y.reshape(len(x), -1), self.conditionals(x, z, context))
        return lp.sum(-1) + self.preprocess_log_det()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False,
               temperature: float = 1.0) -> torch.Tensor:
        """Ancestral draw x ~ p(x | z) on the data's scale, pixel by pixel in the raster order (channels inside
        a pixel); ``mean=True`` takes each conditional's mode (greedy decode).  ``temperature`` scales each
        conditional as in the autoregressive models (0: the mode)."""
        c, h, w = self.spec.shape
        maps = self.feature_maps(z, None if context is None else context.to(z.dtype))
        y = torch.zeros(len(z), c, h, w, device=z.device, dtype=z.dtype)
        t = 0.0 if mean else temperature
        was_training = self.training
        self.eval()  # dropout off: every step sees the network that log_prob sees in evaluation
        try:
            for row in range(h):
                for col in range(w):
                    for ch in range(c):
                        params = self._pixel_params(y[:, :, : row + 1], maps)[:, ch, row, col]
                        y[:, ch, row, col] = self.output.sample(params, t)
        finally:
            self.train(was_training)
        return self.from_model_space(y)

    # --- objectives ---------------------------------------------------------------
    def loss(self, batch) -> dict[str, torch.Tensor]:
        """-(rec - beta sum_j max(free_bits, KL_j)) averaged over the batch (KL_j: batch mean of latent j's KL);
        also reports elbo, kl and rec (nats per example)."""
        x, context = unpack_batch(batch)
        mu, log_std, h = self.posterior(x, context)
        z, log_q = self.draw_posterior(mu, log_std, h, torch.randn_like(mu))
        rec = self.log_likelihood(x, z, context)
        if self.flow is None:
            kl_dims = 0.5 * (mu**2 + torch.exp(2 * log_std) - 1) - log_std  # (B, latent): the analytic KL per dim
            kl = kl_dims.sum(-1)
        else:  # a flow's KL by the same draw; free bits then act on the whole KL (latent * free_bits)
            kl = log_q - standard_normal_log_prob(z)
            kl_dims = kl[:, None] / self.latent
        penalty = torch.clamp(kl_dims.mean(0), min=self.free_bits).sum() if self.free_bits > 0 else kl.mean()
        loss = -rec.mean() + self.beta * penalty
        return {"loss": loss, "elbo": (rec - kl).mean().detach(), "kl": kl.mean().detach(),
                "rec": rec.mean().detach()}

    # --- generation -----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """z ~ N(0, I), then x ~ p(x | z) pixel by pixel, each conditional at ``temperature`` (0: its mode; or
        ``mean=True``), on the data's scale."""
        if not temperature >= 0:
            raise ConfigError(f"{self.name}: temperature must be >= 0, got {temperature}")
        context = self.check_context(context, n)
        m = self._device_marker
        z = torch.randn(n, self.latent, device=m.device, dtype=m.dtype)
        return self.decode(z, context, mean=mean, temperature=temperature)
