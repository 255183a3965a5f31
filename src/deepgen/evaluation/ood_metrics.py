"""How well a score separates in-distribution from out-of-distribution (OOD) examples.

Convention: a score is *higher for more abnormal* examples, and OOD is the positive class.

    AUROC          = P(s_out > s_in) + 1/2 P(s_out = s_in)       (Mann-Whitney U / (n_in n_out))
    AUPR           = sum_k (R_k - R_{k-1}) P_k                   (average precision, OOD positive)
    FPR at 95% TPR = the share of in-distribution examples flagged at the highest threshold t that
                     flags >= 95% of the OOD examples (flagged: s >= t)

over the thresholds t at the distinct score values, ties grouped (P_k, R_k: precision and recall
of "s >= t_k").  These are the figures of scikit-learn's ``roc_auc_score``,
``average_precision_score`` and ``roc_curve`` with OOD labelled 1; 0.5 / n_out / (n_in + n_out) /
0.95 is chance.  Pure numpy (the tests check them against scikit-learn).
"""

from __future__ import annotations

import numpy as np
import torch

from deepgen.errors import DataError

TPR_LEVEL = 0.95


def _vector(v) -> np.ndarray:
    """A tensor, array or list of scores as a float64 numpy vector."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64).reshape(-1)


def _pair(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray]:
    """Both score sets as finite float64 vectors, each non-empty (else a DataError)."""
    a, b = _vector(scores_in), _vector(scores_out)
    for name, v in (("in-distribution", a), ("out-of-distribution", b)):
        if len(v) == 0:
            raise DataError(f"OOD metrics: no {name} scores; expected at least one")
        if not np.isfinite(v).all():
            raise DataError(f"OOD metrics: {name} scores contain NaN or infinite values")
    return a, b


def _curve(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(true positives, false positives) of "s >= t" at each distinct score t, highest t first."""
    a, b = _pair(scores_in, scores_out)
    s = np.concatenate([b, a])
    y = np.concatenate([np.ones(len(b)), np.zeros(len(a))])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last index of each group of equal scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp, fp, len(b), len(a)


def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve, OOD positive (see the module docstring); ties count one half."""
    a, b = _pair(scores_in, scores_out)
    s = np.concatenate([a, b])
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average rank (1-based) of each group of ties
    starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def aupr(scores_in, scores_out) -> float:
    """Average precision with OOD as the positive class: sum_k (R_k - R_{k-1}) P_k."""
    tp, fp, n_pos, _ = _curve(scores_in, scores_out)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_95_tpr(scores_in, scores_out, level: float = TPR_LEVEL) -> float:
    """The false-positive rate (in-distribution flagged) at the first threshold whose TPR (OOD flagged)
    reaches ``level``."""
    tp, fp, n_pos, n_neg = _curve(scores_in, scores_out)
    tpr = tp / n_pos
    k = int(np.searchsorted(tpr, level - 1e-12, side="left"))
    return float(fp[min(k, len(fp) - 1)] / n_neg)


def ood_metrics(scores_in, scores_out) -> dict:
    """{"auroc", "aupr", "fpr_at_95_tpr", "n_in", "n_out"} for one pair of score sets."""
    a, b = _pair(scores_in, scores_out)
    return {"auroc": auroc(a, b), "aupr": aupr(a, b), "fpr_at_95_tpr": fpr_at_95_tpr(a, b),
            "n_in": int(len(a)), "n_out": int(len(b))}
