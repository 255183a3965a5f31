"""Wasserstein GAN (Arjovsky, Chintala and Bottou 2017): an implicit model.

A critic f(x), a real number (no sigmoid: not a probability), estimates the
earth mover's distance through the Kantorovich-Rubinstein duality

    W_1(p_data, p_G) = max_{||f||_L <= 1}  E_x f(x) - E_z f(G(z)),

and the generator minimises the estimate.  The two players of
:mod:`deepgen.training.adversarial`:

* ``critic`` (``n_critic`` updates per training step, each on a fresh batch and
  fresh fakes): minimises L_f = E_z f(G(z)) - E_x f(x)
  (:func:`~deepgen.losses.adversarial.critic_wasserstein`); after every update its
  weights are clipped, w <- clamp(w, -c, c) (``clip`` = c), which keeps f K-Lipschitz
  for some K, so -L_f estimates K W_1;
* ``generator``: minimises L_G = -E_z f(G(z))
  (:func:`~deepgen.losses.adversarial.generator_wasserstein`) through the updated critic.

Both use RMSprop, as in the paper (momentum methods made the clipped critic
unstable there).  Diagnostic ``wasserstein`` = E_x f(x) - E_z f(G(z)) on the batch.

Networks, data scale and sampling are the GAN's (:class:`~deepgen.models.adversarial.gan.GAN`):
an MLP pair for vectors (critic with LeakyReLU(0.2)), a DCGAN pair for images
(critic without BatchNorm); a WGAN defines no density.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.losses.adversarial import critic_wasserstein, generator_wasserstein
from deepgen.models.adversarial.gan import ARCHS, GAN
from deepgen.models.base import GenerativeModel
from deepgen.models.players import Player


class WGAN(GAN):
    """WGAN (Arjovsky et al. 2017): a critic with clipped weights, ``n_critic`` RMSprop critic steps per G step.

    Parameters: ``latent``, ``hidden``, ``depth``, ``arch`` as for ``gan``;
    ``n_critic`` (critic updates per generator update), ``clip`` (c: critic
    weights are kept in [-c, c]), ``context_features`` (conditional: the context
    is appended to z and shown to the critic).
    """

    name = "wgan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"conditional", "features", "truncation"})
    description = "Wasserstein GAN (implicit, no density): critic with weight clipping, RMSprop, n_critic steps"
    # RMSprop takes lr only (betas are not used).  See the README's grid25/ring8 table for the runs
    # behind these values.
    train_defaults = {"lr": 5e-4, "lr_schedule": "cosine", "warmup_steps": 0, "grad_clip": 0.0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 2", "depth": ">= 1", "arch": ARCHS,
                         "n_critic": ">= 1", "clip": "> 0", "context_features": ">= 0"}

    # the names of the players, in update order
    critic_player = "critic"
    # a critic scores each example on its own (the gradient penalty of wgan-gp is per example)
    minibatch_discrimination = 0

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 128, depth: int = 2, arch: str = "auto",
                 n_critic: int = 5, clip: float = 0.01, context_features: int = 0, standardize: bool = True):
        """Build a WGAN for data ``spec``.

        Args:
            latent: dimension of the noise z ~ N(0, I) fed to the generator.
            hidden: MLP width; for the conv pair, the channels at H/4 (halved at H/2).
            depth: MLP hidden layers; conv: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            n_critic: critic updates per generator update (each on a fresh batch).
            clip: c of the weight clipping: every critic weight is clamped to [-c, c] after each critic update.
            context_features: size of the context vector of a conditional WGAN (appended to z, shown to the critic).
            standardize: continuous data: G and the critic work on (x - mean) / std per feature; samples are mapped back.
        """
        # GAN.__init__ would record the GAN's own parameters (loss, d_steps), so go to the base directly.
        GenerativeModel.__init__(self, spec, latent=latent, hidden=hidden, depth=depth, arch=arch,
                                 n_critic=n_critic, clip=clip, context_features=context_features,
                                 standardize=standardize)
        self.n_critic, self.clip = n_critic, clip
        self.build_networks(latent, hidden, depth, arch, context_features)

    # --- the players ------------------------------------------------------------
    def clip_critic(self) -> None:
        """Weight clipping, in place: every critic parameter w <- clamp(w, -c, c)."""
        with torch.no_grad():
            for p in self.discriminator_parameters():
                p.clamp_(-self.clip, self.clip)

    def players(self) -> list[Player]:
        """Critic (``n_critic`` RMSprop updates, each followed by weight clipping), then generator (RMSprop)."""
        return [Player(self.critic_player, self.discriminator_parameters, steps=self.n_critic, optimizer="rmsprop",
                       after_step=self.clip_critic),
                Player("generator", self.generator_parameters, optimizer="rmsprop")]

    # --- the game ---------------------------------------------------------------
    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, context) -> dict[str, torch.Tensor]:
        """L_f = E f(G(z)) - E f(x) on D's scale (fakes already detached), with ``wasserstein`` = -L_f."""
        loss = critic_wasserstein(self.discriminate(real, context), self.discriminate(fake, context))
        return {"loss": loss, "wasserstein": -loss.detach()}

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``critic``: :meth:`critic_loss` on the real batch and the detached fakes.  ``generator``:
        L_G = -E f(G(z)) through the shared fakes (critic frozen by the adapter), with ``f_fake`` = E f(G(z))."""
        context = shared["context"]
        if name == self.critic_player:
            return self.critic_loss(shared["real"], shared["fake"].detach(), context)
        if name == "generator":
            scores = self.discriminate(shared["fake"], context)
            return {"loss": generator_wasserstein(scores), "f_fake": scores.mean().detach()}
        raise ConfigError(f"{self.name}: no player named {name!r} (players: {self.critic_player}, generator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, detached: ``loss`` is the critic's loss (its other terms
        alongside, e.g. ``wasserstein``), ``g_loss`` the generator's."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
        critic = self.player_loss(self.critic_player, batch, shared)
        with torch.no_grad():
            g = self.player_loss("generator", batch, shared)
        return {**{k: v.detach() for k, v in critic.items()}, "g_loss": g["loss"], "f_fake": g["f_fake"]}
