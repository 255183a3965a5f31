"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Two generators G_AB: A -> B and G_BA: B -> A, two discriminators D_B (real b vs G_AB(a))
and D_A (real a vs G_BA(b)), a least-squares GAN loss, and cycle consistency.  With lambda
= ``cycle_weight`` (10) and ``identity`` = 0.5:

    L_G = E (D_B(G_AB(a)) - 1)^2 + E (D_A(G_BA(b)) - 1)^2
          + lambda [E |G_BA(G_AB(a)) - a| + E |G_AB(G_BA(b)) - b|]              (cycle)
          + identity * lambda [E |G_BA(a) - a| + E |G_AB(b) - b|]               (identity)
    L_D = 1/2 [E (D_B(b) - 1)^2 + E D_B(b~)^2] + 1/2 [E (D_A(a) - 1)^2 + E D_A(a~)^2]

where b~ and a~ are drawn from pools of the last 50 fakes of each direction
(:class:`~deepgen.nets.image_pool.ImagePool`).  Expectations are means over examples and
entries (and the patches of D's score grid) on the networks' scale (levels dequantized to
[0, 1]; continuous data standardised per domain: see :mod:`deepgen.models.translation.translator`).
The identity term compares a generator's output on an example of its own target domain with
that example in the same data units.  ``gan_loss="bce"`` uses the halved cross-entropy instead.

The GAN terms alone only match distributions: any bijection between the domains' supports
would do (e.g. one that flips digit labels); the cycle terms ask the two maps to be inverse,
which favours simple, structure-keeping maps but does not force the right one.

Networks.  Images: generators are a full-resolution residual net (``arch="resnet"``, the
default: :class:`~deepgen.nets.resnet.ConvResNet`, ``blocks`` residual blocks of ``channels``;
no down-sampling, since small images have little room for it) or a U-Net (``arch="unet"``,
instance norm by default as in CycleGAN); discriminators are PatchGANs with a receptive field
of ``patch`` pixels.  Vectors (e.g. 2-D mixtures): MLP generators and discriminators.

Players: ``generators`` (G_AB and G_BA together), then ``discriminators`` (D_A and D_B); the
shared pass is the four translations G_AB(a), G_BA(b), G_BA(G_AB(a)), G_AB(G_BA(b)).

Image pools.  The pools are training-time state, held in non-persistent buffers: not saved
with the weights (translations do not depend on them), empty after loading or resuming;
their random choices come from the global RNG, so a seeded run is reproducible.  ``loss``
(figures) scores D on the current fakes and leaves the pools untouched.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.losses.translation import (
    TRANSLATION_GAN_LOSSES, cycle_loss, get_translation_gan_loss, identity_loss,
)
from deepgen.models.players import Player
from deepgen.models.translation.translator import Translator
from deepgen.nets import ConvResNet
from deepgen.nets.image_pool import ImagePool
from deepgen.nets.unet import NORMS, UNet

ARCHS = ("auto", "resnet", "unet", "mlp")


class CycleGAN(Translator):
    """CycleGAN: generators G_AB, G_BA, discriminators D_A, D_B; LSGAN + cycle + identity losses; image pools."""

    name = "cyclegan"
    description = ("CycleGAN (unpaired translation A <-> B): two generators and two discriminators, least-squares "
                   "GAN loss, cycle (lambda 10) and identity (0.5 lambda) losses, pools of 50 past fakes")
    bidirectional = True
    # Image defaults (channels 32, 2 blocks, D 32) sized for a CPU budget: on digits2thick (8x8), 1500 steps took
    # 5 steps/s on one loaded thread and reached MAE 1.48 levels against T(a) (identity map 4.69); 64 channels
    # and 4 blocks cost about 4x the time per step.
    train_defaults = {"lr": 2e-4, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}
    shape_params = {"image": ("channels", "blocks", "norm", "patch", "d_channels"), "vector": ("hidden", "depth")}
    param_constraints = {"cycle_weight": ">= 0", "identity": ">= 0", "pool_size": ">= 0",
                         "gan_loss": tuple(TRANSLATION_GAN_LOSSES), "arch": ARCHS, "channels": ">= 1",
                         "blocks": ">= 1", "norm": NORMS, "patch": ">= 1", "d_channels": ">= 1", "hidden": ">= 1",
                         "depth": ">= 1"}

    def __init__(self, spec: DataSpec, cycle_weight: float = 10.0, identity: float = 0.5, pool_size: int = 50,
                 gan_loss: str = "least_squares", arch: str = "auto", channels: int = 32, blocks: int = 2,
                 norm: str = "instance", patch: int = 12, d_channels: int = 32, hidden: int = 256, depth: int = 3,
                 standardize: bool = True):
        """Build CycleGAN for data ``spec`` (domains A and B share it).

        Args:
            cycle_weight: lambda, the weight of the cycle-consistency terms.
            identity: weight of the identity terms as a fraction of lambda (0.5: the paper's 0.5 lambda; 0: off).
            pool_size: fakes kept per direction for the discriminators' updates (0: the latest batch only).
            gan_loss: "least_squares" (the paper) or "bce" (D's cross-entropy, halved; G non-saturating).
            arch: "auto" (resnet for images, mlp for vectors), "resnet", "unet" or "mlp".
            channels: resnet: channels of every block; unet: channels at the first level (doubled per level).
            blocks: residual blocks of the resnet generators.
            norm: the U-Net generators' normalisation: "instance" (the paper), "batch" or "none".
            patch: receptive field of D's scores in pixels, rounded up to 7 2^n - 2 (5, 12, 26, 54, ...).
            d_channels: PatchGAN channels after its first layer, doubled per halving up to 8x.
            hidden: width of the MLP generators and discriminators (vectors).
            depth: hidden layers of the MLPs (vectors).
            standardize: continuous data: each domain standardised with its training statistics.
        """
        super().__init__(spec, cycle_weight=cycle_weight, identity=identity, pool_size=pool_size, gan_loss=gan_loss,
                         arch=arch, channels=channels, blocks=blocks, norm=norm, patch=patch, d_channels=d_channels,
                         hidden=hidden, depth=depth, standardize=standardize)
        self.cycle_weight, self.identity = cycle_weight, identity
        self.losses = get_translation_gan_loss(gan_loss)
        if arch == "auto":
            arch = "resnet" if spec.is_image else "mlp"
        if arch != "mlp" and not spec.is_image:
            raise ConfigError(f"cyclegan: arch '{arch}' needs images (C, H, W); data '{spec.name}' has shape "
                              f"{tuple(spec.shape)} (use arch: mlp)")
        if arch == "mlp" and spec.is_image:
            raise ConfigError(f"cyclegan: arch 'mlp' is for vectors; data '{spec.name}' are images (use resnet or unet)")
        self.arch = arch
        for direction in ("g_ab", "g_ba"):
            if arch == "resnet":
                net = ConvResNet(spec.shape[0], spec.shape[0], channels, blocks)
            elif arch == "unet":
                net = UNet(spec.shape[0], spec.shape[0], spec.shape[1:], channels, norm=norm, dropout=0.0)
            else:
                net = self.mlp_generator(hidden, depth)
            setattr(self, direction, net)
        for domain in ("d_a", "d_b"):
            setattr(self, domain, self.patch_discriminator(spec.shape[0], d_channels, patch) if spec.is_image
                    else self.mlp_discriminator(spec.dim, hidden, depth))
        self.pool_a = ImagePool(pool_size, spec.shape)
        self.pool_b = ImagePool(pool_size, spec.shape)

    # --- networks -------------------------------------------------------------------
    def generate(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """G_AB(h) (G_BA(h) with ``reverse``) on the networks' scale."""
        return self.generator_output((self.g_ba if reverse else self.g_ab)(h))

    def generator_parameters(self):
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def discriminator_parameters(self):
        return [*self.d_a.parameters(), *self.d_b.parameters()]

    # --- the game -------------------------------------------------------------------
    def players(self) -> list[Player]:
        """Generators (G_AB and G_BA), then discriminators (D_A and D_B)."""
        return [Player("generators", self.generator_parameters), Player("discriminators", self.discriminator_parameters)]

    def adversarial_forward(self, batch) -> dict:
        """a, b on the networks' scale and the four translations (with gradient)."""
        b, a = self.unpack(batch)
        a, b = self.to_net(a, "A"), self.to_net(b, "B")
        fake_b, fake_a = self.generate(a), self.generate(b, reverse=True)
        return {"a": a, "b": b, "fake_a": fake_a, "fake_b": fake_b,
                "cycled_a": self.generate(fake_b, reverse=True), "cycled_b": self.generate(fake_a)}

    def generator_losses(self, shared: dict) -> dict[str, torch.Tensor]:
        """L_G and its terms ``gan_ab`` (D_B on G_AB(a)), ``gan_ba`` (D_A on G_BA(b)), ``cycle``, ``identity``."""
        a, b = shared["a"], shared["b"]
        gan_ab = self.losses.generator(self.d_b(shared["fake_b"]))
        gan_ba = self.losses.generator(self.d_a(shared["fake_a"]))
        cyc = cycle_loss(a, shared["cycled_a"], b, shared["cycled_b"])
        loss = gan_ab + gan_ba + self.cycle_weight * cyc
        out = {"gan_ab": gan_ab.detach(), "gan_ba": gan_ba.detach(), "cycle": cyc.detach()}
        if self.identity > 0:
            # each generator fed its own target domain; compared in the same data units
            a_kept = self.generate(self.recode(a, "A", "B"), reverse=True)
            b_kept = self.generate(self.recode(b, "B", "A"))
            idt = identity_loss(a, a_kept, b, b_kept)
            loss = loss + self.identity * self.cycle_weight * idt
            out["identity"] = idt.detach()
        return {"loss": loss, **out}

    def discriminator_losses(self, shared: dict, pooled: bool) -> dict[str, torch.Tensor]:
        """L_D = L_{D_A} + L_{D_B} on real examples and detached fakes (from the pools when ``pooled``), with
        the terms ``d_a``, ``d_b``."""
        fake_a, fake_b = shared["fake_a"].detach(), shared["fake_b"].detach()
        if pooled:
            fake_a, fake_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        d_a = self.losses.discriminator(self.d_a(shared["a"]), self.d_a(fake_a))
        d_b = self.losses.discriminator(self.d_b(shared["b"]), self.d_b(fake_b))
        return {"loss": d_a + d_b, "d_a": d_a.detach(), "d_b": d_b.detach()}

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``generators``: L_G with its terms; ``discriminators``: L_D on the pools' fakes (updates the pools)."""
        if name == "generators":
            return self.generator_losses(shared)
        if name == "discriminators":
            return self.discriminator_losses(shared, pooled=True)
        raise ConfigError(f"cyclegan: no player named {name!r} (players: generators, discriminators)")

    def figures(self, batch) -> dict[str, torch.Tensor]:
        """``loss`` = L_G with its terms, and ``d_loss``, ``d_a``, ``d_b`` on the current fakes (pools untouched)."""
        shared = self.adversarial_forward(batch)
        out = self.generator_losses(shared)
        d = self.discriminator_losses(shared, pooled=False)
        out.update(d_loss=d["loss"], d_a=d["d_a"], d_b=d["d_b"])
        return out
