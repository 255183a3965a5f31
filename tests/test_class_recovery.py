"""Class recovery: best-permutation accuracy of a categorical code against labels."""

import pytest
import torch

from deepgen.data.spec import DataSpec, Splits
from deepgen.errors import ConfigError
from deepgen.evaluation.class_recovery import best_permutation_accuracy, class_recovery_scores, confusion_matrix
from deepgen.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_confusion_matrix_counts_pairs():
    codes = torch.tensor([0, 0, 1, 2, 2, 2])
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    assert confusion_matrix(codes, labels, 3, 2).tolist() == [[0, 2], [1, 0], [2, 1]]
    with pytest.raises(ConfigError, match="same shape"):
        confusion_matrix(codes, labels[:3], 3, 2)
    with pytest.raises(ConfigError, match=r"codes must lie in 0\.\.1"):
        confusion_matrix(codes, labels, 2, 2)


def test_hand_computed_best_matching_with_more_codes_than_labels():
    codes = torch.tensor([0, 0, 1, 2, 2, 2])
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    out = best_permutation_accuracy(codes, labels, 3, 2)
    # C = [[0, 2], [1, 0], [2, 1]]: best one-to-one is code 0 -> 1 (2), code 2 -> 0 (2); code 1 unmatched
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["mapping"] == [1, None, 0]
    # many-to-one: 2 + 1 + 2
    assert out["majority_accuracy"] == pytest.approx(5 / 6)
    assert out["n"] == 6


def test_a_permuted_labelling_scores_one_and_the_mapping_inverts_it():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (1000,), generator=g)
    perm = torch.randperm(10, generator=g)
    out = best_permutation_accuracy(perm[labels], labels, 10, 10)
    assert out["accuracy"] == 1.0 and out["majority_accuracy"] == 1.0
    assert out["mapping"] == torch.argsort(perm).tolist()  # code perm[y] -> label y


def test_a_random_labelling_scores_near_chance():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(10, (5000,), generator=g)
    codes = torch.randint(10, (5000,), generator=g)
    out = best_permutation_accuracy(codes, labels, 10, 10)
    assert 0.1 <= out["accuracy"] < 0.13
    # a code that is right 60 % of the time and random otherwise scores about 0.6 + 0.4 / 10
    right = torch.rand(5000, generator=g) < 0.6
    out = best_permutation_accuracy(torch.where(right, (labels + 3) % 10, codes), labels, 10, 10)
    assert out["accuracy"] == pytest.approx(0.64, abs=0.03)


class FixedCodes(torch.nn.Module):
    """A stand-in model whose Q puts all its mass on a given code per example."""

    categories = 4
    is_conditional = False
    name = "fixed"

    def __init__(self, codes):
        super().__init__()
        self.codes = codes

    def can(self, capability):
        return capability == "codes"

    def code_logits(self, x, context=None):
        return 10 * torch.nn.functional.one_hot(self.codes[: len(x)], self.categories).float()


def labelled_splits(n=40, k=4):
    spec = DataSpec("toy", (2,))
    x = torch.randn(n, 2)
    labels = torch.arange(n) % k
    return Splits(spec, x, x, x, labels={s: labels for s in ("train", "val", "test")},
                  classes=tuple(f"c{i}" for i in range(k))), labels


def test_class_recovery_scores_reads_argmax_q():
    splits, labels = labelled_splits()
    model = FixedCodes((labels + 1) % 4)
    out = class_recovery_scores(model, splits)
    assert out["accuracy"] == 1.0 and out["n"] == 40 and out["categories"] == 4
    assert out["mapping"] == ["c3", "c0", "c1", "c2"] and out["classes"] == ["c0", "c1", "c2", "c3"]
    assert out["code_usage"] == [0.25] * 4
    assert model.training  # mode restored


def test_class_recovery_scores_is_none_without_a_code_or_labels():
    splits, labels = labelled_splits()
    assert class_recovery_scores(build_model("gan", splits.spec, {"hidden": 8}), splits) is None
    no_cat = build_model("infogan", splits.spec, {"hidden": 8, "categories": 0})
    assert class_recovery_scores(no_cat, splits) is None
    unlabelled = Splits(splits.spec, splits.train, splits.val, splits.test)
    assert class_recovery_scores(build_model("infogan", splits.spec, {"hidden": 8}), unlabelled) is None


def test_class_recovery_scores_on_an_untrained_infogan(digits):
    model = build_model("infogan", digits.spec, {"hidden": 16})
    out = class_recovery_scores(model, digits, "test")
    assert out["n"] == len(digits.test) and len(out["mapping"]) == 10
    assert 0.0 < out["accuracy"] < 0.5  # an untrained Q knows nothing of the classes
    assert sum(sum(row) for row in out["confusion"]) == out["n"]
