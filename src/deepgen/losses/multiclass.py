"""Losses of a (k+1)-way discriminator (MAD-GAN, Ghosh et al. 2018): pure functions of logits.

The discriminator outputs k + 1 logits l = (l_1, ..., l_k, l_{k+1}) per example and
D_j(x) = softmax(l(x))_j: classes 1..k mean "made by generator j", class k + 1
means "real".  In code the classes are 0-based: generator i is class i - 1 and the
real class is the last one, index k.  Every loss is a cross-entropy written as

    -log D_j(x) = logsumexp(l(x)) - l_j(x),

which is exact and stays finite for any logits (``F.cross_entropy``).

Weighting.  The fakes of all k generators form one batch (each fake labelled with
its generator), and each of the two terms is a mean over its own batch, so with
equally many fakes per generator

    L_D = -E_x log D_{k+1}(x) - (1/k) sum_i E_z log D_i(G_i(z)).

At a point x the minimiser over D is then

    D*_{k+1}(x) = p_data(x) / (p_data(x) + p_g(x)),   D*_i(x) = (p_i(x) / k) / (p_data(x) + p_g(x)),

with p_g = (1/k) sum_i p_i the mixture the model samples: the real class gets the
GAN's optimal discriminator for the mixture.  (The paper sums the k fake terms
instead of averaging them, which weights the real class 1 : k.)  For k = 1 the
loss is exactly the GAN's binary cross-entropy with the logit l_2 - l_1:
``multiclass_discriminator_loss(r, f, 0) == discriminator_bce(r[:, 1] - r[:, 0], f[:, 1] - f[:, 0])``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def real_class_logit(logits: torch.Tensor) -> torch.Tensor:
    """The logit of "real" against "any generator": l_{k+1} - logsumexp(l_1, ..., l_k), shape (B,).

    sigmoid of it is D_{k+1}(x); for k = 1 it is l_2 - l_1, the GAN's logit.
    """
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)


def multiclass_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                                  fake_labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the right class for a (k+1)-way discriminator, minimised over D:

        L_D = -E_x log D_{k+1}(x) - E_j log D_{c_j}(x~_j)
            =  E_x [logsumexp l(x) - l_{k+1}(x)] + E_j [logsumexp l(x~_j) - l_{c_j}(x~_j)]

    ``real_logits`` (B, k+1) on real data, ``fake_logits`` (M, k+1) on fakes and
    ``fake_labels`` (M,) the 0-based index c_j of the generator that made fake j
    (0..k-1; k, the last class, is "real").  Each term is the mean over its batch.
    """
    real_class = real_logits.shape[-1] - 1
    real_target = torch.full((len(real_logits),), real_class, dtype=torch.long, device=real_logits.device)
    return F.cross_entropy(real_logits, real_target) + F.cross_entropy(fake_logits, fake_labels.long())


def multiclass_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generators' non-saturating loss, minimised over G_1..G_k:

        L_G = -E_j log D_{k+1}(x~_j) = E_j [logsumexp l(x~_j) - l_{k+1}(x~_j)],

    the mean over fakes of all generators (each G_i gets the gradient of its own
    fakes: with equal shares, (1/k) sum_i -E_z log D_{k+1}(G_i(z))).  Its gradient
    w.r.t. l_{k+1} is -(1 - D_{k+1}) per fake: it does not vanish when D rejects it.
    """
    return (torch.logsumexp(fake_logits, dim=1) - fake_logits[:, -1]).mean()
