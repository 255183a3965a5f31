"""The truncation trick's fidelity/diversity trade-off (BigGAN, Brock et al. 2018).

A generator fed z ~ N(0, I) restricted to |z_i| <= t draws from the high-density core of its
latent space: as t shrinks, samples become more typical (precision, i.e. fidelity, rises) and
less varied (recall, i.e. diversity, falls).  :func:`truncation_curve` measures both, in the
feature space of :mod:`deepgen.evaluation.sample_quality`, for a list of thresholds t (None: no
truncation) on the same seed, so each point differs only in t.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import Splits
from deepgen.evaluation.modes import seeded_samples
from deepgen.evaluation.sample_quality import NEIGHBOURS, feature_space, quality_metrics

THRESHOLDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, None)
CURVE_KEYS = ("precision", "recall", "density", "coverage", "frechet_distance")


def truncation_curve(model, splits: Splits, split: str = "test", seed: int = 0, n: int | None = None,
                     features=None, context: torch.Tensor | None = None, thresholds=THRESHOLDS,
                     k: int = NEIGHBOURS) -> dict | None:
    """``{"points": [{"truncation": t, precision, recall, density, coverage, frechet_distance}, ...], ...}``
    for a model that can truncate its latent draws ("truncation" capability), scored against ``split``
    with ``n`` samples per threshold (default: the split's size); None where the model cannot truncate
    or no feature space applies.  ``context``: one row per example of the split (conditional models)."""
    if not model.can("truncation"):
        return None
    net, scale = feature_space(splits.spec, features)
    if net is None:
        return None
    reference = splits.split(split)
    n = len(reference) if n is None else int(n)
    rows = torch.arange(n) % len(reference)
    ctx = None if context is None else context[rows]
    points = []
    for t in thresholds:
        samples = seeded_samples(model, n, seed, ctx, truncation=t)
        metrics = quality_metrics(net, reference, samples, splits.spec, k)
        points.append({"truncation": t, **{key: metrics[key] for key in CURVE_KEYS}})
    return {"points": points, "n_samples": n, "reference": f"{splits.spec.name} {split} split", "seed": seed,
            "feature_net": net.describe(), "input": scale,
            "what": "sample quality against the truncation threshold t of |z_i| <= t (None: no truncation)"}
