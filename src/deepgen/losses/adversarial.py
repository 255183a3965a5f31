"""Adversarial losses: pure functions of discriminator *logits*.

The discriminator outputs a logit ``l``; its probability that the input is real
is D = sigmoid(l).  Every loss is written with the identities

    -log sigmoid(l)      = softplus(-l)
    -log(1 - sigmoid(l)) = softplus(l)

which are exact and never take the log of a probability that rounded to 0 or 1
(``log(1 - sigmoid(l))`` computed directly is -inf already at l ~ 17 in float32).

All losses are means over the batch, in nats.  ``ADVERSARIAL_LOSSES`` maps a
GAN's ``loss`` parameter to its (discriminator, generator) pair.

The Wasserstein game (Arjovsky et al. 2017; Gulrajani et al. 2017) is scored by
a *critic* f(x), a real number that is not a logit and has no sigmoid; its
losses (:func:`critic_wasserstein`, :func:`generator_wasserstein`) are in the
critic's units, and :func:`gradient_penalty` is WGAN-GP's soft Lipschitz
constraint.  They are separate functions, not entries of ``ADVERSARIAL_LOSSES``:
a GAN's discriminator is not a critic.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
import torch.nn.functional as F

from deepgen.errors import ConfigError, unknown_name


def discriminator_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy of the discriminator (Goodfellow et al. 2014), minimised over D:

        L_D = -E_x log D(x) - E_z log(1 - D(G(z)))
            =  E softplus(-l_real) + E softplus(l_fake)

    It is -V(D, G) for the minimax value function V, so its minimum over D at
    the optimal discriminator is 2 log 2 - 2 JSD(p_data || p_G).

    One-sided label smoothing (Salimans et al. 2016), ``label_smoothing`` = eps:
    real examples get the target 1 - eps, fakes keep the target 0,

        L_D = -E_x [(1 - eps) log D(x) + eps log(1 - D(x))] - E_z log(1 - D(G(z)))
            =  E [(1 - eps) softplus(-l_real) + eps softplus(l_real)] + E softplus(l_fake).

    The optimal discriminator becomes D*(x) = (1 - eps) p_data / (p_data + p_G): it
    never exceeds 1 - eps, so it cannot grow arbitrarily confident on real data.
    Smoothing the fake targets too would move D* towards p_G where p_data is 0,
    which does not push the generator off those points; hence one-sided.
    """
    real = F.softplus(-real_logits)
    if label_smoothing:
        real = (1.0 - label_smoothing) * real + label_smoothing * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


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


def critic_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN critic's loss (Arjovsky et al. 2017), minimised over the critic f:

        L_f = E_z f(G(z)) - E_x f(x)

    Scores are the critic's raw outputs (no sigmoid).  Over 1-Lipschitz f,
    -min L_f = max_f E_x f(x) - E_z f(G(z)) = W_1(p_data, p_G), the earth mover's
    distance (Kantorovich-Rubinstein duality); the constraint is imposed
    separately (weight clipping, or :func:`gradient_penalty`).
    """
    return fake_scores.mean() - real_scores.mean()


def generator_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN generator's loss, minimised over G: L_G = -E_z f(G(z)).

    Its gradient w.r.t. each score is -1/B whatever the critic's value, so it
    never saturates; the signal the generator gets is the critic's slope.
    """
    return -fake_scores.mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Points on the segments between paired real and fake examples (WGAN-GP's x_hat):

        x_hat_i = alpha_i x_i + (1 - alpha_i) x~_i,   alpha_i in [0, 1] one per example,

    ``alpha`` of shape (B,) is broadcast over the other dimensions.
    """
    a = alpha.reshape(-1, *([1] * (real.ndim - 1))).to(real.dtype)
    return a * real + (1.0 - a) * fake


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                     target: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP's two-sided gradient penalty (Gulrajani et al. 2017) at ``points`` x_hat (B, ...):

        P = E_i (||grad_x f(x_hat_i)||_2 - target)^2,

    with one Euclidean norm per example (over all its features), since f(x_hat_i)
    depends on x_hat_i alone.  The gradient is taken with ``create_graph`` so P
    can be differentiated w.r.t. the critic's parameters, and is computed even
    under ``torch.no_grad``.  Returns (P, the per-example norms, detached).
    A critic with batch statistics (BatchNorm) breaks the per-example premise.
    """
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        scores = critic(x)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        norms = grad.flatten(1).norm(dim=1)
        penalty = ((norms - target) ** 2).mean()
    return penalty, norms.detach()


def discriminator_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """The hinge loss of the discriminator (Lim and Ye 2017; Miyato et al. 2018; BigGAN), minimised over D:

        L_D = E_x max(0, 1 - l(x)) + E_z max(0, 1 + l(G(z)))

    D's output l is a margin score, not a log-odds: once a real example scores
    above 1 (a fake below -1) it contributes nothing, so D stops pushing well
    separated examples and spends its capacity near the boundary.  Label
    smoothing has no meaning for a margin; it must be 0.
    """
    if label_smoothing:
        raise ConfigError("the hinge loss takes no label smoothing (its targets are margins, not probabilities); "
                          f"got label_smoothing={label_smoothing}")
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def generator_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge game, minimised over G:  L_G = -E_z l(G(z))."""
    return -fake_logits.mean()


def orthogonal_regularization(weights: Iterable[torch.Tensor]) -> torch.Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2018, eq. 3), without the weight beta:

        R(W) = sum_W || W^T W (.) (1 - I) ||_F^2

    over the given weight matrices, each flattened to (out, in) = (rows, -1) and with
    W^T W read as the Gram matrix of the rows (filters): it penalises the cosine-free
    inner products between different filters and leaves their norms free (the plain
    ||W^T W - I||^2 also forces unit norms).  Returns a scalar tensor (0 for no weights).
    """
    total = None
    for w in weights:
        m = w.reshape(w.shape[0], -1)
        gram = m @ m.t()
        off = gram - torch.diag_embed(torch.diagonal(gram))
        term = (off ** 2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


class AdversarialLoss(NamedTuple):
    """A two-player game: ``discriminator(real_logits, fake_logits, label_smoothing=0.0)`` and
    ``generator(fake_logits)``."""

    discriminator: Callable[..., torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "nonsaturating": AdversarialLoss(discriminator_bce, generator_nonsaturating),
    "minimax": AdversarialLoss(discriminator_bce, generator_saturating),
    "hinge": AdversarialLoss(discriminator_hinge, generator_hinge),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
    """The (discriminator, generator) loss pair called ``name``; unknown names raise ConfigError."""
    if name not in ADVERSARIAL_LOSSES:
        raise unknown_name("adversarial loss", name, ADVERSARIAL_LOSSES)
    return ADVERSARIAL_LOSSES[name]
