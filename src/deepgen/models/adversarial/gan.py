"""Generative adversarial network (Goodfellow et al. 2014): an implicit model.

A generator G maps noise z ~ N(0, I_latent) to data; a discriminator D(x) =
sigmoid(l(x)) tells real from generated data.  The two play

    min_G max_D  V(D, G) = E_x log D(x) + E_z log(1 - D(G(z)))

and are trained as two players of :mod:`deepgen.training.adversarial`: each
training step makes one batch of fakes G(z) (the shared pass), takes ``d_steps``
discriminator updates on :func:`~deepgen.losses.adversarial.discriminator_bce`
(fakes detached; updates after the first draw a fresh batch and fresh fakes),
then one generator update on the ``loss`` chosen here ("nonsaturating":
-E log D(G(z)); "minimax": E log(1 - D(G(z))), the saturating original) through
the same fakes and the updated discriminator.

One-sided label smoothing (Salimans et al. 2016; ``label_smoothing`` = eps > 0)
trains D towards the target 1 - eps on real data and 0 on fakes:

    L_D = -E_x [(1 - eps) log D(x) + eps log(1 - D(x))] - E_z log(1 - D(G(z))),

so D* = (1 - eps) p_data / (p_data + p_G) stays below 1 - eps; G's loss is unchanged.

The large-scale bag of tricks (BigGAN, Brock et al. 2018; seed 004), all off by default:

* ``loss="hinge"``: L_D = E max(0, 1 - l(x)) + E max(0, 1 + l(G(z))), L_G = -E l(G(z));
* ``spectral_norm``: every weight W of D ("discriminator") or of D and G ("both")
  replaced by W / sigma_max(W) (Miyato et al. 2018), one power iteration per step;
* ``conditional_bn`` (class-conditional generator): G's batch norms take gain 1 + W_g e
  and bias W_b e from one shared linear embedding e of the class (the context enters G
  only there);
* ``orthogonal_reg`` = beta: G's loss adds beta sum_W ||W W^T (.) (1 - I)||_F^2;
* ``ema`` = decay: an exponential moving average of G's weights, theta_ema <- d theta_ema
  + (1 - d) theta after every G update with d = min(decay, (1 + t) / (10 + t)) at the t-th
  update; sampling uses the averaged generator;
* truncation at sampling (``sample(..., truncation=t)``, CLI ``--truncation``): z drawn from
  N(0, I) restricted to |z_i| <= t, trading diversity for fidelity.

And two tricks of Salimans et al. (2016): ``virtual_batchnorm`` (G's batch norms use the
statistics of a fixed reference batch of ``reference_size`` latent draws plus the example
itself, so G(z) does not depend on the other z of its batch) and
``minibatch_discrimination`` = B kernels (default: 16 for images, 0 for vectors; D also reads o(x_i)_b = sum_j exp(-||M_i,b -
M_j,b||_1), M = f(x) T: how close each example is to the rest of its batch).

``features(x)`` is D's last hidden layer (before any minibatch features), the DCGAN
representation a linear probe reads.

A GAN defines no density: ``log_prob`` raises :class:`DensityError`.  It is
judged by its samples (:mod:`deepgen.evaluation.sample_metrics`,
:mod:`deepgen.evaluation.modes`).

Data scale.  For discrete data with L levels the generator ends in a sigmoid,
so G(z) is in [0, 1], and D sees real data *dequantized*: in training
(x + u) / L with u ~ U[0, 1) per entry, in eval mode (x + 1/2) / L; ``sample``
returns floor(L G(z)) (at most L - 1), integers 0..L-1 on the data's own scale.
The dequantized data have a density on [0, 1]^D whose quantization floor(L y) is
exactly the data distribution, so a G that matches it samples the data; shown
the levels themselves, x / (L - 1), D can tell any G(z) that is not exactly on a
level apart, and on digits the unconditional game collapsed (1500 steps, one
seed, plain loop: FD 436, recall 0.06 on the levels; FD 156, recall 0.79
dequantized).  For
continuous data G's output is unbounded and D sees the data standardised per
feature, (x - m) / s with the training split's statistics (``standardize``;
off: as they are); ``sample`` maps G(z) back, G(z) s + m.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import ADVERSARIAL_LOSSES, get_adversarial_loss, orthogonal_regularization
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.players import Player
from deepgen.nets import (
    DCGANDiscriminator, DCGANGenerator, FlatMLP, MLPDiscriminator, MLPGenerator, spectral_normalize,
)

ARCHS = ("auto", "mlp", "conv")
SPECTRAL_NORM = ("none", "discriminator", "both")
# size of the shared class embedding of conditional batch norm
EMBED_FEATURES = 32
# Minibatch-discrimination kernels of the conv D by default.  Measured on digits (1500 steps, lr 1e-3
# cosine, plain loop, seeds 0/1): without, G collapses (FD 688 / 948, recall 0.02 / 0.00); with 16
# kernels FD 80 / 50, recall 0.96 / 0.96.  On ring8 (MLP) 8 kernels covered 0 modes in 2000 steps, so
# vectors keep it off.
MINIBATCH_KERNELS_IMAGES = 16


def truncated_normal(n: int, d: int, truncation: float | None, device=None) -> torch.Tensor:
    """(n, d) draws of N(0, I), each coordinate restricted to [-t, t] if ``truncation`` = t is given
    (inverse-CDF sampling of the truncated normal: one pass, seeded by the global RNG)."""
    z = torch.empty(n, d, device=device)
    if truncation is None:
        return z.normal_()
    if truncation <= 0:
        raise ConfigError(f"truncation must be > 0 (the bound t of |z_i| <= t), got {truncation}")
    return nn.init.trunc_normal_(z, mean=0.0, std=1.0, a=-truncation, b=truncation)


class GAN(GenerativeModel):
    """GAN (Goodfellow et al. 2014): generator + discriminator, trained adversarially.

    Parameters: ``latent`` (dimension of z ~ N(0, I)), ``hidden`` (MLP width; for
    the conv pair, the channels at H/4, halved at H/2), ``depth`` (MLP hidden
    layers; conv: 1 + extra 3x3 layers per resolution), ``arch`` ("auto": conv
    for images, MLP for vectors; "mlp"; "conv"), ``loss`` ("nonsaturating" or
    "minimax"), ``d_steps`` (discriminator steps per generator step),
    ``label_smoothing`` (one-sided: real targets 1 - eps), ``context_features``
    (conditional GAN: the context is appended to z and shown to D).

    Subclasses with other games (``wgan``, ``wgan-gp``) reuse the networks
    (:meth:`build_networks`), the data scale and sampling, and replace the players.
    """

    name = "gan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"conditional", "features", "truncation"})
    description = ("GAN (implicit, no density): MLP or DCGAN-style pair, non-saturating, minimax or hinge loss; "
                   "label smoothing, virtual BN, minibatch discrimination, BigGAN tricks")
    # Merged under the user's fields by TrainConfig.from_dict; measured on ring8, 5000 steps:
    # * Adam with beta1 = 0.5 as in DCGAN (Radford et al. 2016), no warm-up.
    # * lr 1e-3, not DCGAN's 2e-4: at 2e-4 neither ring8 (no mode reached in 5000 steps) nor
    #   digits (energy distance 20 after 2000 steps, vs 2.1 at 1e-3) got anywhere on a CPU budget.
    # * Cosine decay to 0: at a constant rate the game keeps hopping between modes to the end
    #   (batch 512, seeds 0/1/2: 6/5/2 of 8 modes covered, 48/27/66% high quality); annealing
    #   lets it settle (batch 512: 6/8/8 modes, 80-89%; batch 128, seeds 0-4: 8/7/8/7/8, 75-85%).
    train_defaults = {"lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 2", "depth": ">= 1", "arch": ARCHS,
                         "loss": tuple(ADVERSARIAL_LOSSES), "d_steps": ">= 1", "label_smoothing": "in [0, 1)",
                         "spectral_norm": SPECTRAL_NORM, "reference_size": ">= 1", "minibatch_discrimination": ">= 0",
                         "orthogonal_reg": ">= 0", "ema": "in [0, 1)", "context_features": ">= 0"}

    # The tricks' defaults (all off); subclasses that do not take them as parameters keep these.
    spectral_norm = "none"
    virtual_batchnorm = False
    reference_size = 64
    conditional_bn = False
    minibatch_discrimination = None
    orthogonal_reg = 0.0
    ema = 0.0

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 128, depth: int = 2, arch: str = "auto",
                 loss: str = "nonsaturating", d_steps: int = 1, label_smoothing: float = 0.0,
                 spectral_norm: str = "none", virtual_batchnorm: bool = False, reference_size: int = 64,
                 conditional_bn: bool = False, minibatch_discrimination: int | None = None,
                 orthogonal_reg: float = 0.0, ema: float = 0.0, context_features: int = 0, standardize: bool = True):
        """Build a GAN for data ``spec``.

        Args:
            latent: dimension of the noise z ~ N(0, I) fed to the generator.
            hidden: MLP width; for the conv pair, the channels at H/4 (halved at H/2).
            depth: MLP hidden layers; conv: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            loss: "nonsaturating" (G maximises log D(G(z))) or "minimax" (G minimises log(1 - D(G(z)))).
            d_steps: discriminator updates per generator update.
            label_smoothing: one-sided label smoothing eps: D's target on real data is 1 - eps (fakes: 0).
            spectral_norm: "none", "discriminator" or "both": spectrally normalise the weights of D (and G).
            virtual_batchnorm: G's batch norms use a fixed reference batch's statistics plus the example's own.
            reference_size: size of the reference batch of virtual batch norm.
            conditional_bn: class-conditional G: BN gains and biases from a shared class embedding.
            minibatch_discrimination: minibatch-discrimination kernels in D (0: off; None: 16 for images, 0 for vectors).
            orthogonal_reg: beta of BigGAN's orthogonal regularisation of G's weights (0: off).
            ema: decay of the moving average of G's weights used for sampling (0: off; BigGAN 0.999).
            context_features: size of the context vector of a conditional GAN (appended to z, shown to D).
            standardize: continuous data: G and D work on (x - mean) / std per feature; samples are mapped back.
        """
        super().__init__(spec, latent=latent, hidden=hidden, depth=depth, arch=arch, loss=loss,
                         d_steps=d_steps, label_smoothing=label_smoothing, spectral_norm=spectral_norm,
                         virtual_batchnorm=virtual_batchnorm, reference_size=reference_size,
                         conditional_bn=conditional_bn, minibatch_discrimination=minibatch_discrimination,
                         orthogonal_reg=orthogonal_reg, ema=ema, context_features=context_features,
                         standardize=standardize)
        if loss == "hinge" and label_smoothing:
            raise ConfigError(f"gan: the hinge loss takes no label smoothing (its targets are margins); "
                              f"got label_smoothing={label_smoothing}")
        self.losses = get_adversarial_loss(loss)
        self.d_steps, self.label_smoothing = d_steps, label_smoothing
        self.spectral_norm, self.virtual_batchnorm, self.reference_size = spectral_norm, virtual_batchnorm, reference_size
        self.conditional_bn, self.minibatch_discrimination = conditional_bn, minibatch_discrimination
        self.orthogonal_reg, self.ema = orthogonal_reg, ema
        self.build_networks(latent, hidden, depth, arch, context_features)

    def build_networks(self, latent: int, hidden: int, depth: int, arch: str, context_features: int) -> None:
        """The generator and the discriminator (for subclasses a critic: its output, D's logit or the
        critic's score f(x), is never squashed).  The discriminator uses no batch statistics (the
        conv D has no BatchNorm, the MLP no normalisation), as a per-example gradient penalty needs."""
        spec, who = self.spec, self.name
        self.latent = latent
        shape = tuple(spec.shape)
        arch = self.resolve_arch(arch)
        if self.virtual_batchnorm and self.conditional_bn:
            raise ConfigError(f"{who}: choose one of virtual_batchnorm and conditional_bn for the generator's "
                              "batch norms, not both")
        if self.conditional_bn and not context_features:
            raise ConfigError(f"{who}: conditional_bn needs a class-conditional model (train with --context label)")
        mbd = self.minibatch_kernels(arch)
        norm = "virtual" if self.virtual_batchnorm else "conditional" if self.conditional_bn else "batch"
        g_options = dict(norm=norm, embed_features=EMBED_FEATURES if self.conditional_bn else 0,
                         reference_size=self.reference_size if self.virtual_batchnorm else 0)
        if arch == "conv":
            self.generator = DCGANGenerator(latent, shape, hidden, depth, context_features, **g_options)
            self.discriminator = DCGANDiscriminator(shape, hidden, depth, context_features,
                                                    minibatch_kernels=mbd)
        else:
            # The plain MLP generator has no normalisation; the BN tricks need an MLP with BN layers.
            self.generator = (MLPGenerator(latent, shape, hidden, depth, context_features, **g_options)
                              if norm != "batch" else FlatMLP(latent, shape, hidden, depth, context_features))
            # LeakyReLU(0.2) in D keeps gradients flowing to G where D's units are off (DCGAN's choice);
            # on ring8 it covered more modes than slope 0.01 in our runs.
            self.discriminator = MLPDiscriminator(spec.dim, hidden, depth, context_features, leaky_slope=0.2,
                                                  minibatch_kernels=mbd)
        if self.spectral_norm in ("discriminator", "both"):
            spectral_normalize(self.discriminator)
        if self.spectral_norm == "both":
            spectral_normalize(self.generator)
        self.generator_ema = None
        if self.ema:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def minibatch_kernels(self, arch: str) -> int:
        """Minibatch-discrimination kernels of D: ``minibatch_discrimination``, or by default (None)
        ``MINIBATCH_KERNELS_IMAGES`` for the conv D (images) and 0 for the MLP D (vectors)."""
        if self.minibatch_discrimination is None:
            return MINIBATCH_KERNELS_IMAGES if arch == "conv" else 0
        return self.minibatch_discrimination

    def resolve_arch(self, arch: str) -> str:
        """"conv" or "mlp" for ``arch`` ("auto": conv for images), after checking the data fit it:
        at least 2 levels; conv needs (C, H, W) images with H and W divisible by 4."""
        spec, who, shape = self.spec, self.name, tuple(self.spec.shape)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"{who}: data '{spec.name}' has {spec.levels} level; need at least 2")
        if arch == "auto":
            arch = "conv" if spec.is_image else "mlp"
        if arch == "conv":
            if not spec.is_image:
                raise ConfigError(f"{who}: arch 'conv' needs images (C, H, W); data '{spec.name}' has shape {shape}")
            _, h, w = shape
            if h % 4 or w % 4:
                raise ConfigError(f"{who}: the conv architecture needs H and W divisible by 4; image is {h}x{w} "
                                  "(use arch: mlp)")
        return arch

    # --- the players ------------------------------------------------------------
    def generator_parameters(self):
        return list(self.generator.parameters())

    def discriminator_parameters(self):
        return list(self.discriminator.parameters())

    def players(self) -> list[Player]:
        """Discriminator (``d_steps`` updates per step), then generator; both Adam with the run's settings.
        With ``ema`` the generator's moving average is updated after each generator update."""
        return [Player("discriminator", self.discriminator_parameters, steps=self.d_steps),
                Player("generator", self.generator_parameters,
                       after_step=self.update_ema if self.generator_ema is not None else None)]

    @torch.no_grad()
    def update_ema(self) -> None:
        """theta_ema <- d theta_ema + (1 - d) theta, d = min(ema, (1 + t) / (10 + t)) at update t (the
        warm-up keeps the initial weights from dominating short runs); buffers (BN statistics,
        spectral-norm vectors) are averaged alike when floating, copied otherwise."""
        t = int(self.ema_updates)
        d = min(self.ema, (1.0 + t) / (10.0 + t))
        live = self.generator.state_dict()
        for name, avg in self.generator_ema.state_dict().items():
            if avg.is_floating_point():
                avg.mul_(d).add_(live[name].detach(), alpha=1.0 - d)
            else:
                avg.copy_(live[name])
        self.ema_updates += 1

    def sampling_generator(self) -> nn.Module:
        """The generator that ``sample`` uses: the moving average with ``ema``, else the trained one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def generate(self, z: torch.Tensor, context: torch.Tensor | None = None,
                 generator: nn.Module | None = None) -> torch.Tensor:
        """G(z) on the discriminator's scale: in [0, 1] for discrete data (sigmoid), unbounded otherwise.
        ``generator``: another network of the same shape (the EMA generator); default the trained one."""
        g = (generator or self.generator)(z, self.check_context(context, len(z)))
        return torch.sigmoid(g) if self.spec.levels is not None else g

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's last hidden layer for data ``x`` on the data's scale: (B, F), a representation for linear
        probes (Radford et al. 2016 read DCGAN's discriminator features this way)."""
        return self.discriminator.features(self.to_d_scale(x), self.check_context(context, len(x)))

    def discriminate(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits l(x), shape (B,), for inputs already on D's scale (see :meth:`to_d_scale`)."""
        return self.discriminator(x_scaled, context).squeeze(-1)

    def to_d_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> D's scale: for L levels (x + u) / L, u ~ U[0, 1) in training mode and u = 1/2 in eval
        mode (uniform dequantization); standardised (x - m) / s for continuous data."""
        if self.spec.levels is None:
            return self.to_model_space(x)
        u = torch.rand_like(x) if self.training else torch.full_like(x, 0.5)
        return (x + u) / self.spec.levels

    def from_d_scale(self, g: torch.Tensor) -> torch.Tensor:
        """D's scale -> data scale: floor(L g) clamped to 0..L-1 for L levels (the inverse of the
        dequantization), G(z) s + m for continuous data."""
        if self.spec.levels is None:
            return self.from_model_space(g)
        return torch.floor(g * self.spec.levels).clamp_(0, self.spec.levels - 1)

    def noise(self, n: int, temperature: float = 1.0, truncation: float | None = None) -> torch.Tensor:
        """z ~ N(0, I) (each coordinate truncated to [-t, t] with ``truncation`` = t), times ``temperature``."""
        return truncated_normal(n, self.latent, truncation, self.device) * temperature

    # --- the game ---------------------------------------------------------------
    def adversarial_forward(self, batch) -> dict:
        """The shared pass of one round: real data on D's scale and fakes G(z) (with gradient)."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        return {"real": self.to_d_scale(x), "context": context,
                "fake": self.generate(self.noise(len(x)), context)}

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: D's loss on the real batch and the detached fakes, with diagnostics
        ``d_real`` = mean D(x) and ``d_fake`` = mean D(G(z)).  ``generator``: G's loss through
        the shared fakes (D frozen by the adapter), with ``d_fake``."""
        context = shared["context"]
        if name == "discriminator":
            real_logits = self.discriminate(shared["real"], context)
            fake_logits = self.discriminate(shared["fake"].detach(), context)
            return {"loss": self.losses.discriminator(real_logits, fake_logits, self.label_smoothing),
                    "d_real": torch.sigmoid(real_logits).mean().detach(),
                    "d_fake": torch.sigmoid(fake_logits).mean().detach()}
        if name == "generator":
            logits = self.discriminate(shared["fake"], context)
            out = {"loss": self.losses.generator(logits), "d_fake": torch.sigmoid(logits).mean().detach()}
            if self.orthogonal_reg:
                reg = orthogonal_regularization(self.generator_weights())
                out["loss"] = out["loss"] + self.orthogonal_reg * reg
                out["orthogonal_reg"] = reg.detach()
            return out
        raise ConfigError(f"gan: no player named {name!r} (players: discriminator, generator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients (a GAN has no single loss to minimise).

        ``loss`` is D's loss -V(D, G) (the value the discriminator minimises and the
        minimax generator maximises); ``g_loss`` is the generator's loss; ``d_real``
        and ``d_fake`` are D's mean outputs on real and generated data.
        """
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            d = self.player_loss("discriminator", batch, shared)
            g = self.player_loss("generator", batch, shared)
        return {"loss": d["loss"], "g_loss": g["loss"], "d_real": d["d_real"], "d_fake": d["d_fake"]}

    def generator_weights(self) -> list[torch.Tensor]:
        """The weight matrices / kernels of G's linear and conv layers (the spectrally normalised
        weights where spectral norm is on), which the orthogonal regularisation reads."""
        layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
        return [m.weight for m in self.generator.modules() if isinstance(m, layers)]

    # --- protocol ---------------------------------------------------------------
    def log_prob(self, x, context=None):
        raise DensityError(
            "gan: a GAN is an implicit model and defines no density, so it has no log-likelihood; "
            "judge it by its samples (`sample`, mode coverage, sample distances such as the energy distance)"
        )

    def sample(self, n, context=None, temperature=1.0, truncation: float | None = None):
        """n samples on the data's scale: G(temperature * z), z ~ N(0, I) (truncated to |z_i| <= t with
        ``truncation`` = t); integers 0..L-1 for discrete data.  With ``ema`` the averaged generator draws.

        BatchNorm layers use batch statistics in train mode; call ``eval()`` for
        samples that do not depend on the batch.
        """
        with torch.no_grad():
            g = self.generate(self.noise(n, temperature, truncation), context, self.sampling_generator())
        return self.from_d_scale(g)
