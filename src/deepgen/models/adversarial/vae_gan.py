"""VAE-GAN (Larsen et al. 2016): a VAE whose pixel reconstruction error is replaced by an error in the
feature space of a GAN discriminator, with the decoder doubling as the GAN's generator.

Networks.  Encoder q(z | x) = N(mu(x), diag sigma(x)^2); decoder / generator x~ = Dec(z); discriminator
D(x) = sigmoid(l(x)) with a hidden layer Dis_l(x) (:class:`~deepgen.nets.feature_discriminator.FeatureDiscriminator`).
Prior p(z) = N(0, I).

Losses (eq. 9 and Algorithm 1 of the paper), with z ~ q(z | x) reparameterised and z_p ~ p(z):

    L_prior = KL(q(z | x) || N(0, I)) = sum_j 1/2 (mu_j^2 + sigma_j^2 - 1) - log sigma_j
    L_llike = -E_q log N(Dis_l(x) | Dis_l(Dec(z)), I) = E 1/2 ||Dis_l(x) - Dis_l(Dec(z))||^2   (+ const., dropped)
    L_GAN   = log D(x) + log(1 - D(Dec(z))) + log(1 - D(Dec(z_p)))

    encoder        minimises  L_prior + L_llike
    decoder        minimises  gamma L_llike - L_GAN
    discriminator  maximises  L_GAN

``loss`` = "nonsaturating" (the default) replaces the decoder's -L_GAN, i.e. E log(1 - D(x~)) +
E log(1 - D(x_p)), by -E log D(x~) - E log D(x_p) (same fixed point, no vanishing gradient when
D rejects the fakes; Goodfellow et al. 2014); "minimax" keeps the paper's saturating form.  As in
the paper, L_GAN's signal does not reach the encoder.

Players (:mod:`deepgen.training.adversarial`, disjoint parameters), in update order:

    1. ``encoder``: through the shared pass's Dec(z) and D (both frozen, neither updated yet);
    2. ``decoder``: Dec(z) is recomputed from the detached z (the shared one's graph runs through the
       just-updated encoder); Dec(z_p) comes from the shared pass;
    3. ``discriminator`` (``d_steps`` updates): real data and the detached fakes of the shared pass.

The features of the real batch, the target of L_llike, are computed once without gradient (no player
moves them: D does not minimise L_llike).

No density: the decoder defines no likelihood in data space (the Gaussian is over D's features, which
change as D trains), so there is no bound on log p(x); ``log_prob`` raises DensityError.

Data scale (as :class:`~deepgen.models.adversarial.gan.GAN`): discrete images are shown to the encoder and
to D as x / (L - 1) and Dec ends in a sigmoid; continuous data are standardised.  ``decode`` maps back:
round(Dec(z) (L - 1)) (``mean=True``: not rounded), or Dec(z) s + m.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import gaussian_kl
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import ADVERSARIAL_LOSSES, get_adversarial_loss
from deepgen.losses.latent_adversarial import feature_reconstruction, vae_gan_discriminator
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.players import Player
from deepgen.nets import MLP, ConvDecoder, ConvEncoder
from deepgen.nets.feature_discriminator import FeatureDiscriminator

LOSSES = tuple(k for k in ("nonsaturating", "minimax") if k in ADVERSARIAL_LOSSES)


class VAEGAN(LatentModel):
    """VAE-GAN: Gaussian encoder, decoder = generator, discriminator whose hidden layer measures reconstructions.

    ``arch``: "mlp" or "conv" encoder/decoder (the VAE's networks; "auto": conv for images) with the
    DCGAN discriminator (images) or a LeakyReLU MLP (vectors).  ``encode`` is the posterior mean.
    """

    name = "vae-gan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"encode", "traverse", "conditional"})
    description = ("VAE-GAN (no density): VAE encoder + KL, reconstruction error in a discriminator's feature "
                   "space, decoder trained as a GAN generator on reconstructions and prior samples")
    # Adam(0.5, 0.999), lr 1e-3, cosine decay, no warm-up: the GAN's settings (see gan.py).
    train_defaults = {"steps": 3000, "lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 1", "channels": ">= 1", "depth": ">= 0",
                         "arch": ("auto", "mlp", "conv"), "gamma": ">= 0", "feature_layer": ">= 0",
                         "d_hidden": ">= 2", "d_depth": ">= 1", "d_steps": ">= 1", "loss": LOSSES,
                         "label_smoothing": "in [0, 1)", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 256, channels: int = 64, depth: int = 2,
                 arch: str = "auto", gamma: float = 1.0, feature_layer: int = 0, d_hidden: int = 128,
                 d_depth: int = 1, d_steps: int = 1, loss: str = "nonsaturating", label_smoothing: float = 0.0,
                 context_features: int = 0, standardize: bool = True):
        """Build a VAE-GAN for data ``spec``.

        Args:
            latent: dimension of the latent z ~ N(0, I).
            hidden: units per hidden layer of the MLP encoder and decoder (arch mlp).
            channels: channels at the coarsest resolution of the conv encoder/decoder (arch conv).
            depth: hidden layers of each MLP, or stride-2 stages of each conv encoder/decoder.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            gamma: weight of the feature reconstruction L_llike in the decoder's loss (next to -L_GAN).
            feature_layer: the discriminator's hidden layer l of Dis_l (1 = the first; 0 = the last).
            d_hidden: discriminator width: conv channels at H/4 (half at H/2), or MLP units.
            d_depth: discriminator depth: conv: 1 + extra 3x3 layers per resolution; MLP: hidden layers.
            d_steps: discriminator updates per encoder / decoder update.
            loss: decoder's GAN term: "nonsaturating" (-log D(fake)) or "minimax" (log(1 - D(fake))).
            label_smoothing: one-sided label smoothing eps: D's target on real data is 1 - eps.
            context_features: size of the context vector of a conditional model (given to every network).
            standardize: continuous data: work on (x - mean) / std per feature; samples are mapped back.
        """
        super().__init__(spec, latent=latent, hidden=hidden, channels=channels, depth=depth, arch=arch,
                         gamma=gamma, feature_layer=feature_layer, d_hidden=d_hidden, d_depth=d_depth,
                         d_steps=d_steps, loss=loss, label_smoothing=label_smoothing,
                         context_features=context_features, standardize=standardize)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"vae-gan: data '{spec.name}' has {spec.levels} level; need at least 2")
        if arch == "auto":
            arch = "conv" if spec.is_image else "mlp"
        shape = tuple(spec.shape)
        if arch == "conv":
            if not spec.is_image:
                raise ConfigError(f"vae-gan: arch 'conv' needs images (C, H, W); data '{spec.name}' has shape {shape}")
            if shape[1] % 4 or shape[2] % 4:
                raise ConfigError(f"vae-gan: the conv discriminator needs H and W divisible by 4; image is "
                                  f"{shape[1]}x{shape[2]} (use arch: mlp)")
        self.arch, self.latent, self.gamma = arch, latent, float(gamma)
        self.d_steps, self.label_smoothing = d_steps, float(label_smoothing)
        self.losses = get_adversarial_loss(loss)
        if arch == "conv":
            self.encoder = ConvEncoder(shape, 2 * latent, channels, depth, context_features)
            self.decoder = ConvDecoder(shape, latent, shape[0], channels, depth, context_features)
        else:
            self.encoder = MLP(spec.dim, 2 * latent, hidden, depth, context_features)
            self.decoder = MLP(latent, spec.dim, hidden, depth, context_features)
        d_shape = shape if arch == "conv" else (spec.dim,)
        try:
            self.discriminator = FeatureDiscriminator(d_shape, d_hidden, d_depth, context_features, feature_layer)
        except ConfigError as err:
            raise ConfigError(f"vae-gan: {err}") from None
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)

    # --- scales and networks ------------------------------------------------------------
    def to_d_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> the networks' scale: x / (L - 1) for L levels, standardised (x - m) / s otherwise."""
        return x / (self.spec.levels - 1) if self.spec.levels is not None else self.to_model_space(x)

    def posterior(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """(mu, log sigma) of q(z | x), each (B, latent)."""
        u = self.to_d_scale(x)
        out = self.encoder(u if self.arch == "conv" else u.reshape(len(x), -1), self.check_context(context, len(x)))
        return out[:, :self.latent], out[:, self.latent:]

    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean mu(x), (B, latent)."""
        return self.posterior(x, context)[0]

    def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Dec(z) on the networks' scale: in [0, 1] for discrete data (sigmoid), unbounded otherwise."""
        out = self.decoder(z, self.check_context(context, len(z))).reshape(len(z), *self.spec.shape)
        return torch.sigmoid(out) if self.spec.levels is not None else out

    def discriminate(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None):
        """(logits l(x) of shape (B,), features Dis_l(x)) for inputs on the networks' scale."""
        logits, feats = self.discriminator(x_scaled, context)
        return logits.squeeze(-1), feats

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """Dec(z) on the data's scale: levels (L - 1) Dec(z), rounded unless ``mean``; or Dec(z) s + m."""
        g = self.generate(z, context)
        if self.spec.levels is not None:
            x = g * (self.spec.levels - 1)
            return x if mean else torch.round(x)
        return self.from_model_space(g)

    # --- the players ------------------------------------------------------------------
    def encoder_parameters(self):
        return list(self.encoder.parameters())

    def decoder_parameters(self):
        return list(self.decoder.parameters())

    def discriminator_parameters(self):
        return list(self.discriminator.parameters())

    def players(self) -> list[Player]:
        """Encoder, decoder, then the discriminator (``d_steps`` updates); Adam with the run's settings."""
        return [Player("encoder", self.encoder_parameters), Player("decoder", self.decoder_parameters),
                Player("discriminator", self.discriminator_parameters, steps=self.d_steps)]

    def adversarial_forward(self, batch) -> dict:
        """The shared pass: real data on the networks' scale, q(z | x)'s parameters, a reparameterised
        z ~ q(z | x), the reconstructions Dec(z) and prior samples Dec(z_p), z_p ~ N(0, I) (with gradients)."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        mu, log_std = self.posterior(x, context)
        z = mu + torch.exp(log_std) * torch.randn_like(mu)
        z_p = torch.randn_like(mu)
        return {"real": self.to_d_scale(x), "context": context, "mu": mu, "log_std": log_std, "z": z,
                "recon": self.generate(z, context), "prior_fake": self.generate(z_p, context)}

    def _real_features(self, shared: dict) -> torch.Tensor:
        """Dis_l(x) of the real batch, without gradient (the target of L_llike), computed once per shared pass."""
        if "real_features" not in shared:
            with torch.no_grad():
                shared["real_features"] = self.discriminate(shared["real"], shared["context"])[1]
        return shared["real_features"]

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``encoder``: L_prior + L_llike (``kl``, ``llike``).  ``decoder``: gamma L_llike + the GAN term on
        reconstructions and prior samples (``llike``, ``g_loss``, ``d_recon``, ``d_prior``).
        ``discriminator``: -L_GAN on the detached fakes (``d_real``, ``d_recon``, ``d_prior``: mean D)."""
        context = shared["context"]
        if name == "encoder":
            kl = gaussian_kl(shared["mu"], shared["log_std"]).mean()
            llike = feature_reconstruction(self._real_features(shared),
                                           self.discriminate(shared["recon"], context)[1])
            return {"loss": kl + llike, "kl": kl.detach(), "llike": llike.detach()}
        if name == "decoder":
            recon = self.generate(shared["z"].detach(), context)
            n = len(recon)
            logits, feats = self.discriminate(torch.cat([recon, shared["prior_fake"]]),
                                              None if context is None else context.repeat(2, 1))
            llike = feature_reconstruction(self._real_features(shared), feats[:n])
            g = self.losses.generator(logits[:n]) + self.losses.generator(logits[n:])
            return {"loss": self.gamma * llike + g, "llike": llike.detach(), "g_loss": g.detach(),
                    "d_recon": torch.sigmoid(logits[:n]).mean().detach(),
                    "d_prior": torch.sigmoid(logits[n:]).mean().detach()}
        if name == "discriminator":
            n = len(shared["real"])
            both = torch.cat([shared["real"], shared["recon"].detach(), shared["prior_fake"].detach()])
            logits = self.discriminate(both, None if context is None else context.repeat(3, 1))[0]
            real, recon, prior = logits[:n], logits[n:2 * n], logits[2 * n:]
            return {"loss": vae_gan_discriminator(real, recon, prior, self.label_smoothing),
                    "d_real": torch.sigmoid(real).mean().detach(), "d_recon": torch.sigmoid(recon).mean().detach(),
                    "d_prior": torch.sigmoid(prior).mean().detach()}
        raise ConfigError(f"vae-gan: no player named {name!r} (players: encoder, decoder, discriminator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients: ``loss`` is the discriminator's -L_GAN (as for
        the GAN); ``kl`` (nats per example), ``llike`` (feature reconstruction), ``enc_loss``, ``dec_loss``,
        ``d_real`` / ``d_recon`` / ``d_prior`` (D's mean outputs)."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            e = self.player_loss("encoder", batch, shared)
            d = self.player_loss("decoder", batch, shared)
            s = self.player_loss("discriminator", batch, shared)
        return {"loss": s["loss"], "kl": e["kl"], "llike": e["llike"], "enc_loss": e["loss"], "dec_loss": d["loss"],
                "d_real": s["d_real"], "d_recon": s["d_recon"], "d_prior": s["d_prior"]}

    # --- protocol -----------------------------------------------------------------------
    def log_prob(self, x, context=None):
        raise DensityError(
            "vae-gan: the decoder defines no likelihood in data space (its Gaussian is over the discriminator's "
            "features, which move as D trains), so there is no bound on log p(x); judge it by its samples and "
            "reconstructions"
        )

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """Dec(z), z ~ N(0, T^2 I), on the data's scale (integer levels unless ``mean``)."""
        context = self.check_context(context, n)
        m = self._device_marker
        with torch.no_grad():
            z = temperature * torch.randn(n, self.latent, device=m.device, dtype=m.dtype)
            return self.decode(z, context, mean=mean)
