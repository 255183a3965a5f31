"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN.

A generator G maps an input a of domain A to an output of domain B; a discriminator D
judges (input, output) pairs: real (a, b) against fake (a, G(a)).  With D's logits l,

    L_D = 1/2 [E softplus(-l(a, b)) + E softplus(l(a, G(a)))]        (BCE, halved as in the paper)
    L_G = w_GAN E softplus(-l(a, G(a)))  +  lambda_L1 E |b - G(a)|,    lambda_L1 = 100

(``gan_loss="least_squares"``: L_D = 1/2 [E (D(a, b) - 1)^2 + E D(a, G(a))^2], L_G's GAN term
E (D(a, G(a)) - 1)^2).  Every expectation is a mean over examples and entries (pixels, and the
patches of D's score grid), on the networks' scale: levels dequantized to [0, 1] (see
:mod:`deepgen.models.translation.translator`), so lambda_L1 = 100 weighs a [0, 1] error as 50
does one on the paper's [-1, 1] scale.

The L1 term alone gives the conditional median, which is blurry where the output is uncertain;
the GAN term pushes outputs onto the data (sharp strokes).  ``gan_weight=0`` drops D altogether:
the L1-only U-Net baseline of the paper's ablation.

Images: G is a :class:`~deepgen.nets.unet.UNet` sized for the image (skip connections at every
scale, down to a 1-pixel bottleneck; 8x8 and non-square images work) and D a
:class:`~deepgen.nets.patchgan.PatchGAN` on the channels of a and G(a) concatenated, with a
receptive field of ``patch`` pixels.  G's noise is dropout (p = ``dropout`` in the three
innermost decoder blocks), active in training only, as in the paper; ``translate`` runs in
eval mode, so translations are deterministic (the paper kept dropout at test time to draw
several outputs; here one deterministic map is measured).  Vectors: G and D are MLPs (D on
[a, b] concatenated), and G has no noise.

Players: discriminator, then generator (one update each per step); the shared pass is G(a).
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.losses.translation import TRANSLATION_GAN_LOSSES, get_translation_gan_loss, l1_reconstruction
from deepgen.models.players import Player
from deepgen.models.translation.translator import Translator
from deepgen.nets.unet import NORMS, UNet


class Pix2Pix(Translator):
    """pix2pix: U-Net generator, PatchGAN on (input, output) pairs, L1 + conditional GAN loss; paired data."""

    name = "pix2pix"
    description = ("pix2pix (paired translation A -> B): U-Net generator with dropout noise, PatchGAN on "
                   "(input, output) pairs, L1 (lambda 100) + conditional GAN loss; gan_weight=0: L1-only U-Net")
    needs_pairs = True
    train_defaults = {"lr": 2e-4, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}
    shape_params = {"image": ("channels", "norm", "dropout", "patch", "d_channels"), "vector": ("hidden", "depth")}
    param_constraints = {"gan_weight": ">= 0", "l1_weight": ">= 0", "gan_loss": tuple(TRANSLATION_GAN_LOSSES),
                         "channels": ">= 1", "norm": NORMS, "dropout": "in [0, 1)", "patch": ">= 1",
                         "d_channels": ">= 1", "hidden": ">= 1", "depth": ">= 1"}

    def __init__(self, spec: DataSpec, gan_weight: float = 1.0, l1_weight: float = 100.0, gan_loss: str = "bce",
                 channels: int = 64, norm: str = "batch", dropout: float = 0.5, patch: int = 12,
                 d_channels: int = 64, hidden: int = 256, depth: int = 3, standardize: bool = True):
        """Build pix2pix for data ``spec`` (domains A and B share it).

        Args:
            gan_weight: weight of the conditional GAN term in G's loss; 0 drops the discriminator
                (the L1-only U-Net baseline).
            l1_weight: lambda_L1, the weight of E |b - G(a)| in G's loss (on the [0, 1] scale of levels).
            gan_loss: "bce" (the paper: D's cross-entropy, halved) or "least_squares".
            channels: U-Net channels at the first level, doubled per level up to 8x.
            norm: the U-Net's normalisation: "batch" (the paper), "instance" or "none".
            dropout: dropout probability in the three innermost U-Net decoder blocks (training only): G's noise.
            patch: receptive field of D's scores in pixels, rounded up to 7 2^n - 2 (5, 12, 26, 54, ...).
            d_channels: PatchGAN channels after its first layer, doubled per halving up to 8x.
            hidden: width of the MLP generator and discriminator (vectors).
            depth: hidden layers of the MLPs (vectors).
            standardize: continuous data: each domain standardised with its training statistics.
        """
        super().__init__(spec, gan_weight=gan_weight, l1_weight=l1_weight, gan_loss=gan_loss, channels=channels,
                         norm=norm, dropout=dropout, patch=patch, d_channels=d_channels, hidden=hidden, depth=depth,
                         standardize=standardize)
        self.gan_weight, self.l1_weight = gan_weight, l1_weight
        self.losses = get_translation_gan_loss(gan_loss)
        self.gan_loss = gan_loss
        if spec.is_image:
            c, h, w = spec.shape
            self.generator = UNet(c, c, (h, w), channels, norm=norm, dropout=dropout)
            self.discriminator = self.patch_discriminator(2 * c, d_channels, patch) if gan_weight > 0 else None
        else:
            self.generator = self.mlp_generator(hidden, depth)
            self.discriminator = self.mlp_discriminator(2 * spec.dim, hidden, depth) if gan_weight > 0 else None

    # --- networks -------------------------------------------------------------------
    def generate(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        return self.generator_output(self.generator(h))

    def discriminate(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """D's logits (scores) of pairs (a, b) on the networks' scale: a (B, 1, H', W') grid for images, (B, 1)
        for vectors."""
        pair = torch.cat([a, b], 1) if self.spec.is_image else torch.cat([a.flatten(1), b.flatten(1)], 1)
        return self.discriminator(pair)

    def d_output(self, logits: torch.Tensor) -> torch.Tensor:
        """D's mean output: its probability of "real" (sigmoid of the logit) for BCE, the raw score for least squares."""
        return (torch.sigmoid(logits) if self.gan_loss == "bce" else logits).mean().detach()

    # --- the game -------------------------------------------------------------------
    def players(self) -> list[Player]:
        """Discriminator then generator (only the generator when ``gan_weight=0``)."""
        g = Player("generator", lambda: list(self.generator.parameters()))
        if self.discriminator is None:
            return [g]
        return [Player("discriminator", lambda: list(self.discriminator.parameters())), g]

    def adversarial_forward(self, batch) -> dict:
        """a and b on the networks' scale and the fakes G(a) (with gradient)."""
        b, a = self.unpack(batch)
        a = self.to_net(a, "A")
        return {"a": a, "b": self.to_net(b, "B"), "fake": self.generate(a)}

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: L_D on real pairs (a, b) and detached fake pairs (a, G(a)), with ``d_real`` and
        ``d_fake`` (D's mean outputs).  ``generator``: L_G with its terms ``l1`` and ``gan``."""
        a, b, fake = shared["a"], shared["b"], shared["fake"]
        if name == "discriminator" and self.discriminator is not None:
            real_logits = self.discriminate(a, b)
            fake_logits = self.discriminate(a, fake.detach())
            return {"loss": self.losses.discriminator(real_logits, fake_logits),
                    "d_real": self.d_output(real_logits), "d_fake": self.d_output(fake_logits)}
        if name == "generator":
            l1 = l1_reconstruction(fake, b)
            out = {"loss": self.l1_weight * l1, "l1": l1.detach()}
            if self.discriminator is not None:
                gan = self.losses.generator(self.discriminate(a, fake))
                out["loss"] = out["loss"] + self.gan_weight * gan
                out["gan"] = gan.detach()
            return out
        names = ", ".join(p.name for p in self.players())
        raise ConfigError(f"pix2pix: no player named {name!r} (players: {names})")

    def figures(self, batch) -> dict[str, torch.Tensor]:
        """``loss`` = L_G, ``l1`` = E |b - G(a)| on the networks' scale, and with a discriminator ``gan`` (G's GAN
        term), ``d_loss``, ``d_real``, ``d_fake``."""
        shared = self.adversarial_forward(batch)
        out = self.player_loss("generator", batch, shared)
        if self.discriminator is not None:
            d = self.player_loss("discriminator", batch, shared)
            out.update(d_loss=d["loss"], d_real=d["d_real"], d_fake=d["d_fake"])
        return out
