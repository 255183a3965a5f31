"""Losses of image-to-image translation (pix2pix, CycleGAN): pure functions of network outputs.

Every loss is a mean over all its entries (examples, channels, pixels; or the patches of
a PatchGAN's output grid), so the weights of the papers (lambda_L1 = 100, lambda_cyc = 10)
are per-entry weights whatever the image size.

* :func:`l1_reconstruction`:   L_1(y, t) = E |y - t|   (pix2pix's lambda_L1 term, Isola et al. 2017).
* :func:`least_squares_discriminator`, :func:`least_squares_generator`: the least-squares GAN
  (Mao et al. 2017) with CycleGAN's weighting (Zhu et al. 2017, their code):

      L_D = 1/2 [E (D(real) - 1)^2 + E D(fake)^2],     L_G = E (D(G(x)) - 1)^2,

  D's output is a score, not a log-odds: no sigmoid.
* :func:`discriminator_bce_halved`: pix2pix's D objective, the binary cross-entropy of
  :func:`~deepgen.losses.adversarial.discriminator_bce` halved "to slow down the rate at which
  D learns relative to G" (Isola et al. 2017, sec. 3.3); G's side is the non-saturating loss.
* :func:`cycle_loss`:    E |G_BA(G_AB(a)) - a| + E |G_AB(G_BA(b)) - b|    (cycle consistency).
* :func:`identity_loss`: E |G_BA(a) - a| + E |G_AB(b) - b|    (a generator fed an example of its
  own target domain should leave it unchanged; CycleGAN weights it 0.5 lambda_cyc).

``TRANSLATION_GAN_LOSSES`` maps a translator's ``gan_loss`` parameter to its (discriminator,
generator) pair.
"""

from __future__ import annotations

import torch

from deepgen.errors import unknown_name
from deepgen.losses.adversarial import AdversarialLoss, discriminator_bce, generator_nonsaturating


def l1_reconstruction(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E |output - target|: the mean absolute error over every entry (pix2pix's L1 term, unweighted)."""
    return (output - target).abs().mean()


def least_squares_discriminator(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                                label_smoothing: float = 0.0) -> torch.Tensor:
    """L_D = 1/2 [E (D(real) - 1)^2 + E D(fake)^2] (least-squares GAN, targets 1 for real and 0 for fake).

    The optimal D is p_data / (p_data + p_G); the 1/2 is CycleGAN's, which halves D's step relative
    to G's.  ``label_smoothing`` eps > 0 moves the real target to 1 - eps (one-sided)."""
    target = 1.0 - label_smoothing
    return 0.5 * (((real_scores - target) ** 2).mean() + (fake_scores ** 2).mean())


def least_squares_generator(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = E (D(G(x)) - 1)^2: the generator pulls D's score of its outputs to the real target 1."""
    return ((fake_scores - 1.0) ** 2).mean()


def discriminator_bce_halved(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                             label_smoothing: float = 0.0) -> torch.Tensor:
    """L_D = 1/2 [E softplus(-l_real) + E softplus(l_fake)]: the binary cross-entropy of D, halved as in pix2pix."""
    return 0.5 * discriminator_bce(real_logits, fake_logits, label_smoothing)


def cycle_loss(a: torch.Tensor, a_cycled: torch.Tensor, b: torch.Tensor, b_cycled: torch.Tensor) -> torch.Tensor:
    """L_cyc = E |G_BA(G_AB(a)) - a| + E |G_AB(G_BA(b)) - b|, with ``a_cycled`` = G_BA(G_AB(a)) and
    ``b_cycled`` = G_AB(G_BA(b)) (Zhu et al. 2017, eq. 2; each term a mean over entries)."""
    return l1_reconstruction(a_cycled, a) + l1_reconstruction(b_cycled, b)


def identity_loss(a: torch.Tensor, a_kept: torch.Tensor, b: torch.Tensor, b_kept: torch.Tensor) -> torch.Tensor:
    """L_idt = E |G_BA(a) - a| + E |G_AB(b) - b|, with ``a_kept`` = G_BA(a) and ``b_kept`` = G_AB(b)
    (Zhu et al. 2017, sec. 5.2; Taigman et al. 2017): each generator is near the identity on its own
    target domain."""
    return l1_reconstruction(a_kept, a) + l1_reconstruction(b_kept, b)


TRANSLATION_GAN_LOSSES: dict[str, AdversarialLoss] = {
    "bce": AdversarialLoss(discriminator_bce_halved, generator_nonsaturating),
    "least_squares": AdversarialLoss(least_squares_discriminator, least_squares_generator),
}


def get_translation_gan_loss(name: str) -> AdversarialLoss:
    """The (discriminator, generator) pair of a translator's ``gan_loss`` ``name``; unknown names raise ConfigError."""
    if name not in TRANSLATION_GAN_LOSSES:
        raise unknown_name("translation GAN loss", name, TRANSLATION_GAN_LOSSES)
    return TRANSLATION_GAN_LOSSES[name]
