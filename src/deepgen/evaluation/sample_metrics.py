"""Sample-based distances: how far a model's samples are from held-out data.

They need only ``model.sample``, so they score every family alike — and are the
only figures for implicit models (GANs), which define no likelihood.

Energy distance (Székely & Rizzo 2013) between distributions P and Q:

    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||,   X, X' ~ P,  Y, Y' ~ Q

with ||.|| the Euclidean norm of the flattened example on the data's own scale
(grey levels for discrete images, data units for continuous data), so E is in
those units.  E >= 0, with equality iff P = Q.  It is estimated from n samples
and m data points with the unbiased U-statistic: the within-sample means skip
the diagonal (i != j) pairs.  An unbiased estimate can be slightly negative when
P = Q; its expectation is the true E.
"""

from __future__ import annotations

import torch

from deepgen.errors import DataError
from deepgen.evaluation.modes import PROTOCOL_SAMPLES, mode_metrics_for, seeded_samples

MAX_REFERENCE = 2000


def _mean_pairwise(a: torch.Tensor, b: torch.Tensor, skip_diagonal: bool, chunk: int = 1024) -> float:
    """Mean of ||a_i - b_j|| over all pairs (i != j when ``skip_diagonal``), in row chunks to bound memory."""
    total = 0.0
    for i in range(0, len(a), chunk):
        total += torch.cdist(a[i : i + chunk], b).sum().item()  # the diagonal of a set with itself is 0
    pairs = len(a) * len(b) - (len(a) if skip_diagonal else 0)
    return total / pairs


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased estimate of E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| from x ~ P, y ~ Q (data units)."""
    x = torch.as_tensor(x).detach().double().cpu().reshape(len(x), -1)
    y = torch.as_tensor(y).detach().double().cpu().reshape(len(y), -1)
    if x.shape[1] != y.shape[1]:
        raise DataError(f"energy_distance: examples differ in size ({x.shape[1]} vs {y.shape[1]} values)")
    if len(x) < 2 or len(y) < 2:
        raise DataError("energy_distance: need at least 2 examples on each side")
    return (2 * _mean_pairwise(x, y, False) - _mean_pairwise(x, x, True) - _mean_pairwise(y, y, True))


def sample_distance(model, reference: torch.Tensor, context: torch.Tensor | None = None, seed: int = 0,
                    max_n: int = MAX_REFERENCE) -> dict:
    """Energy distance between ``n`` seeded model samples and ``n`` reference (held-out) examples.

    ``n = min(len(reference), max_n)``: the first ``n`` rows of ``reference``
    (splits are already randomly ordered) and, for a conditional model, their
    contexts.  Samples are drawn in eval mode under ``torch.manual_seed(seed)``
    with the RNG forked, so the caller's random stream is untouched.
    """
    n = min(len(reference), max_n)
    ref = reference[:n]
    ctx = None if context is None else context[:n]
    samples = seeded_samples(model, n, seed, ctx)
    return {"energy_distance": energy_distance(samples, ref), "n": n}


def sample_scores(model, splits, split: str = "test", seed: int = 0, context: torch.Tensor | None = None,
                  mode_context: torch.Tensor | None = None) -> dict:
    """Report figures for any model from its samples: energy distance to ``split``, mode coverage if known.

    Meant for models without a density (``model.density == "none"``) in place of an NLL.
    A conditional model gets ``context`` (one row per example of the split: samples are drawn
    for the same labels as the reference) and ``mode_context`` (PROTOCOL_SAMPLES rows).
    """
    x = splits.split(split)
    result = {"model": model.name, "data": splits.spec.name, "split": split, "density": model.density}
    result.update(sample_distance(model, x, context, seed=seed))
    result["units"] = (f"energy distance in the data's own units (Euclidean over {splits.spec.dim} values"
                       f"{', grey levels' if splits.spec.levels is not None else ''}), "
                       f"{result['n']} samples vs {result['n']} {split} examples, seed {seed}")
    modes = mode_metrics_for(model, splits.spec.name, n=PROTOCOL_SAMPLES, seed=seed, context=mode_context)
    if modes is not None:
        result["modes"] = modes
    return result
