"""Variational autoencoder (Kingma & Welling 2014) with an importance-weighted log p(x).

Model.  z ~ N(0, I_d),  x | z ~ p_theta(x | z)   (a normalized likelihood on the
data's own scale, see :mod:`deepgen.distributions.outputs`).  Inference network
q_phi(z | x) = N(mu_phi(x), diag sigma_phi(x)^2).

Training maximises the evidence lower bound with one reparameterized sample
z = mu + sigma * eps, eps ~ N(0, I), and the analytic KL to the prior:

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || N(0, I))
    KL      = sum_j 1/2 (mu_j^2 + sigma_j^2 - 1) - log sigma_j
    loss    = -(rec - beta * KL)                     (beta = 1: the negative ELBO)

``log_prob`` is the importance-weighted bound (Burda et al. 2016)

    log p(x) >= IWAE_k(x) = E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],   z_i ~ q(z | x),

estimated with one draw of k samples.  IWAE_1 is the ELBO (in expectation),
IWAE_k grows with k and tends to log p(x) as k -> infinity.  On discrete data
log p(x | z) is a discrete log-probability, so log_prob estimates log P(k).

Flow posteriors (``posterior=planar|iaf``, :mod:`deepgen.models.latent.posteriors`): z = f_K o ... o f_1(z_0),
z_0 ~ N(mu, sigma^2), log q(z | x) = log N(z_0; mu, sigma) - sum_k log|det df_k|; the KL is then
estimated with the same draw, KL ~ log q(z | x) - log p(z), and the IWAE weights use this log q.
"""

from __future__ import annotations

import math

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import gaussian_kl, gaussian_log_prob, make_output, resolve_output, standard_normal_log_prob
from deepgen.distributions.outputs import LearnedScaleGaussianOutput
from deepgen.errors import ConfigError
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.latent.posteriors import POSTERIORS, FlowPosterior
from deepgen.nets import MLP, ConvDecoder, ConvEncoder
from deepgen.ops import LOG_2PI

DECODERS = ("bernoulli", "categorical", "logistic", "gaussian", "conditional-gaussian")
# Rows (examples x importance samples) decoded at once in log_prob: bounds memory for any k.
_IW_ROWS = 1 << 15


class ModulatedScaleGaussianOutput(LearnedScaleGaussianOutput):
    """x in R: N(mu, sigma^2) with mu and the log-scale offset a both from the decoder (2 per dimension):

        log sigma_d(z) = log_scale_d + B tanh(a_d(z) / B),   log p(x_d) = -(x_d - mu_d)^2 / (2 sigma_d^2)
                                                                         - log sigma_d - 1/2 log(2 pi)

    The observation noise of ``gaussian`` (one learned log_scale_d per dimension) modulated per code z:
    each pixel's variance may depend on what is drawn (a background pixel is sure, a stroke edge is not).
    The soft bound B keeps the NLL finite when a variance collapses.
    """

    params_per_dim = 2

    def __init__(self, shape: tuple[int, ...], log_std_bound: float = 7.0):
        super().__init__(shape)
        self.log_std_bound = float(log_std_bound)

    def log_std(self, params):
        b = self.log_std_bound
        return self.log_scale + b * torch.tanh(params[..., 1] / b)

    def log_prob(self, x, params):
        log_std = self.log_std(params)
        return -0.5 * ((x - params[..., 0]) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI

    def sample(self, params, temperature=1.0):
        return params[..., 0] + temperature * torch.exp(self.log_std(params)) * torch.randn_like(params[..., 0])


class VAE(LatentModel):
    """VAE with a diagonal-Gaussian encoder and a normalized decoder likelihood.

    ``arch``: "mlp" (flattened data; ``hidden`` units per layer) or "conv" (images; ``channels``
    at the coarsest resolution, halved at each finer one); "auto" picks conv for images.
    ``depth``: hidden layers of each MLP, or stride-2 stages of each conv net; depth 0 with
    arch "mlp" makes encoder and decoder affine (a linear-Gaussian model with decoder gaussian).
    ``decoder``: "auto" = bernoulli (2 levels), logistic (discretized logistic over L > 2
    levels), conditional-gaussian (continuous: mean and a log-scale offset from the decoder on
    top of a learned per-dimension log-scale, :class:`ModulatedScaleGaussianOutput`);
    "gaussian" = one learned variance per dimension, the same for every z; "categorical" = L
    free logits per dimension.
    ``beta`` weights the KL in the training loss only (beta != 1 is no longer a bound);
    ``elbo`` and ``log_prob`` always use beta = 1.  ``iw_samples`` is log_prob's default k.
    ``posterior``: "gaussian" (diagonal), or a flow of ``posterior_layers`` steps on it: "planar" or "iaf".
    """

    name = "vae"
    density = "bound"
    capabilities = frozenset({"log_prob", "elbo", "importance_weighted", "encode", "traverse", "conditional"})
    description = "variational autoencoder: ELBO training, importance-weighted log p(x) (k samples)"
    train_defaults = {"steps": 3000}  # digits: val IWAE bottoms out near 3000 steps, then overfits

    param_constraints = {"latent": ">= 1", "hidden": ">= 1", "channels": ">= 1", "depth": ">= 0",
                         "arch": ("auto", "mlp", "conv"), "decoder": ("auto",) + DECODERS, "beta": ">= 0",
                         "iw_samples": ">= 1", "posterior": POSTERIORS, "posterior_layers": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 256, channels: int = 64, depth: int = 2,
                 arch: str = "auto", decoder: str = "auto", beta: float = 1.0, iw_samples: int = 100,
                 posterior: str = "gaussian", posterior_layers: int = 4, context_features: int = 0,
                 standardize: bool = True):
        """Build a VAE for data ``spec``.

        Args:
            latent: dimension of the latent z ~ N(0, I).
            hidden: units per hidden layer of the MLP encoder and decoder (arch mlp).
            channels: channels at the coarsest resolution of the conv encoder/decoder (arch conv).
            depth: hidden layers of each MLP, or stride-2 stages of each conv net.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            decoder: likelihood p(x | z): "auto", "bernoulli", "categorical", "logistic", "gaussian" (one
                learned variance per dimension) or "conditional-gaussian" (a variance per dimension and z;
                the default on continuous data).
            beta: weight of the KL term in the training loss (1: the ELBO; log_prob always uses 1).
            iw_samples: importance samples k of log_prob's IWAE bound (and of scores).
            posterior: q(z | x): "gaussian" (diagonal), "planar" (amortized planar flow) or "iaf" (inverse
                autoregressive flow) on a diagonal-Gaussian draw.
            posterior_layers: flow steps of a planar or iaf posterior.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, latent=latent, hidden=hidden, channels=channels, depth=depth, arch=arch,
                         decoder=decoder, beta=beta, iw_samples=iw_samples, posterior=posterior,
                         posterior_layers=posterior_layers, context_features=context_features,
                         standardize=standardize)
        if arch == "auto":
            arch = "conv" if spec.is_image else "mlp"
        if arch == "conv" and not spec.is_image:
            raise ConfigError(f"vae arch 'conv' needs images (C, H, W); data '{spec.name}' has shape {spec.shape}")
        self.arch = arch
        # "auto": bernoulli (2 levels), logistic (L > 2 levels: its unimodal, ordinal shape generalises
        # better than L free logits, 81.5 vs 83.3 nats on digits with the same conv net), and on
        # continuous data a variance that depends on z: on logit-dequantized digits (latent 8, MLP 256x2,
        # 3000 steps, benchmarks/vae_vs_peers.py) the per-dimension "gaussian" ended 1.5-3 nats behind
        # normflows' and pythae's same-size VAEs, whose decoders emit a variance; this head ends 1.1-1.4
        # nats ahead of them (fresh dequantization noise; with one fixed draw per image all overfit).
        self.decoder_kind = resolve_output(decoder, spec, continuous="conditional-gaussian", allowed=DECODERS,
                                           field="decoder")
        self.likelihood = (ModulatedScaleGaussianOutput(spec.shape) if self.decoder_kind == "conditional-gaussian"
                           else make_output(self.decoder_kind, spec))
        self.latent = latent
        self.beta = beta
        self.iw_samples = iw_samples
        p = self.likelihood.params_per_dim
        self.flow = None if posterior == "gaussian" else FlowPosterior(posterior, latent, posterior_layers,
                                                                        min(hidden, 4 * latent))
        q_out = 2 * latent + (0 if self.flow is None else self.flow.features)
        if arch == "conv":
            self.encoder = ConvEncoder(spec.shape, q_out, channels, depth, context_features)
            self.decoder = ConvDecoder(spec.shape, latent, spec.shape[0] * p, channels, depth, context_features)
        else:
            self.encoder = MLP(spec.dim, q_out, hidden, depth, context_features)
            self.decoder = MLP(latent, spec.dim * p, hidden, depth, context_features)
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)

    # --- networks ---------------------------------------------------------------
    def _encoder_input(self, x):
        # The encoder sees discrete levels scaled to [0, 1]; the likelihood scores the raw levels.
        if self.spec.levels is not None:
            x = x / (self.spec.levels - 1)
        else:
            x = self.to_model_space(x)
        return x if self.arch == "conv" else x.reshape(len(x), -1)

    def posterior(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The posterior's parameters: (mu, log sigma) of the Gaussian q_0(z_0 | x), each (B, latent), and the
        flow's features h (B, F) (None for ``posterior="gaussian"``)."""
        out = self.encoder(self._encoder_input(x), self.check_context(context, len(x)))
        d = self.latent
        return out[:, :d], out[:, d:2 * d], (out[:, 2 * d:] if self.flow is not None else None)

    def draw_posterior(self, mu, log_std, h, eps):
        """(z, log q(z | x)) for noise ``eps`` (..., B, latent): z_0 = mu + sigma eps, then the flow if any."""
        z = mu + torch.exp(log_std) * eps  # reparameterization: gradients reach phi
        log_q = gaussian_log_prob(z, mu, log_std)
        if self.flow is None:
            return z, log_q
        shape = z.shape
        hs = h.expand(*shape[:-1], h.shape[-1]).reshape(-1, h.shape[-1])
        z, log_det = self.flow(z.reshape(-1, shape[-1]), hs)
        return z.reshape(shape), log_q - log_det.reshape(shape[:-1])

    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of x, (B, latent): the posterior mean mu(x), pushed through the flow if any."""
        mu, log_std, h = self.posterior(x, context)
        return mu if self.flow is None else self.flow(mu, h)[0]

    def decoder_params(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's parameters for each z: shape (B, *data shape, P)."""
        p = self.likelihood.params_per_dim
        out = self.decoder(z, context)
        if self.arch == "conv":
            c, h, w = self.spec.shape
            return out.reshape(len(z), p, c, h, w).movedim(1, -1)
        return out.reshape(len(z), *self.spec.shape, p)

    def log_likelihood(self, x, z, context=None) -> torch.Tensor:
        """log p(x | z) per example (nats, data units), summed over every data dimension.

        On continuous data the decoder models y = (x - m) / s: log p(x | z) = log p(y | z) - sum_d log s_d."""
        lp = self.likelihood.log_prob(self.to_model_space(x), self.decoder_params(z, context))
        return lp.reshape(len(x), -1).sum(-1) + self.preprocess_log_det()

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """A draw from p(x | z) on the data's scale, or its mean E[x | z] with ``mean=True``."""
        params = self.decoder_params(z, context)
        return self.from_model_space(self.likelihood.mean(params) if mean else self.likelihood.sample(params))

    # --- objectives ---------------------------------------------------------------
    def _elbo_terms(self, x, context=None):
        mu, log_std, h = self.posterior(x, context)
        z, log_q = self.draw_posterior(mu, log_std, h, torch.randn_like(mu))
        # the Gaussian's KL in closed form; a flow's by the same draw: log q(z | x) - log p(z)
        kl = gaussian_kl(mu, log_std) if self.flow is None else log_q - standard_normal_log_prob(z)
        return self.log_likelihood(x, z, context), kl

    def elbo(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example ELBO (nats): log p(x | z) - KL(q || p), one reparameterized z; analytic KL for the
        Gaussian posterior, the one-sample estimate log q(z | x) - log p(z) for a flow posterior."""
        rec, kl = self._elbo_terms(x, context)
        return rec - kl

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """-(rec - beta KL) averaged over the batch; also reports elbo, kl and rec (nats per example)."""
        x, context = unpack_batch(batch)
        rec, kl = self._elbo_terms(x, context)
        loss = -(rec - self.beta * kl).mean()
        return {"loss": loss, "elbo": (rec - kl).mean().detach(), "kl": kl.mean().detach(),
                "rec": rec.mean().detach()}

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None, k: int | None = None) -> torch.Tensor:
        """IWAE_k estimate of log p(x) per example (nats); k defaults to ``iw_samples``.

            log (1/k) sum_i exp(w_i),   w_i = log p(z_i) + log p(x | z_i) - log q(z_i | x),  z_i ~ q

        The k samples are drawn in chunks sized to bound memory and combined with a streaming
        logsumexp, so k in the thousands fits.
        """
        k = self.iw_samples if k is None else int(k)
        if k < 1:
            raise ConfigError(f"vae log_prob needs k >= 1 importance samples, got {k}")
        b = len(x)
        mu, log_std, h = self.posterior(x, context)
        chunk = max(1, min(k, _IW_ROWS // max(b, 1)))
        total = None
        for start in range(0, k, chunk):
            kc = min(chunk, k - start)
            eps = torch.randn(kc, *mu.shape, dtype=mu.dtype, device=mu.device)
            z, log_q = self.draw_posterior(mu, log_std, h, eps)  # (kc, B, latent), (kc, B)
            log_pz = standard_normal_log_prob(z)
            xs = x.unsqueeze(0).expand(kc, *x.shape).reshape(kc * b, *x.shape[1:])
            cs = None if context is None else context.unsqueeze(0).expand(kc, *context.shape).reshape(kc * b, -1)
            log_px = self.log_likelihood(xs, z.reshape(kc * b, -1), cs).reshape(kc, b)
            lse = torch.logsumexp(log_pz + log_px - log_q, 0)
            total = lse if total is None else torch.logaddexp(total, lse)
        return total - math.log(k)

    # --- generation -----------------------------------------------------------------
    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """z ~ N(0, T^2 I), then x ~ p(x | z) (or E[x | z] with ``mean=True``), on the data's scale."""
        context = self.check_context(context, n)
        m = self._device_marker
        z = temperature * torch.randn(n, self.latent, device=m.device, dtype=m.dtype)
        return self.decode(z, context, mean=mean)
