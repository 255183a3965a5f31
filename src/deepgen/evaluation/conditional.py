"""A class-conditional model as a density and as a classifier.

For a model of p(x | y) with label prior p(y) (training frequencies):

    log p(x | y_true)                      conditional log-likelihood (nats)
    log p(x) = logsumexp_y [log p(x | y) + log p(y)]     marginal log-likelihood (nats)
    y_hat    = argmax_y [log p(x | y) + log p(y)]        the generative classifier (Bayes' rule)

All K class-conditional figures of one example are computed with the same seeded
noise (dequantization, importance samples), so they differ only through y.  For a
model whose log_prob is a bound, the marginal is the same kind of figure (a bound).
"""

from __future__ import annotations

import torch

from deepgen.data.context import LabelContext
from deepgen.evaluation.likelihood import per_example_log_prob


@torch.no_grad()
def class_log_likelihoods(model, x: torch.Tensor, label_context: LabelContext, batch_size: int = 256,
                          seed: int = 0, **kwargs) -> torch.Tensor:
    """(N, K) float64 matrix of log p(x_n | y = k) in nats."""
    k = label_context.num_classes
    cols = []
    for y in range(k):
        ctx = label_context.one_hot(torch.full((len(x),), y, dtype=torch.long))
        cols.append(per_example_log_prob(model, x, batch_size=batch_size, seed=seed, context=ctx, **kwargs))
    return torch.stack(cols, 1)


def conditional_summary(log_lik: torch.Tensor, labels: torch.Tensor, label_context: LabelContext) -> dict:
    """Per-example conditional and marginal log-likelihoods and the classifier's decisions.

    Returns ``log_prob`` (log p(x | y_true)), ``marginal_log_prob`` (log p(x)), ``predicted``
    (argmax_y p(x | y) p(y)) and ``classify_accuracy``.
    """
    labels = labels.long()
    joint = log_lik + label_context.log_prior()
    predicted = joint.argmax(1)
    return {
        "log_prob": log_lik.gather(1, labels[:, None]).squeeze(1),
        "marginal_log_prob": torch.logsumexp(joint, 1),
        "predicted": predicted,
        "classify_accuracy": (predicted == labels).double().mean().item(),
    }
