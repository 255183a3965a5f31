"""Adversarial losses: pure functions of discriminator *logits*.

The discriminator outputs a logit ``l``; its probability that the input is real
is D = sigmoid(l).  Every loss is written with the identities

    -log sigmoid(l)      = softplus(-l)
    -log(1 - sigmoid(l)) = softplus(l)

which are exact and never take the log of a probability that rounded to 0 or 1
(``log(1 - sigmoid(l))`` computed directly is -inf already at l ~ 17 in float32).

All losses are means over the batch, in nats.  ``ADVERSARIAL_LOSSES`` maps a
GAN's ``loss`` parameter to its (discriminator, generator) pair; new games
(e.g. Wasserstein) are added there.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from deepgen.errors import unknown_name


def discriminator_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator (Goodfellow et al. 2014), minimised over D:

        L_D = -E_x log D(x) - E_z log(1 - D(G(z)))
            =  E softplus(-l_real) + E softplus(l_fake)

    It is -V(D, G) for the minimax value function V, so its minimum over D at
    the optimal discriminator is 2 log 2 - 2 JSD(p_data || p_G).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The original minimax generator loss, minimised over G:

        L_G = E_z log(1 - D(G(z))) = -E softplus(l_fake)

    Its gradient w.r.t. the logit is -sigmoid(l_fake), which vanishes when D
    confidently rejects the fakes (D(G(z)) -> 0) — early in training, when the
    generator needs a signal most.
    """
    return -F.softplus(fake_logits).mean()


def generator_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ("-log D trick"), minimised over G:

        L_G = -E_z log D(G(z)) = E softplus(-l_fake)

    Same fixed point as the minimax game, but its gradient w.r.t. the logit,
    -(1 - sigmoid(l_fake)), tends to -1 (not 0) as D(G(z)) -> 0.
    """
    return F.softplus(-fake_logits).mean()


class AdversarialLoss(NamedTuple):
    """A two-player game: ``discriminator(real_logits, fake_logits)`` and ``generator(fake_logits)``."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "nonsaturating": AdversarialLoss(discriminator_bce, generator_nonsaturating),
    "minimax": AdversarialLoss(discriminator_bce, generator_saturating),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
    """The (discriminator, generator) loss pair called ``name``; unknown names raise ConfigError."""
    if name not in ADVERSARIAL_LOSSES:
        raise unknown_name("adversarial loss", name, ADVERSARIAL_LOSSES)
    return ADVERSARIAL_LOSSES[name]
