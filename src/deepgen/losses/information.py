"""InfoGAN's variational mutual-information terms (Chen et al. 2016): pure functions of Q's outputs.

InfoGAN feeds the generator latent codes c besides the noise z and maximises the mutual
information I(c; G(z, c)) through a variational lower bound (Barber and Agakov 2003): for any
distribution Q(c | x),

    I(c; G(z, c)) = H(c) - H(c | G(z, c))
                 >= H(c) + E_{c ~ p(c), x ~ G(z, c)} log Q(c | x)  =:  L_I(G, Q),

with equality when Q(c | x) is the true posterior.  H(c) is a constant of the code prior, so
maximising L_I is minimising the negative log-likelihood of the code under Q (these functions,
means over the batch, in nats):

* a categorical code c in {0..K-1} with Q's logits l:      -E log softmax(l)_c   (cross-entropy)
* continuous codes c in R^J with a factored Gaussian Q:
  -E log N(c; mu, sigma^2) = E sum_j [ (c_j - mu_j)^2 / (2 sigma_j^2) + log sigma_j + log(2 pi) / 2 ],
  with sigma learned (Q outputs log sigma) or fixed at 1.

:func:`mutual_information_bound` is L_I = H(c) - NLL with H(c) from :func:`categorical_entropy`
(log K, a uniform categorical prior) or :func:`uniform_entropy` (J log(b - a), J codes uniform
on [a, b]).  For a categorical code -log Q(c | x) >= 0, so its bound never exceeds log K.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def categorical_code_nll(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """-E log Q(c | x) for a categorical code: Q(c | x) = softmax(logits)_c.

        L = -1/B sum_i log softmax(l_i)_{c_i} = 1/B sum_i [ logsumexp(l_i) - l_{i, c_i} ]

    ``logits`` (B, K), ``codes`` int64 class indices (B,).  Mean over the batch, in nats.
    """
    return F.cross_entropy(logits, codes)


def gaussian_code_nll(mean: torch.Tensor, codes: torch.Tensor, log_std: torch.Tensor | None = None) -> torch.Tensor:
    """-E log Q(c | x) for continuous codes under a factored Gaussian Q = N(mu, diag sigma^2):

        L = 1/B sum_i sum_j [ (c_ij - mu_ij)^2 / (2 sigma_ij^2) + log sigma_ij + log(2 pi) / 2 ]

    ``mean`` mu and ``codes`` c of shape (B, J); ``log_std`` log sigma (B, J), or None for a fixed
    sigma = 1 (then L = E sum_j (c_j - mu_j)^2 / 2 + J log(2 pi) / 2).  Summed over the J codes,
    mean over the batch, in nats (a density: it can be negative when sigma < 1).
    """
    if log_std is None:
        per = 0.5 * (codes - mean) ** 2 + HALF_LOG_2PI
    else:
        per = 0.5 * ((codes - mean) * torch.exp(-log_std)) ** 2 + log_std + HALF_LOG_2PI
    return per.sum(-1).mean()


def categorical_entropy(categories: int) -> float:
    """H(c) = log K nats of a uniform categorical code with K categories (0 for K <= 1)."""
    return math.log(categories) if categories > 1 else 0.0


def uniform_entropy(dims: int, low: float = -1.0, high: float = 1.0) -> float:
    """Differential entropy J log(b - a) nats of J independent codes uniform on [a, b]."""
    return dims * math.log(high - low) if dims else 0.0


def mutual_information_bound(nll: torch.Tensor | float, prior_entropy: float) -> torch.Tensor | float:
    """InfoGAN's lower bound L_I = H(c) - (-E log Q(c | x)) <= I(c; G(z, c)), in nats."""
    return prior_entropy - nll
