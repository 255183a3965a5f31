"""The independent-dimension baseline: the best model that ignores every dependence between dims.

Discrete data (L levels): one categorical per dimension, fitted on the training split with add-1/2
(Jeffreys / Krichevsky-Trofimov) smoothing so a level never seen in training keeps a finite cost,

    P(x_d = k) = (n_dk + 1/2) / (N + L/2),      log P(x) = sum_d log P(x_d),

continuous data: one Gaussian per dimension (maximum-likelihood mean and variance).  Its test NLL is the
line every model that claims to learn structure must beat (``deepgen compare`` prints it under the models).
"""

from __future__ import annotations

import math

import torch

from deepgen.data.spec import Splits

INDEPENDENT_SMOOTHING = 0.5


def independent_log_prob(train: torch.Tensor, x: torch.Tensor, levels: int | None) -> torch.Tensor:
    """log p(x_n) (n,) in nats under independent per-dimension marginals fitted on ``train``."""
    tr = train.reshape(len(train), -1).double()
    xs = x.reshape(len(x), -1).double()
    if levels is None:
        mean, var = tr.mean(0), tr.var(0, unbiased=False).clamp_min(1e-12)
        return (-0.5 * (xs - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(1)
    counts = torch.stack([(tr == k).sum(0) for k in range(levels)], 1).double()  # (D, L)
    log_p = torch.log(counts + INDEPENDENT_SMOOTHING) - math.log(len(tr) + INDEPENDENT_SMOOTHING * levels)
    return log_p.gather(1, xs.long().T).T.sum(1) if len(xs) else torch.zeros(0, dtype=torch.double)


def independent_nll(splits: Splits, split: str = "test") -> float:
    """Mean NLL (nats per example) of ``split`` under the independent baseline fitted on the training split."""
    return -independent_log_prob(splits.train, splits.split(split), splits.spec.levels).mean().item()


def describe_independent(levels: int | None) -> str:
    """What the baseline is, for a table."""
    if levels is None:
        return "independent Gaussian per dim (ML fit on train)"
    return f"independent categorical per dim (train counts + {INDEPENDENT_SMOOTHING:g})"
