"""WGAN with gradient penalty (Gulrajani et al. 2017): an implicit model.

The WGAN game (:mod:`deepgen.models.adversarial.wgan`) with the critic's
Lipschitz constraint imposed softly instead of by weight clipping.  A
differentiable f is 1-Lipschitz iff ||grad f|| <= 1 everywhere, and the optimal
critic has ||grad f|| = 1 on the segments between coupled real and generated
points; so the critic minimises

    L_f = E_z f(G(z)) - E_x f(x) + lambda E_i (||grad_x f(x_hat_i)||_2 - 1)^2,
    x_hat_i = alpha_i x_i + (1 - alpha_i) G(z_i),   alpha_i ~ U[0, 1],

one alpha and one gradient norm per example (``penalty`` = lambda; the fakes are
detached, so the penalty trains the critic only).  The generator minimises
L_G = -E_z f(G(z)) as in the WGAN.  Both players use Adam with betas (0, 0.9)
(the paper's choice; the run's ``betas``), the critic takes ``n_critic`` updates
per generator update, and no weights are clipped.

The penalty is per example, so the critic must not mix examples: neither
critic network has BatchNorm (the MLP has no normalisation, the DCGAN critic
none).  Diagnostics: ``wasserstein`` = E f(x) - E f(G(z)), ``gradient_penalty``
(before the lambda) and ``grad_norm`` (mean ||grad f(x_hat)||).
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.losses.adversarial import critic_wasserstein, gradient_penalty, interpolate
from deepgen.models.adversarial.gan import ARCHS
from deepgen.models.adversarial.wgan import WGAN
from deepgen.models.base import GenerativeModel
from deepgen.models.players import Player


class WGANGP(WGAN):
    """WGAN-GP (Gulrajani et al. 2017): the WGAN critic with a gradient penalty instead of weight clipping.

    Parameters: ``latent``, ``hidden``, ``depth``, ``arch`` as for ``gan``;
    ``n_critic`` (critic updates per generator update), ``penalty`` (lambda, the
    weight of the gradient penalty), ``context_features`` (conditional: the context
    is appended to z and shown to the critic; the gradient is taken w.r.t. x only).
    """

    name = "wgan-gp"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"conditional", "features", "truncation"})
    description = "WGAN-GP (implicit, no density): critic with a gradient penalty on interpolates, Adam(0, 0.9)"
    # See the README's grid25/ring8 table for the runs behind these values.
    train_defaults = {"lr": 1e-3, "betas": [0.0, 0.9], "lr_schedule": "cosine", "warmup_steps": 0,
                      "grad_clip": 0.0}

    param_constraints = {"latent": ">= 1", "hidden": ">= 2", "depth": ">= 1", "arch": ARCHS,
                         "n_critic": ">= 1", "penalty": ">= 0", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, hidden: int = 128, depth: int = 2, arch: str = "auto",
                 n_critic: int = 5, penalty: float = 10.0, context_features: int = 0, standardize: bool = True):
        """Build a WGAN-GP for data ``spec``.

        Args:
            latent: dimension of the noise z ~ N(0, I) fed to the generator.
            hidden: MLP width; for the conv pair, the channels at H/4 (halved at H/2).
            depth: MLP hidden layers; conv: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            n_critic: critic updates per generator update (each on a fresh batch).
            penalty: lambda, the weight of the gradient penalty E (||grad f(x_hat)|| - 1)^2.
            context_features: size of the context vector of a conditional WGAN-GP (appended to z, shown to the critic).
            standardize: continuous data: G and the critic work on (x - mean) / std per feature; samples are mapped back.
        """
        # WGAN.__init__ would record the WGAN's own parameters (clip), so go to the base directly.
        GenerativeModel.__init__(self, spec, latent=latent, hidden=hidden, depth=depth, arch=arch,
                                 n_critic=n_critic, penalty=penalty, context_features=context_features,
                                 standardize=standardize)
        self.n_critic, self.penalty = n_critic, penalty
        self.build_networks(latent, hidden, depth, arch, context_features)

    def players(self) -> list[Player]:
        """Critic (``n_critic`` Adam updates, no clipping), then generator (Adam); betas from the run."""
        return [Player(self.critic_player, self.discriminator_parameters, steps=self.n_critic),
                Player("generator", self.generator_parameters)]

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, context) -> dict[str, torch.Tensor]:
        """L_f = E f(G(z)) - E f(x) + lambda E (||grad f(x_hat)|| - 1)^2, x_hat on random per-example
        segments between the real batch and the (detached) fakes."""
        wasserstein = critic_wasserstein(self.discriminate(real, context), self.discriminate(fake, context))
        alpha = torch.rand(len(real), device=real.device, dtype=real.dtype)
        gp, norms = gradient_penalty(lambda x: self.discriminate(x, context), interpolate(real, fake, alpha))
        return {"loss": wasserstein + self.penalty * gp, "wasserstein": -wasserstein.detach(),
                "gradient_penalty": gp.detach(), "grad_norm": norms.mean()}
