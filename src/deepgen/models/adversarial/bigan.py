"""BiGAN (Donahue et al. 2017) = ALI (Dumoulin et al. 2017): a GAN that also learns an encoder.

A generator G maps z ~ N(0, I_latent) to data, an encoder E maps data to codes, and a
discriminator D(x, z) = sigmoid(l(x, z)) sees *pairs*: real pairs (x, E(x)), x ~ p_data,
and generated pairs (G(z), z), z ~ p(z).  The game

    min_{G,E} max_D  V(D, E, G) = E_x log D(x, E(x)) + E_z log(1 - D(G(z), z))

is optimal when the two joint distributions p_data(x) q_E(z | x) and p(z) p_G(x | z)
agree; then E and G invert each other (E = G^-1 almost everywhere, Donahue et al.
Thm. 2), although no reconstruction loss is ever minimised.

Players (:mod:`deepgen.training.adversarial`), in order per training step:

* ``discriminator`` (``d_steps`` updates): :func:`~deepgen.losses.adversarial.discriminator_bce`
  with the real logits l(x, E(x)) and the fake logits l(G(z), z), E(x) and G(z) detached:

      L_D = E softplus(-l(x, E(x))) + E softplus(l(G(z), z))

* ``encoder_generator`` (E and G together, one Adam): ``loss="nonsaturating"`` uses the
  "inverted labels" of Donahue et al. / Dumoulin et al.: each side is trained as if its pairs
  were the other's, i.e. the same BCE with the labels swapped,

      L_EG = -E log D(G(z), z) - E log(1 - D(x, E(x))) = E softplus(-l(G(z), z)) + E softplus(l(x, E(x)))

  (= ``discriminator_bce(l_fake, l_real)``: each term is
  :func:`~deepgen.losses.adversarial.generator_nonsaturating` of its side's logits as seen
  from the swapped label); ``loss="minimax"``: L_EG = -L_D (the saturating original).

Encoder.  ``encoder="deterministic"``: z = E(x).  ``encoder="gaussian"`` (ALI's stochastic
encoder): E outputs (mu(x), log sigma(x)), the real pair's code is the reparametrised draw
z = mu + sigma * eps, eps ~ N(0, I), and :meth:`encode` returns the point code mu(x).

Minibatch features (``minibatch_discrimination`` = B kernels; default 16 for images, 0 for
vectors): D also reads, for each x, how close it is to the other x of its batch
(:class:`~deepgen.nets.minibatch.MinibatchDiscrimination` on the x branch), so a batch of G(z)
collapsed onto a few images stands out.  Without them G collapsed on digits (FD 1342, recall
0.00 at 1500 steps); with them FD 28.4, recall 0.95.

Data scale: as :class:`~deepgen.models.adversarial.gan.GAN` (discrete data: D and E see
x / (L - 1), G ends in a sigmoid, samples are round(G(z) (L - 1)); continuous data are
standardised per feature).  As a latent model, ``encode(x)`` = E(x) (mu(x) for the Gaussian
encoder) and ``decode(z, mean)`` = G(z) on the data's scale (rounded to integer levels unless
``mean``), so reconstructions G(E(x)), interpolations and traversals (codes live where the
prior N(0, I) puts them) come from :class:`~deepgen.models.latent.base.LatentModel`.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import ADVERSARIAL_LOSSES, discriminator_bce
from deepgen.models.adversarial.gan import ARCHS, GAN
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.models.players import Player
from deepgen.nets import MLP, ConvEncoder, DCGANGenerator, FlatMLP
from deepgen.nets.joint import ConvJointDiscriminator, MLPJointDiscriminator

ENCODERS = ("deterministic", "gaussian")


class BiGAN(GAN, LatentModel):
    """BiGAN / ALI: generator G(z), encoder E(x) and a discriminator D(x, z) on pairs, trained adversarially.

    A GAN (sampling, data scale and the no-density protocol come from :class:`GAN`) and a
    latent model (``encode`` = E, ``decode`` = G; reconstructions, interpolations, traversals).
    """

    name = "bigan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"encode", "traverse", "conditional", "truncation"})
    description = ("BiGAN / ALI (implicit, no density): generator, encoder and a discriminator on (x, z) pairs; "
                   "encode(x) = E(x)")
    # As GAN (Adam beta1 = 0.5, cosine decay to 0, no warm-up), at half GAN's rate: three networks share one
    # game and a 2-D toy game at lr 2e-3 (constant) kept E and G from settling.  Not swept further on digits
    # (one 3000-step run costs ~10-30 min on the shared CPU).
    train_defaults = {"lr": 5e-4, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    # runs saved before the joint discriminator read minibatch features (FD 1342 on digits) rebuild without them
    params_added_later = {"minibatch_discrimination": 0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 2", "depth": ">= 1", "arch": ARCHS,
                         "loss": tuple(ADVERSARIAL_LOSSES), "encoder": ENCODERS, "d_steps": ">= 1",
                         "dropout": "in [0, 1)", "normalize_codes": (False, True),
                         "label_smoothing": "in [0, 1)", "minibatch_discrimination": ">= 0",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 32, hidden: int = 128, depth: int = 2, arch: str = "auto",
                 loss: str = "nonsaturating", encoder: str = "deterministic", d_steps: int = 1,
                 dropout: float = 0.2, normalize_codes: bool = True, label_smoothing: float = 0.0,
                 minibatch_discrimination: int | None = None, context_features: int = 0, standardize: bool = True):
        """Build a BiGAN for data ``spec``.

        Args:
            latent: dimension of the code z (prior N(0, I); E's output).
            hidden: MLP width; conv nets: the channels at H/4 (halved at H/2) and the width of D's MLPs.
            depth: MLP hidden layers (G, E and D's z and joint branches); conv G: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            loss: "nonsaturating" (E and G minimise the BCE with swapped labels) or "minimax" (E and G maximise D's BCE).
            encoder: "deterministic" (z = E(x)) or "gaussian" (z = mu(x) + sigma(x) eps; encode gives mu(x)).
            d_steps: discriminator updates per encoder-generator update.
            dropout: dropout rate after every hidden layer of D (0: none).
            normalize_codes: E ends in a batch norm without affine map (codes of a batch: mean 0, variance 1).
            label_smoothing: one-sided label smoothing eps: D's target on real pairs is 1 - eps (generated: 0).
            minibatch_discrimination: minibatch-discrimination kernels on D's x branch (0: off; None: 16 for
                images, 0 for vectors, as :class:`GAN`).
            context_features: size of the context vector of a conditional BiGAN (given to G, E and D).
            standardize: continuous data: G, E and D work on (x - mean) / std per feature; samples are mapped back.
        """
        GenerativeModel.__init__(self, spec, latent=latent, hidden=hidden, depth=depth, arch=arch, loss=loss,
                                 encoder=encoder, d_steps=d_steps, dropout=dropout,
                                 normalize_codes=normalize_codes, label_smoothing=label_smoothing,
                                 minibatch_discrimination=minibatch_discrimination,
                                 context_features=context_features, standardize=standardize)
        if loss not in ADVERSARIAL_LOSSES:  # direct construction with check_params bypassed
            raise ConfigError(f"bigan: loss must be one of {', '.join(ADVERSARIAL_LOSSES)}, got {loss!r}")
        self.loss_kind, self.encoder_kind, self.normalize_codes = loss, encoder, normalize_codes
        self.d_steps, self.label_smoothing = d_steps, label_smoothing
        self.minibatch_discrimination = minibatch_discrimination
        self.build_bigan_networks(latent, hidden, depth, arch, context_features, dropout)

    def build_bigan_networks(self, latent, hidden, depth, arch, context_features, dropout) -> None:
        """G as in :class:`GAN`; E: a conv encoder (images) or an MLP to latent (x2 for the Gaussian
        encoder); D: a conv tower on x joined with an MLP on z (images), or an MLP on [x, z] (vectors)."""
        spec = self.spec
        self.latent = latent
        shape = tuple(spec.shape)
        arch = self.arch = self.resolve_arch(arch)
        out = 2 * latent if self.encoder_kind == "gaussian" else latent
        mbd = self.minibatch_kernels(arch)  # as GAN: 16 for images (conv) by default, 0 for vectors
        if arch == "conv":
            self.generator = DCGANGenerator(latent, shape, hidden, depth, context_features)
            self.encoder = ConvEncoder(shape, out, hidden, 2, context_features)
            self.discriminator = ConvJointDiscriminator(shape, latent, hidden, depth, context_features, dropout,
                                                        minibatch_kernels=mbd)
        else:
            self.generator = FlatMLP(latent, shape, hidden, depth, context_features)
            self.encoder = MLP(spec.dim, out, hidden, depth, context_features, activation="leaky_relu")
            self.discriminator = MLPJointDiscriminator(spec.dim, latent, hidden, depth, context_features, dropout,
                                                       minibatch_kernels=mbd)
        # E's codes batch-normalised (no affine): each batch of codes has mean 0 and variance 1 per coordinate
        self.code_norm = torch.nn.BatchNorm1d(latent, affine=False) if self.normalize_codes else None
        self.generator_ema = None  # GAN's weight averaging is not a BiGAN parameter: sampling uses G itself

    # --- the players ------------------------------------------------------------
    def encoder_generator_parameters(self):
        return list(self.generator.parameters()) + list(self.encoder.parameters())

    def players(self) -> list[Player]:
        """Discriminator (``d_steps`` updates per step), then encoder and generator as one player."""
        return [Player("discriminator", self.discriminator_parameters, steps=self.d_steps),
                Player("encoder_generator", self.encoder_generator_parameters)]

    # --- the networks -----------------------------------------------------------
    def encoder_output(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None):
        """(mu, log sigma) of E for inputs on D's scale; log sigma is None for the deterministic encoder."""
        inp = x_scaled if self.arch == "conv" else x_scaled.flatten(1)
        h = self.encoder(inp, context)
        mu, log_sigma = h.chunk(2, -1) if self.encoder_kind == "gaussian" else (h, None)
        if self.code_norm is not None:
            mu = self.code_norm(mu)
        return mu, None if log_sigma is None else log_sigma.clamp(-10.0, 5.0)

    def encode_scaled(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None,
                      sample: bool = True) -> torch.Tensor:
        """The code of the real pair: E(x), or mu + sigma eps for the Gaussian encoder (``sample``)."""
        mu, log_sigma = self.encoder_output(x_scaled, context)
        if log_sigma is None or not sample:
            return mu
        return mu + log_sigma.exp() * torch.randn_like(mu)

    def discriminate(self, x_scaled: torch.Tensor, z: torch.Tensor, context: torch.Tensor | None = None):
        """D's logits l(x, z), shape (B,), for x on D's scale (see :meth:`to_d_scale`)."""
        return self.discriminator(x_scaled, z, context).squeeze(-1)

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's joint hidden layer on the real pair (x, E(x)), (B, hidden) (replaces GAN's D-on-x features;
        linear probes read ``encode`` first)."""
        context = self.check_context(context, len(x))
        u = self.to_d_scale(x.to(self.device))
        return self.discriminator.features(u, self.encode_scaled(u, context, sample=False), context)

    # --- the game ---------------------------------------------------------------
    def adversarial_forward(self, batch) -> dict:
        """The shared pass: real x on D's scale with its code E(x), and z ~ N(0, I) with G(z) (both with gradient)."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        real = self.to_d_scale(x)
        z = self.noise(len(x))
        return {"real": real, "code": self.encode_scaled(real, context), "z": z,
                "fake": self.generate(z, context), "context": context}

    def pair_logits(self, shared: dict, detach: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(l(x, E(x)), l(G(z), z)); ``detach`` cuts E and G out of the graph (D's update)."""
        code, fake = shared["code"], shared["fake"]
        if detach:
            code, fake = code.detach(), fake.detach()
        context = shared["context"]
        return self.discriminate(shared["real"], code, context), self.discriminate(fake, shared["z"], context)

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: BCE on real pairs (x, E(x)) vs generated pairs (G(z), z), E(x) and G(z)
        detached; diagnostics ``d_real`` = mean D(x, E(x)), ``d_fake`` = mean D(G(z), z).
        ``encoder_generator``: the inverted-labels BCE (nonsaturating) or -L_D (minimax) through E and G."""
        if name == "discriminator":
            real, fake = self.pair_logits(shared, detach=True)
            return {"loss": discriminator_bce(real, fake, self.label_smoothing),
                    "d_real": torch.sigmoid(real).mean().detach(), "d_fake": torch.sigmoid(fake).mean().detach()}
        if name == "encoder_generator":
            real, fake = self.pair_logits(shared, detach=False)
            loss = discriminator_bce(fake, real) if self.loss_kind == "nonsaturating" else -discriminator_bce(real, fake)
            return {"loss": loss, "d_real": torch.sigmoid(real).mean().detach(),
                    "d_fake": torch.sigmoid(fake).mean().detach()}
        raise ConfigError(f"bigan: no player named {name!r} (players: discriminator, encoder_generator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients: ``loss`` = D's BCE L_D, ``eg_loss`` =
        the encoder-generator's loss, ``d_real`` / ``d_fake`` = D's mean output on real / generated pairs."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            d = self.player_loss("discriminator", batch, shared)
            eg = self.player_loss("encoder_generator", batch, shared)
        return {"loss": d["loss"], "eg_loss": eg["loss"], "d_real": d["d_real"], "d_fake": d["d_fake"]}

    # --- the latent-model protocol ------------------------------------------------
    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of x: E(x) (the Gaussian encoder's mean mu(x)), (B, latent)."""
        context = self.check_context(context, len(x))
        return self.encode_scaled(self.to_d_scale(x.to(self.device)), context, sample=False)

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """G(z) on the data's scale: floor(L G(z)) for L levels (with ``mean``, L G(z) - 1/2 unrounded: the
        centre of the dequantization cell), G(z) s + m for continuous data (G is deterministic)."""
        g = self.generate(z.to(self.device), context)
        if self.spec.levels is not None and mean:
            return (g * self.spec.levels - 0.5).clamp(0, self.spec.levels - 1)
        return self.from_d_scale(g)

    def log_prob(self, x, context=None):
        raise DensityError(
            "bigan: a BiGAN is an implicit model and defines no density, so it has no log-likelihood; "
            "judge it by its samples and its codes (sample quality, reconstructions, a linear probe of encode(x))"
        )
