"""Training losses as pure functions of network outputs (no modules, no state)."""

from deepgen.losses.adversarial import (
    ADVERSARIAL_LOSSES, AdversarialLoss, discriminator_bce, generator_nonsaturating,
    generator_saturating, get_adversarial_loss,
)

__all__ = [
    "ADVERSARIAL_LOSSES", "AdversarialLoss", "discriminator_bce", "generator_nonsaturating",
    "generator_saturating", "get_adversarial_loss",
]
