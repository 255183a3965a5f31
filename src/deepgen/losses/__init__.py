"""Training losses as pure functions of network outputs (no modules, no state)."""

from deepgen.losses.adversarial import (
    ADVERSARIAL_LOSSES, AdversarialLoss, critic_wasserstein, discriminator_bce, discriminator_hinge,
    generator_hinge, generator_nonsaturating, generator_saturating, generator_wasserstein, get_adversarial_loss,
    gradient_penalty, interpolate, orthogonal_regularization,
)

__all__ = [
    "ADVERSARIAL_LOSSES", "AdversarialLoss", "critic_wasserstein", "discriminator_bce", "discriminator_hinge",
    "generator_hinge", "generator_nonsaturating", "generator_saturating", "generator_wasserstein",
    "get_adversarial_loss", "gradient_penalty", "interpolate", "orthogonal_regularization",
]
