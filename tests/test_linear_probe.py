"""Linear probes: separable features are read perfectly, noise at chance, test labels never reach the fit."""

import numpy as np
import pytest
import torch

from deepgen.data.spec import DataSpec, Splits
from deepgen.evaluation.linear_probe import linear_probe, model_features, pixel_probe, representation_probe
from deepgen.models.base import GenerativeModel

pytestmark = pytest.mark.usefixtures("one_thread")

K = 4


def blobs(n, dim=8, sep=6.0, seed=0):
    """n points of K well separated Gaussian classes in ``dim`` dimensions."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % K
    centers = np.eye(K, dim) * sep
    return centers[y] + g.normal(size=(n, dim)), y


def test_separable_features_are_read_perfectly():
    xtr, ytr = blobs(200)
    xte, yte = blobs(100, seed=1)
    out = linear_probe(xtr, ytr, xte, yte)
    assert out["accuracy"] == 1.0 and out["train_accuracy"] == 1.0
    assert (out["n_train"], out["n_test"], out["features"], out["classes"]) == (200, 100, 8, K)
    assert out["chance"] == pytest.approx(0.25)


def test_random_features_give_chance():
    g = np.random.default_rng(0)
    out = linear_probe(g.normal(size=(400, 8)), np.arange(400) % K, g.normal(size=(400, 8)), np.arange(400) % K)
    assert abs(out["accuracy"] - 1 / K) < 0.1  # 400 test points: sd of the accuracy ~ 0.02


def test_test_labels_never_reach_the_fit():
    xtr, ytr = blobs(200)
    xte, yte = blobs(200, seed=1)
    true = linear_probe(xtr, ytr, xte, yte)
    shuffled = linear_probe(xtr, ytr, xte, np.random.default_rng(0).permutation(yte))
    assert true["accuracy"] == 1.0 and abs(shuffled["accuracy"] - 1 / K) < 0.12
    # the fit (scaler, C, weights) is the same: only the score on the test labels moved
    assert shuffled["train_accuracy"] == true["train_accuracy"] and shuffled["C"] == true["C"]


def test_standardisation_makes_the_probe_scale_free():
    xtr, ytr = blobs(120)
    xte, yte = blobs(60, seed=1)
    scale = np.array([1e-4, 1e4] * 4)
    a, b = linear_probe(xtr, ytr, xte, yte), linear_probe(xtr * scale, ytr, xte * scale, yte)
    assert (a["accuracy"], a["C"]) == (b["accuracy"], b["C"])


def test_tensors_with_extra_axes_are_flattened():
    xtr, ytr = blobs(80)
    xte, yte = blobs(40, seed=1)
    out = linear_probe(torch.tensor(xtr).reshape(80, 2, 4), torch.tensor(ytr),
                       torch.tensor(xte).reshape(40, 2, 4), torch.tensor(yte))
    assert out["features"] == 8 and out["accuracy"] == 1.0
    with pytest.raises(ValueError, match="labels"):
        linear_probe(xtr, ytr[:-1], xte, yte)


# --- probing a model ------------------------------------------------------------------

def labelled_splits(n=120):
    """Vectors whose class is in the sign pattern of the first two coordinates, 'pixels' = x."""
    spec = DataSpec("toy", (6,))
    out, labels = {}, {}
    for i, name in enumerate(("train", "val", "test")):
        x, y = blobs(n, dim=6, seed=i)
        out[name], labels[name] = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    return Splits(spec, **out, labels=labels, classes=tuple(str(k) for k in range(K)))


class FakeModel(GenerativeModel):
    """A model whose representation is a fixed map of x: ``keep`` first coordinates (or noise)."""

    name = "fake"
    capabilities = frozenset({"features"})

    def __init__(self, spec, keep: int = 6, noise: bool = False):
        super().__init__(spec, keep=keep, noise=noise)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.keep, self.noise = keep, noise
        self.calls = []

    def features(self, x, context=None):
        self.calls.append((len(x), self.training))
        if self.noise:
            return torch.randn(len(x), 3, 2)
        return x[:, :self.keep].reshape(len(x), self.keep, 1) + 0 * self.w


class FakeEncoder(FakeModel):
    capabilities = frozenset({"encode", "features"})

    def encode(self, x, context=None):
        return -x[:, :self.keep]


def test_representation_probe_uses_features_batched_in_eval_mode():
    splits = labelled_splits()
    model = FakeModel(splits.spec, keep=6)
    model.train()
    out = representation_probe(model, splits, batch_size=50)
    assert out["representation"] == "features(x)" and out["features"] == 6 and out["accuracy"] == 1.0
    assert out["pixel_accuracy"] == pixel_probe(splits)["accuracy"] == 1.0
    assert [n for n, _ in model.calls] == [50, 50, 20] * 2 and not any(t for _, t in model.calls)
    assert model.training  # the mode is restored


def test_representation_probe_prefers_encode_and_sees_bad_features():
    splits = labelled_splits()
    assert representation_probe(FakeEncoder(splits.spec), splits)["representation"] == "encode(x)"
    noisy = representation_probe(FakeModel(splits.spec, noise=True), splits, baseline=False)
    assert noisy["features"] == 6 and noisy["accuracy"] < 0.5 and "pixel_accuracy" not in noisy


def test_no_probe_without_labels_or_a_representation():
    splits = labelled_splits()
    plain = GenerativeModel(splits.spec)
    assert representation_probe(plain, splits) is None and model_features(plain, splits.test) is None
    unlabelled = Splits(splits.spec, splits.train, splits.val, splits.test)
    assert representation_probe(FakeModel(splits.spec), unlabelled) is None


def test_probe_on_digits_pixels(digits):
    out = pixel_probe(digits)
    assert out["accuracy"] > 0.93 and out["n_test"] == len(digits.test) and out["features"] == 64
