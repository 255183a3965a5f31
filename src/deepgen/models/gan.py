"""Generative adversarial network (Goodfellow et al. 2014): an implicit model.

A generator G maps noise z ~ N(0, I_latent) to data; a discriminator D(x) =
sigmoid(l(x)) tells real from generated data.  The two play

    min_G max_D  V(D, G) = E_x log D(x) + E_z log(1 - D(G(z)))

and are trained by alternating gradient steps (see
:mod:`deepgen.training.adversarial`): ``d_steps`` discriminator steps on
:func:`~deepgen.losses.adversarial.discriminator_bce`, then one generator step
on the ``loss`` chosen here ("nonsaturating": -E log D(G(z)); "minimax":
E log(1 - D(G(z))), the saturating original).

A GAN defines no density: ``log_prob`` raises :class:`DensityError`.  It is
judged by its samples (:mod:`deepgen.evaluation.sample_metrics`,
:mod:`deepgen.evaluation.modes`).

Data scale.  For discrete data with L levels the generator ends in a sigmoid,
so G(z) is in [0, 1]; real data are shown to D as x / (L - 1), and ``sample``
returns round(G(z) (L - 1)), integers 0..L-1 on the data's own scale.  For
continuous data G's output is unbounded and D sees the data as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import get_adversarial_loss
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.registry import register
from deepgen.nets import MLP

ARCHS = ("auto", "mlp", "conv")


class ConvGenerator(nn.Module):
    """DCGAN-style generator for (C, H, W) images with H, W divisible by 4.

    [z, context] -> linear -> (hidden, H/4, W/4) -> ConvT 4x4/2 -> (hidden/2, H/2, W/2)
    -> ConvT 4x4/2 -> (C, H, W).  Every layer but the last has BatchNorm + ReLU;
    ``depth - 1`` extra 3x3 conv + BatchNorm + ReLU layers follow at H/4 and H/2.
    """

    def __init__(self, latent: int, shape, hidden: int, depth: int, context_features: int = 0):
        super().__init__()
        c, h, w = shape
        self.start = (hidden, h // 4, w // 4)
        self.fc = nn.Linear(latent + context_features, hidden * (h // 4) * (w // 4))
        half = hidden // 2
        layers = [nn.BatchNorm2d(hidden), nn.ReLU()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=True, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(hidden, half, 4, stride=2, padding=1), nn.BatchNorm2d(half), nn.ReLU()]
        layers += _conv3x3_stack(half, depth - 1, norm=True, act=nn.ReLU)
        layers += [nn.ConvTranspose2d(half, c, 4, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z, context=None):
        if context is not None:
            z = torch.cat([z, context], -1)
        return self.body(self.fc(z).view(len(z), *self.start))


class ConvDiscriminator(nn.Module):
    """DCGAN-style discriminator: strided 4x4 convs + LeakyReLU(0.2), no normalisation.

    (C [+ context as constant channels], H, W) -> conv 4x4/2 -> (hidden/2, H/2, W/2)
    -> conv 4x4/2 -> (hidden, H/4, W/4) -> linear -> one logit; ``depth - 1`` extra
    3x3 conv + LeakyReLU layers follow each strided conv.  No BatchNorm: D sees
    all-real and all-fake batches separately, and batch statistics would let it
    tell them apart by the batch rather than by the example.
    """

    def __init__(self, shape, hidden: int, depth: int, context_features: int = 0):
        super().__init__()
        c, h, w = shape
        half = hidden // 2
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        layers = [nn.Conv2d(c + context_features, half, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(half, depth - 1, norm=False, act=act)
        layers += [nn.Conv2d(half, hidden, 4, stride=2, padding=1), act()]
        layers += _conv3x3_stack(hidden, depth - 1, norm=False, act=act)
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.out = nn.Linear(hidden * (h // 4) * (w // 4), 1)

    def forward(self, x, context=None):
        if context is not None:
            x = torch.cat([x, context[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.out(self.body(x))


def _conv3x3_stack(channels, n, norm, act):
    layers = []
    for _ in range(max(0, n)):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        if norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(act())
    return layers


class FlatMLP(nn.Module):
    """An :class:`MLP` on flattened inputs whose output is reshaped to ``out_shape``.

    ``leaky_slope`` > 0 uses LeakyReLU(leaky_slope) activations (ReLU otherwise).
    """

    def __init__(self, in_features, out_shape, hidden, depth, context_features, leaky_slope=0.0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        n_out = 1
        for s in self.out_shape:
            n_out *= s
        self.net = MLP(in_features, n_out, hidden, depth, context_features,
                       activation="leaky_relu" if leaky_slope > 0 else "relu")
        for m in self.net.modules():
            if isinstance(m, nn.LeakyReLU):  # MLP builds LeakyReLU() with torch's default slope 0.01
                m.negative_slope = leaky_slope

    def forward(self, x, context=None):
        return self.net(x.flatten(1), context).view(len(x), *self.out_shape)


@register
class GAN(GenerativeModel):
    """GAN (Goodfellow et al. 2014): generator + discriminator, trained adversarially.

    Parameters: ``latent`` (dimension of z ~ N(0, I)), ``hidden`` (MLP width; for
    the conv pair, the channels at H/4, halved at H/2), ``depth`` (MLP hidden
    layers; conv: 1 + extra 3x3 layers per resolution), ``arch`` ("auto": conv
    for images, MLP for vectors; "mlp"; "conv"), ``loss`` ("nonsaturating" or
    "minimax"), ``d_steps`` (discriminator steps per generator step),
    ``context_features`` (conditional GAN: the context is appended to z and
    shown to D).
    """

    name = "gan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    description = "GAN (implicit, no density): MLP or DCGAN-style pair, non-saturating or minimax loss"
    # Merged under the user's fields by TrainConfig.from_dict; measured on ring8, 5000 steps:
    # * Adam with beta1 = 0.5 as in DCGAN (Radford et al. 2016), no warm-up.
    # * lr 1e-3, not DCGAN's 2e-4: at 2e-4 neither ring8 (no mode reached in 5000 steps) nor
    #   digits (energy distance 20 after 2000 steps, vs 2.1 at 1e-3) got anywhere on a CPU budget.
    # * Cosine decay to 0: at a constant rate the game keeps hopping between modes to the end
    #   (batch 512, seeds 0/1/2: 6/5/2 of 8 modes covered, 48/27/66% high quality); annealing
    #   lets it settle (batch 512: 6/8/8 modes, 80-89%; batch 128, seeds 0-4: 8/7/8/7/8, 75-85%).
    train_defaults = {"lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 128, depth: int = 2, arch: str = "auto",
                 loss: str = "nonsaturating", d_steps: int = 1, context_features: int = 0):
        super().__init__(spec, latent=latent, hidden=hidden, depth=depth, arch=arch, loss=loss,
                         d_steps=d_steps, context_features=context_features)
        for key, value, low in (("latent", latent, 1), ("hidden", hidden, 2), ("depth", depth, 1),
                                ("d_steps", d_steps, 1), ("context_features", context_features, 0)):
            if value < low:
                raise ConfigError(f"gan: parameter '{key}' must be >= {low}, got {value}")
        if arch not in ARCHS:
            raise ConfigError(f"gan: parameter 'arch' must be one of {', '.join(ARCHS)}; got {arch!r}")
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"gan: data '{spec.name}' has {spec.levels} level; need at least 2")
        self.losses = get_adversarial_loss(loss)
        self.latent, self.d_steps, self.context_features = latent, d_steps, context_features
        shape = tuple(spec.shape)
        if arch == "auto":
            arch = "conv" if spec.is_image else "mlp"
        if arch == "conv":
            if not spec.is_image:
                raise ConfigError(f"gan: arch 'conv' needs images (C, H, W); data '{spec.name}' has shape {shape}")
            _, h, w = shape
            if h % 4 or w % 4:
                raise ConfigError(f"gan: the conv architecture needs H and W divisible by 4; image is {h}x{w} "
                                  "(use arch: mlp)")
            self.generator = ConvGenerator(latent, shape, hidden, depth, context_features)
            self.discriminator = ConvDiscriminator(shape, hidden, depth, context_features)
        else:
            self.generator = FlatMLP(latent, shape, hidden, depth, context_features)
            # LeakyReLU(0.2) in D keeps gradients flowing to G where D's units are off (DCGAN's choice);
            # on ring8 it covered more modes than slope 0.01 in our runs.
            self.discriminator = FlatMLP(spec.dim, (1,), hidden, depth, context_features, leaky_slope=0.2)

    # --- the two networks -------------------------------------------------------
    def generator_parameters(self):
        return list(self.generator.parameters())

    def discriminator_parameters(self):
        return list(self.discriminator.parameters())

    def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) on the discriminator's scale: in [0, 1] for discrete data (sigmoid), unbounded otherwise."""
        g = self.generator(z, self._check_context(context, len(z)))
        return torch.sigmoid(g) if self.spec.levels is not None else g

    def discriminate(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits l(x), shape (B,), for inputs already on D's scale (see :meth:`to_d_scale`)."""
        return self.discriminator(x_scaled, context).squeeze(-1)

    def to_d_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> D's scale: x / (L - 1) for L levels, unchanged for continuous data."""
        return x / (self.spec.levels - 1) if self.spec.levels is not None else x

    def noise(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return torch.randn(n, self.latent, device=self.device) * temperature

    def _check_context(self, context, n):
        if self.context_features and context is None:
            raise ConfigError(f"gan: this model is conditional (context_features={self.context_features}); "
                              "pass a context")
        if context is not None:
            if not self.context_features:
                raise ConfigError("gan: got a context but the model has context_features=0")
            if context.shape != (n, self.context_features):
                raise ConfigError(f"gan: context must have shape ({n}, {self.context_features}), "
                                  f"got {tuple(context.shape)}")
        return context

    # --- the game ---------------------------------------------------------------
    def discriminator_loss(self, batch) -> dict[str, torch.Tensor]:
        """D's loss on a real batch and as many fakes (G frozen: fakes made without gradient).

        Returns ``loss`` and the diagnostics ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)).
        """
        x, context = unpack_batch(batch)
        with torch.no_grad():
            fake = self.generate(self.noise(len(x)), context)
        real_logits = self.discriminate(self.to_d_scale(x), context)
        fake_logits = self.discriminate(fake, context)
        return {
            "loss": self.losses.discriminator(real_logits, fake_logits),
            "d_real": torch.sigmoid(real_logits).mean().detach(),
            "d_fake": torch.sigmoid(fake_logits).mean().detach(),
        }

    def generator_loss(self, n_or_batch) -> dict[str, torch.Tensor]:
        """G's loss on ``n`` fakes (an int) or on as many fakes as a batch has, with its context.

        Gradients reach D's parameters too; the training adapter freezes them in G steps.
        Returns ``loss`` and ``d_fake`` = mean D(G(z)).
        """
        if isinstance(n_or_batch, int):
            n, context = n_or_batch, None
        else:
            x, context = unpack_batch(n_or_batch)
            n = len(x)
        logits = self.discriminate(self.generate(self.noise(n), context), context)
        return {"loss": self.losses.generator(logits), "d_fake": torch.sigmoid(logits).mean().detach()}

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients (a GAN has no single loss to minimise).

        ``loss`` is D's loss -V(D, G) (the value the discriminator minimises and the
        minimax generator maximises); ``g_loss`` is the generator's loss.  Training
        alternates the two through :class:`deepgen.training.adversarial.AdversarialModule`.
        """
        with torch.no_grad():
            d = self.discriminator_loss(batch)
            g = self.generator_loss(batch)
        return {"loss": d["loss"], "g_loss": g["loss"], "d_real": d["d_real"], "d_fake": d["d_fake"]}

    # --- protocol ---------------------------------------------------------------
    def log_prob(self, x, context=None):
        raise DensityError(
            "gan: a GAN is an implicit model and defines no density, so it has no log-likelihood; "
            "judge it by its samples (`sample`, mode coverage, sample distances such as the energy distance)"
        )

    def sample(self, n, context=None, temperature=1.0):
        """n samples on the data's scale: G(temperature * z), z ~ N(0, I); integers 0..L-1 for discrete data.

        BatchNorm layers use batch statistics in train mode; call ``eval()`` for
        samples that do not depend on the batch.
        """
        with torch.no_grad():
            g = self.generate(self.noise(n, temperature), context)
        if self.spec.levels is not None:
            g = torch.round(g * (self.spec.levels - 1))
        return g
