"""OOD metrics (AUROC, AUPR, FPR at 95% TPR) against scikit-learn's on fixed scores, ties included."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from deepgen.errors import DataError
from deepgen.evaluation.ood_metrics import aupr, auroc, fpr_at_95_tpr, ood_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def sklearn_figures(s_in, s_out):
    """scikit-learn's figures with OOD labelled 1; FPR at the first ROC point whose TPR reaches 0.95."""
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return roc_auc_score(y, s), average_precision_score(y, s), fpr[np.searchsorted(tpr, 0.95)]


CASES = [
    (np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.9, 0.5, 0.35, 0.7, 0.2])),  # one tie across classes
    (np.array([1.0, 1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0, 3.0, 3.0])),  # many ties
    (np.zeros(7), np.zeros(3)),  # everything tied
    (np.arange(10.0), np.arange(10.0) + 100),  # perfectly separated
    (np.arange(10.0) + 100, np.arange(10.0)),  # perfectly wrong
]


@pytest.mark.parametrize("s_in,s_out", CASES)
def test_fixed_cases_equal_sklearn(s_in, s_out):
    a, p, f = sklearn_figures(s_in, s_out)
    assert auroc(s_in, s_out) == pytest.approx(a, abs=1e-12)
    assert aupr(s_in, s_out) == pytest.approx(p, abs=1e-12)
    assert fpr_at_95_tpr(s_in, s_out) == pytest.approx(f, abs=1e-12)


def test_random_scores_with_ties_equal_sklearn():
    rng = np.random.default_rng(12)
    for _ in range(100):
        s_in = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
        s_out = rng.integers(1, 8, size=rng.integers(1, 40)).astype(float) + rng.choice([0, 0.5])
        a, p, f = sklearn_figures(s_in, s_out)
        assert auroc(s_in, s_out) == pytest.approx(a, abs=1e-12)
        assert aupr(s_in, s_out) == pytest.approx(p, abs=1e-12)
        assert fpr_at_95_tpr(s_in, s_out) == pytest.approx(f, abs=1e-12)


def test_hand_values_and_orientation():
    # OOD is positive and higher = more abnormal: separated sets give 1 / 1 / 0, swapped ones 0
    assert ood_metrics([0, 1], [2, 3]) == {"auroc": 1.0, "aupr": 1.0, "fpr_at_95_tpr": 0.0, "n_in": 2, "n_out": 2}
    assert auroc([2, 3], [0, 1]) == 0.0 and fpr_at_95_tpr([2, 3], [0, 1]) == 1.0
    # all tied: chance AUROC, AUPR = share of OOD, every in-distribution example flagged
    assert auroc([5] * 3, [5]) == 0.5 and aupr([5] * 3, [5]) == 0.25 and fpr_at_95_tpr([5] * 3, [5]) == 1.0
    # one OOD example below one of two in-distribution examples: U = 1 of 2 pairs
    assert auroc([0, 2], [1]) == 0.5


def test_auroc_is_antisymmetric_and_accepts_tensors():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g), torch.randn(30, generator=g) + 0.5
    assert auroc(a, b) == pytest.approx(1 - auroc(b, a), abs=1e-12)
    assert auroc(a, b) == auroc(a.numpy(), b.numpy().tolist())


@pytest.mark.parametrize("s_in,s_out,what", [([], [1.0], "no in-distribution"), ([1.0], [], "no out-of"),
                                             ([float("nan")], [1.0], "NaN")])
def test_bad_scores_are_one_line_errors(s_in, s_out, what):
    with pytest.raises(DataError, match=what) as e:
        ood_metrics(s_in, s_out)
    assert "\n" not in str(e.value)
