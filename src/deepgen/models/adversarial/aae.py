"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose aggregate code distribution is
matched to a prior p(z) by a discriminator on codes.

Model.  An encoder z = E(x) (deterministic, the paper's simplest form; or a Gaussian
q(z | x) = N(mu(x), diag sigma(x)^2) sampled with z = mu + sigma eps), a decoder with a normalised
likelihood p(x | z) (:mod:`deepgen.distributions`, as the VAE's), and a code discriminator
D(z) = sigmoid(l(z)) telling prior draws z_p ~ p(z) (real) from codes z = E(x) (fake).

The game (the paper's two phases on one batch):

    reconstruction   min_{E, Dec}  L_rec = E_x -log p(x | z = E(x))                       (nats)
    regularisation   min_D  L_D = -E_{z_p} log D(z_p) - E_x log(1 - D(E(x)))
                     min_E  L_G = -E_x log D(E(x))                       (non-saturating)

At the optimum of the regularisation phase the aggregate posterior q(z) = E_x q(z | x) equals
p(z), so decoding prior draws gives samples of the data: ``sample`` decodes z ~ p(z).

Players (:mod:`deepgen.training.adversarial`).  Each parameter belongs to exactly one player, and the
encoder is updated in both phases, so the phases that move it are one player:

    1. ``discriminator`` (``d_steps`` updates): L_D on prior draws and the detached codes;
    2. ``autoencoder`` (encoder + decoder + the likelihood's own parameters):
       L_rec + ``adversarial_weight`` * L_G, with D(E(x)) recomputed through the just-updated D.

Summing the two encoder losses in one Adam update, instead of the paper's two SGD steps, keeps
the adapter's rule (no parameter in two players) and needs no stale graphs: the codes of the
shared pass are built from parameters no earlier player updated.  The price is one weight,
``adversarial_weight`` = lambda, where the paper had two learning rates.  Adam scales each
parameter's step, so lambda sets the direction, not the size, of the encoder's update: on digits
(3000 steps) lambda = 1 matched the codes to N(0, I) far better than lambda = 10 (code energy
distance 0.067 vs 0.72; larger lambda makes the code cloud oscillate around the prior as a whole,
the discriminator lagging behind) and reconstructed better (PSNR 22.1 vs 19.8 dB).

Prior (:mod:`deepgen.models.adversarial.code_prior`): "gaussian" N(0, I), or "mixture" of
``prior_components`` isotropic Gaussians (std ``prior_std``) on a circle of radius ``prior_radius``
in the first two code coordinates.

No density.  Without an inference model q(z | x) whose log-density is known (a deterministic
encoder is a point mass; the Gaussian one is never trained against log p(z) - log q), there is no
likelihood bound: ``log_prob`` raises DensityError.  The model is judged by its samples, its
reconstructions, and how close the codes are to the prior (:meth:`AAE.diagnostics`).

Data scale.  The encoder sees discrete levels as k / (L - 1) and continuous data standardised
(``standardize``); the likelihood scores the data on their own scale, as the VAE's does.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import make_output, resolve_output
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import generator_nonsaturating
from deepgen.losses.latent_adversarial import code_discriminator_bce
from deepgen.models.adversarial.code_prior import PRIORS, CodePrior
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.players import Player
from deepgen.nets import MLP, ConvDecoder, ConvEncoder, FlatMLP

DECODERS = ("bernoulli", "categorical", "logistic", "gaussian")
ENCODERS = ("deterministic", "gaussian")
_DIAG_PRIOR_DRAWS = 2000  # prior draws (at most) compared with the split's codes in diagnostics


class AAE(LatentModel):
    """Adversarial autoencoder: reconstruction + a code discriminator that matches q(z) to p(z).

    ``arch``: "mlp" or "conv" encoder/decoder (the VAE's networks), "auto": conv for images.
    ``encoder``: "deterministic" z = E(x), or "gaussian" z = mu + sigma eps (``encode`` gives mu).
    ``prior``: "gaussian" or "mixture" (see :mod:`deepgen.models.adversarial.code_prior`).
    """

    name = "aae"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"encode", "traverse", "diagnostics", "conditional"})
    description = ("adversarial autoencoder (no density): reconstruction + a discriminator on codes matching "
                   "the aggregate posterior to a Gaussian or mixture prior; samples decode prior draws")
    # Adam(0.5, 0.999) as for the GAN, lr 1e-3 with cosine decay; no warm-up (the code discriminator
    # must keep up from the first step).
    train_defaults = {"steps": 3000, "lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 1", "channels": ">= 1", "depth": ">= 0",
                         "arch": ("auto", "mlp", "conv"), "decoder": ("auto",) + DECODERS, "encoder": ENCODERS,
                         "prior": PRIORS, "prior_components": ">= 1", "prior_radius": ">= 0", "prior_std": "> 0",
                         "adversarial_weight": ">= 0", "d_hidden": ">= 1", "d_depth": ">= 1", "d_steps": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 256, channels: int = 64, depth: int = 2,
                 arch: str = "auto", decoder: str = "auto", encoder: str = "deterministic", prior: str = "gaussian",
                 prior_components: int = 10, prior_radius: float = 4.0, prior_std: float = 0.5,
                 adversarial_weight: float = 1.0, d_hidden: int = 256, d_depth: int = 2, d_steps: int = 1,
                 context_features: int = 0, standardize: bool = True):
        """Build an adversarial autoencoder for data ``spec``.

        Args:
            latent: dimension of the code z.
            hidden: units per hidden layer of the MLP encoder and decoder (arch mlp).
            channels: channels at the coarsest resolution of the conv encoder/decoder (arch conv).
            depth: hidden layers of each MLP, or stride-2 stages of each conv net.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            decoder: likelihood p(x | z): "auto", "bernoulli", "categorical", "logistic" or "gaussian".
            encoder: "deterministic" (z = E(x)) or "gaussian" (z = mu(x) + sigma(x) eps, reparameterised).
            prior: p(z): "gaussian" (N(0, I)) or "mixture" (Gaussians on a circle in the first two coordinates).
            prior_components: mixture prior: number of components K.
            prior_radius: mixture prior: radius of the circle of component means.
            prior_std: mixture prior: standard deviation of each component (every coordinate).
            adversarial_weight: lambda, the weight of the encoder's adversarial loss next to the reconstruction.
            d_hidden: width of the code discriminator's hidden layers.
            d_depth: hidden layers of the code discriminator (LeakyReLU 0.2).
            d_steps: code-discriminator updates per autoencoder update.
            context_features: size of the context vector of a conditional model (given to E, Dec and D).
            standardize: continuous data: work on (x - mean) / std per feature.
        """
        super().__init__(spec, latent=latent, hidden=hidden, channels=channels, depth=depth, arch=arch,
                         decoder=decoder, encoder=encoder, prior=prior, prior_components=prior_components,
                         prior_radius=prior_radius, prior_std=prior_std, adversarial_weight=adversarial_weight,
                         d_hidden=d_hidden, d_depth=d_depth, d_steps=d_steps, context_features=context_features,
                         standardize=standardize)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"aae: data '{spec.name}' has {spec.levels} level; need at least 2")
        if arch == "auto":
            arch = "conv" if spec.is_image else "mlp"
        if arch == "conv" and not spec.is_image:
            raise ConfigError(f"aae arch 'conv' needs images (C, H, W); data '{spec.name}' has shape {spec.shape}")
        if prior == "mixture" and prior_components < 2:
            raise ConfigError(f"aae: a mixture prior needs prior_components >= 2, got {prior_components} "
                              "(use prior: gaussian for one component)")
        self.arch, self.latent, self.encoder_kind = arch, latent, encoder
        self.adversarial_weight, self.d_steps = float(adversarial_weight), d_steps
        self.decoder_kind = resolve_output(decoder, spec, allowed=DECODERS, field="decoder")
        self.likelihood = make_output(self.decoder_kind, spec)
        self.prior = CodePrior(latent, prior, prior_components, prior_radius, prior_std, owner="aae")
        p = self.likelihood.params_per_dim
        q_out = latent * (2 if encoder == "gaussian" else 1)
        if arch == "conv":
            self.encoder = ConvEncoder(spec.shape, q_out, channels, depth, context_features)
            self.decoder = ConvDecoder(spec.shape, latent, spec.shape[0] * p, channels, depth, context_features)
        else:
            self.encoder = MLP(spec.dim, q_out, hidden, depth, context_features)
            self.decoder = MLP(latent, spec.dim * p, hidden, depth, context_features)
        self.code_discriminator = FlatMLP(latent, (1,), d_hidden, d_depth, context_features, leaky_slope=0.2)

    # --- networks -------------------------------------------------------------------
    def _encoder_input(self, x):
        x = x / (self.spec.levels - 1) if self.spec.levels is not None else self.to_model_space(x)
        return x if self.arch == "conv" else x.reshape(len(x), -1)

    def posterior(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """(mu, log sigma) of the encoder, each (B, latent); log sigma is None for the deterministic encoder."""
        out = self.encoder(self._encoder_input(x), self.check_context(context, len(x)))
        if self.encoder_kind == "deterministic":
            return out, None
        return out[:, :self.latent], out[:, self.latent:]

    def draw_code(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The training code of x: E(x), or mu + sigma eps for the Gaussian encoder (reparameterised)."""
        mu, log_std = self.posterior(x, context)
        return mu if log_std is None else mu + torch.exp(log_std) * torch.randn_like(mu)

    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of x, (B, latent): E(x) (deterministic) or the posterior mean mu(x)."""
        return self.posterior(x, context)[0]

    def decoder_params(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's parameters for each z: shape (B, *data shape, P)."""
        p = self.likelihood.params_per_dim
        out = self.decoder(z, self.check_context(context, len(z)))
        if self.arch == "conv":
            c, h, w = self.spec.shape
            return out.reshape(len(z), p, c, h, w).movedim(1, -1)
        return out.reshape(len(z), *self.spec.shape, p)

    def log_likelihood(self, x, z, context=None) -> torch.Tensor:
        """log p(x | z) per example (nats, data units), summed over every data dimension."""
        lp = self.likelihood.log_prob(self.to_model_space(x), self.decoder_params(z, context))
        return lp.reshape(len(x), -1).sum(-1) + self.preprocess_log_det()

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """A draw from p(x | z) on the data's scale, or its mean E[x | z] with ``mean=True``."""
        params = self.decoder_params(z, context)
        return self.from_model_space(self.likelihood.mean(params) if mean else self.likelihood.sample(params))

    def discriminate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The code discriminator's logits l(z), (B,)."""
        return self.code_discriminator(z, context).squeeze(-1)

    # --- the players ------------------------------------------------------------------
    def autoencoder_parameters(self):
        return list(self.encoder.parameters()) + list(self.decoder.parameters()) + list(self.likelihood.parameters())

    def discriminator_parameters(self):
        return list(self.code_discriminator.parameters())

    def players(self) -> list[Player]:
        """Code discriminator (``d_steps`` updates), then the autoencoder (encoder + decoder)."""
        return [Player("discriminator", self.discriminator_parameters, steps=self.d_steps),
                Player("autoencoder", self.autoencoder_parameters)]

    def adversarial_forward(self, batch) -> dict:
        """The shared pass: the codes z of the batch (with gradient) and as many prior draws z_p."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        z = self.draw_code(x, context)
        return {"x": x, "context": context, "codes": z, "prior": self.prior.sample(len(x)).to(z.dtype)}

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: L_D with prior draws real and the detached codes fake; ``d_prior`` = mean
        D(z_p), ``d_code`` = mean D(E(x)).  ``autoencoder``: L_rec + lambda L_G through the shared codes
        (D frozen by the adapter); ``recon`` (nats per example), ``g_loss``, ``d_code``."""
        context, z = shared["context"], shared["codes"]
        if name == "discriminator":
            prior_logits = self.discriminate(shared["prior"], context)
            code_logits = self.discriminate(z.detach(), context)
            return {"loss": code_discriminator_bce(prior_logits, code_logits),
                    "d_prior": torch.sigmoid(prior_logits).mean().detach(),
                    "d_code": torch.sigmoid(code_logits).mean().detach()}
        if name == "autoencoder":
            recon = -self.log_likelihood(shared["x"], z, context).mean()
            code_logits = self.discriminate(z, context)
            g = generator_nonsaturating(code_logits)
            return {"loss": recon + self.adversarial_weight * g, "recon": recon.detach(), "g_loss": g.detach(),
                    "d_code": torch.sigmoid(code_logits).mean().detach()}
        raise ConfigError(f"aae: no player named {name!r} (players: discriminator, autoencoder)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients: ``loss`` is the autoencoder's
        L_rec + lambda L_G, ``recon`` its reconstruction term (nats per example), ``g_loss`` L_G,
        ``d_loss`` the code discriminator's L_D, ``d_prior`` / ``d_code`` D's mean outputs."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            d = self.player_loss("discriminator", batch, shared)
            a = self.player_loss("autoencoder", batch, shared)
        return {"loss": a["loss"], "recon": a["recon"], "g_loss": a["g_loss"], "d_loss": d["loss"],
                "d_prior": d["d_prior"], "d_code": d["d_code"]}

    # --- protocol -----------------------------------------------------------------------
    def code_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) per coordinate of the prior p(z): where the codes should live."""
        return self.prior.moments()

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """z ~ p(z) (the within-component noise scaled by T = ``temperature``), then x ~ p(x | z), or
        E[x | z] with ``mean=True``, on the data's scale."""
        context = self.check_context(context, n)
        with torch.no_grad():
            return self.decode(self.prior.sample(n, temperature), context, mean=mean)

    def log_prob(self, x, context=None):
        raise DensityError(
            "aae: an adversarial autoencoder defines no density: its encoder is a point map (or a Gaussian "
            "never trained against log p(z) - log q(z | x)), so there is no likelihood bound; judge it by its "
            "samples, reconstructions and the distance of its codes to the prior (diagnostics)"
        )

    # --- diagnostics ----------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, context: torch.Tensor | None = None,
                    batch_size: int = 512) -> dict[str, float]:
        """How close the aggregate code distribution of the split ``x`` is to the prior (eval mode):

        code_energy_distance   energy distance 2 E||z - z_p|| - E||z - z'|| - E||z_p - z_p'|| between the
                               codes z = encode(x) and as many prior draws z_p (at most 2000 each; seeded,
                               unbiased, code units; 0 when q(z) = p(z))
        code_mean_error        || mean(z) - E_p[z] ||
        code_std_ratio         mean over coordinates of std(z_j) / std_p(z_j)  (1 when matched)
        code_prior_nll         -mean log p(z = encode(x)) (nats; the prior's own entropy is its match)
        prior_entropy_nats     the same figure for prior draws, -mean log p(z_p), for reference
        """
        was_training = self.training
        self.eval()
        try:
            codes = []
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size].to(self.device)
                cb = None if context is None else context[start:start + batch_size]
                codes.append(self.encode(xb, cb).double().cpu())
        finally:
            self.train(was_training)
        z = torch.cat(codes)
        n = min(len(z), _DIAG_PRIOR_DRAWS)
        g = torch.Generator(device=self.prior.means.device).manual_seed(0)
        zp = self.prior.sample(n, generator=g).double().cpu()
        mean_p, std_p = (t.double().cpu() for t in self.prior.moments())
        return {"code_energy_distance": _energy_distance(z[:n], zp),
                "code_mean_error": float((z.mean(0) - mean_p).norm()),
                "code_std_ratio": float((z.std(0) / std_p).mean()) if len(z) > 1 else float("nan"),
                "code_prior_nll": float(-self.prior.log_prob(z).mean()),
                "prior_entropy_nats": float(-self.prior.log_prob(zp).mean())}


def _energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| from rows x ~ P, y ~ Q."""
    def mean_dist(a, b, same):
        d = torch.cdist(a, b)
        if same:
            n = len(a)
            return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0
        return float(d.mean())
    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)

