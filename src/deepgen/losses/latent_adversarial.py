"""Losses of the adversarial latent-variable models (AAE, VAE-GAN): pure functions of network outputs.

Discriminator outputs are *logits* l, D = sigmoid(l), and every log-probability of D is written
with softplus (-log sigmoid(l) = softplus(-l), -log(1 - sigmoid(l)) = softplus(l)), as in
:mod:`deepgen.losses.adversarial`.  All losses are means over the batch, in nats.

AAE (Makhzani et al. 2016), a discriminator on codes: prior draws z_p ~ p(z) are "real", codes of
the encoder z = E(x) are "fake":

    L_D = -E_{z_p} log D(z_p) - E_x log(1 - D(E(x))) = E softplus(-l_prior) + E softplus(l_code)

VAE-GAN (Larsen et al. 2016, eq. 9 and Algorithm 1):

    L_llike^{Dis_l} = -E_q log N(Dis_l(x) | Dis_l(x~), I) = E 1/2 ||Dis_l(x) - Dis_l(x~)||^2 + F/2 log(2 pi)
    L_GAN = log D(x) + log(1 - D(x~)) + log(1 - D(x_p)),   x~ = Dec(z), z ~ q(z | x);  x_p = Dec(z_p), z_p ~ p(z)

The discriminator maximises L_GAN, i.e. minimises
    -L_GAN = E softplus(-l_x) + E softplus(l_recon) + E softplus(l_prior).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def code_discriminator_bce(prior_logits: torch.Tensor, code_logits: torch.Tensor) -> torch.Tensor:
    """The AAE code discriminator's loss, minimised over D (prior draws labelled real, codes fake):

        L_D = -E_{z_p ~ p(z)} log D(z_p) - E_x log(1 - D(E(x))) = E softplus(-l_prior) + E softplus(l_code)
    """
    return F.softplus(-prior_logits).mean() + F.softplus(code_logits).mean()


def feature_reconstruction(real_features: torch.Tensor, recon_features: torch.Tensor,
                           constant: bool = False) -> torch.Tensor:
    """VAE-GAN's learned-similarity reconstruction loss, averaged over the batch (nats):

        L_llike = -log N(Dis_l(x) | Dis_l(x~), I) = 1/2 sum_f (Dis_l(x)_f - Dis_l(x~)_f)^2 [+ F/2 log(2 pi)]

    per example, summed over the F features of the layer (all dimensions after the first).
    ``constant`` adds the Gaussian's normalising constant F/2 log(2 pi) (no effect on gradients).
    """
    sq = (real_features - recon_features).pow(2).reshape(len(real_features), -1).sum(-1)
    out = 0.5 * sq.mean()
    if constant:
        out = out + 0.5 * real_features[0].numel() * math.log(2 * math.pi)
    return out


def vae_gan_discriminator(real_logits: torch.Tensor, recon_logits: torch.Tensor, prior_logits: torch.Tensor,
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """-L_GAN of VAE-GAN, minimised over D: real data vs. two kinds of fakes, reconstructions x~ = Dec(z),
    z ~ q(z | x), and prior samples x_p = Dec(z_p), z_p ~ N(0, I):

        -L_GAN = E softplus(-l_x) + E softplus(l_recon) + E softplus(l_prior)

    with one-sided label smoothing eps the real term becomes (1 - eps) softplus(-l_x) + eps softplus(l_x).
    """
    real = F.softplus(-real_logits)
    if label_smoothing:
        real = (1.0 - label_smoothing) * real + label_smoothing * F.softplus(real_logits)
    return real.mean() + F.softplus(recon_logits).mean() + F.softplus(prior_logits).mean()
