"""Sample quality in deepgen's own feature space: FD, precision/recall, density/coverage, class coverage."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from deepgen.cli import main
from deepgen.data import load_data
from deepgen.data.context import LabelContext
from deepgen.data.spec import DataSpec, Splits
from deepgen.errors import CheckpointError, ConfigError
from deepgen.evaluation.sample_quality import (
    DIGITS_NET, METRIC_KEYS, NEIGHBOURS, class_coverage, digits_feature_net, feature_space, frechet_distance,
    load_feature_net, net_paths, prdc, quality_metrics, save_feature_net, split_quality, train_feature_net,
)
from deepgen.evaluation.scoring import score_model
from deepgen.io import file_sha256
from deepgen.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the metrics, against hand formulas and the reference package -----------------------
def test_frechet_distance_of_identical_and_shifted_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, -1.0], dtype=torch.float64)
    # equal covariances: the trace term vanishes and FD = ||mu1 - mu2||^2
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-8)
    b = torch.randn(20000, 6, generator=g, dtype=torch.float64)
    c = torch.randn(20000, 6, generator=g, dtype=torch.float64)
    assert frechet_distance(b, c) < 0.01  # two large samples of one Gaussian


def test_frechet_distance_matches_the_matrix_square_root_formula():
    linalg = pytest.importorskip("scipy.linalg")
    g = np.random.default_rng(1)
    a = g.normal(size=(300, 5)) @ g.normal(size=(5, 5))
    b = g.normal(size=(250, 5)) * [1, 2, 3, 0.5, 1] + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
           - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_prdc_agrees_with_the_reference_package():
    ref = pytest.importorskip("prdc")
    g = np.random.default_rng(0)
    real = g.normal(size=(200, 16))
    fake = g.normal(size=(150, 16)) * 1.3 + 0.4
    ours = prdc(real, fake, k=NEIGHBOURS)
    theirs = ref.compute_prdc(real_features=real, fake_features=fake, nearest_k=NEIGHBOURS)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-12), key


def test_prdc_of_a_set_with_itself_and_of_a_far_set():
    x = torch.randn(100, 8)
    same = prdc(x, x)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_class_coverage_and_kl_to_uniform():
    balanced = class_coverage(torch.arange(100) % 10, 10)
    assert balanced["class_coverage"] == 1.0 and balanced["class_kl_nats"] == pytest.approx(0.0, abs=1e-12)
    collapsed = class_coverage(torch.full((50,), 3), 10)
    assert collapsed["class_coverage"] == 0.1 and collapsed["class_kl_nats"] == pytest.approx(math.log(10))
    # a class is covered at half a fair share: 5 of 100 samples with K = 10 is exactly 1 / (2K)
    counts = [5, 4] + [91 // 8] * 8
    counts[2] += 100 - sum(counts)
    pred = torch.repeat_interleave(torch.arange(10), torch.tensor(counts))
    assert class_coverage(pred, 10)["class_coverage"] == 0.9


# --- the shipped digits classifier ------------------------------------------------------
def test_shipped_weights_hash_and_stated_test_accuracy(digits):
    weights, record = net_paths(DIGITS_NET)
    meta = json.loads(record.read_text())
    assert weights.stat().st_size < 200_000
    assert file_sha256(weights) == meta["sha256"]
    net = digits_feature_net()
    _, predicted = net.features_and_classes(digits.test)
    accuracy = (predicted == digits.split_labels("test")).double().mean().item()
    assert accuracy == meta["accuracy"]["test"] and accuracy > 0.95
    assert net.meta["training"]["seed"] == 0 and net.classes == digits.classes


def test_tampered_weights_are_refused(tmp_path):
    for src in net_paths(DIGITS_NET):
        shutil.copy(src, tmp_path / src.name)
    copy = tmp_path / "digits-classifier.safetensors"
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_feature_net(tmp_path / "digits-classifier")


def test_held_out_data_score_near_perfect_and_noise_far_worse(digits, binary_digits):
    for splits in (digits, binary_digits):
        good = split_quality(splits, "train", "test")
        net, _ = feature_space(splits.spec)
        noise = torch.randint(0, splits.spec.levels, splits.test.shape, generator=torch.Generator().manual_seed(0))
        bad = quality_metrics(net, splits.test, noise.float(), splits.spec)
        assert good["frechet_distance"] < 0.1 * bad["frechet_distance"]
        assert 0.85 < good["density"] < 1.2 and good["coverage"] > 0.9
        assert good["precision"] > 0.9 and good["recall"] > 0.9 and good["class_coverage"] == 1.0
        assert bad["density"] < 0.3 and bad["coverage"] < 0.35 and bad["recall"] < 0.6
        assert bad["class_kl_nats"] > 10 * good["class_kl_nats"]


# --- scores of models --------------------------------------------------------------------
def _trained_fvsbn(splits, steps=30, **params):
    model = build_model("fvsbn", splits.spec, params)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = splits.train[torch.randint(0, len(splits.train), (128,))]
        if params.get("context_features"):
            batch = (batch, torch.nn.functional.one_hot(splits.labels["train"][:128], 10).float())
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_score_of_a_tiny_trained_model_has_the_keys(digits):
    model = _trained_fvsbn(digits)
    scores = score_model(model, digits, "test", seed=0)
    sq = scores["sample_quality"]
    assert set(METRIC_KEYS) <= set(sq) and scores["density"] == "exact"  # the model's density kind is kept
    assert sq["n_samples"] == len(digits.test) and sq["k"] == NEIGHBOURS and sq["sha256"] == digits_feature_net().meta["sha256"]
    assert sq["frechet_distance"] > sq["data_floor"]["frechet_distance"]
    again = score_model(model, digits, "test", seed=0, quality_samples=50)["sample_quality"]
    assert again["n_samples"] == 50
    assert score_model(model, digits, "test", seed=0)["sample_quality"] == sq  # seeded


def test_conditional_model_is_scored_on_the_labels_it_samples(digits):
    model = _trained_fvsbn(digits, context_features=10)
    ctx = LabelContext.from_splits(digits)
    sq = score_model(model, digits, "test", seed=0, label_context=ctx, quality_samples=60)["sample_quality"]
    assert 0.0 <= sq["sample_class_accuracy"] <= 1.0 and set(METRIC_KEYS) <= set(sq)


def test_no_feature_space_gives_a_note_never_pixel_figures():
    splits = load_data("moons")
    model = build_model("fvsbn", splits.spec, {})
    sq = score_model(model, splits, "test", seed=0)["sample_quality"]
    assert list(sq) == ["note"] and "never measured on raw pixels" in sq["note"]


# --- a feature net of the user's own images ---------------------------------------------
def _two_class_images(n=120, side=6):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 3, (n, 1, side, side), generator=g).float()
    x[y == 0, :, : side // 2] += 5  # class 0: bright top, class 1: bright bottom
    x[y == 1, :, side // 2 :] += 5
    spec = DataSpec("toy-images", (1, side, side), 8)
    parts = [slice(0, 80), slice(80, 100), slice(100, n)]
    return Splits(spec, *(x[p] for p in parts), labels={s: y[p] for s, p in zip(("train", "val", "test"), parts)},
                  classes=("top", "bottom"))


def test_user_feature_net_is_deterministic_saved_and_checked(tmp_path):
    splits = _two_class_images()
    net_a, meta = train_feature_net(splits, steps=40, batch_size=32)
    net_b, _ = train_feature_net(splits, steps=40, batch_size=32)
    assert all(torch.equal(a, b) for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values()))
    assert meta["accuracy"]["test"] > 0.9
    save_feature_net(net_a, meta, tmp_path)
    loaded, how = feature_space(splits.spec, tmp_path)
    assert how == "the data's own scale" and torch.equal(loaded.net.features(splits.test),
                                                         net_a.features(splits.test))
    with pytest.raises(ConfigError, match="shape"):
        feature_space(load_data("digits").spec, tmp_path)
    binary = DataSpec("toy-binary", (1, 6, 6), 2)
    assert "b -> 7 b" in feature_space(binary, tmp_path)[1]


def test_cli_features_then_score_with_them(tmp_path, capsys, digits):
    splits = digits
    x = torch.cat([splits.train, splits.val, splits.test])[:400].repeat_interleave(2, 2).repeat_interleave(2, 3)
    y = torch.cat([splits.labels[s] for s in ("train", "val", "test")])[:400]
    np.savez(tmp_path / "big.npz", x=x.numpy().astype(np.uint8), y=y.numpy())
    assert main(["features", "--data", str(tmp_path / "big.npz"), "--out", str(tmp_path / "feat"), "--steps", "30",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == file_sha256(tmp_path / "feat" / "feature-net.safetensors")
    assert main(["features", "--data", str(tmp_path / "big.npz"), "--out", str(tmp_path / "feat")]) == 2
    data = load_data(str(tmp_path / "big.npz"))
    model = build_model("gan", data.spec, {})
    assert list(score_model(model, data, "test")["sample_quality"]) == ["note"]
    sq = score_model(model, data, "test", features=tmp_path / "feat")["sample_quality"]
    assert set(METRIC_KEYS) <= set(sq) and sq["n_reference"] == len(data.test)
