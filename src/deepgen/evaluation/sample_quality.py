"""Sample quality in a classifier's feature space: Fréchet distance, precision / recall,
density / coverage and class coverage, with no download.

Feature space.  The penultimate layer f(x) of a small convolutional classifier
(:class:`deepgen.nets.classifier.ImageClassifier`, 64 features).  For 1x8x8 images
with 17 levels (``digits``) it is deepgen's own digits classifier, trained
deterministically on the ``digits`` train split (:func:`train_digits_feature_net`,
``scripts/train_digits_classifier.py``) and shipped as ``deepgen/weights/
digits-classifier.safetensors`` with a JSON record of its settings, test accuracy and
SHA-256 (checked on every load; loading runs no code: safetensors + JSON).  Binary
data (2 levels, e.g. ``digits-binary``) are mapped to the scale the net was trained on,
b -> (L - 1) b (0 / 16 for the digits net).  Other image data need a feature net the
user names, trained on their own labels (``deepgen features``); data without a
feature space get no such figures, never figures on raw pixels.

With real features r_1..r_M (the reference split) and features g_1..g_N of N model
samples:

* Fréchet distance (Heusel et al. 2017) of the Gaussians fitted to each set
  (means mu, covariances S with the n - 1 denominator):

      FD = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)

  (>= 0; 0 for equal moments; a finite-sample estimate is biased upwards).
* k-NN manifolds (Kynkäänniemi et al. 2019), k = 5: rho_k(r_i) is the distance from
  r_i to its k-th nearest other real point (likewise rho_k(g_j) among samples);
  B(c, rho) the open ball.  precision = mean_j 1[g_j in some B(r_i, rho_k(r_i))],
  recall = mean_i 1[r_i in some B(g_j, rho_k(g_j))].
* density and coverage (Naeem et al. 2020), same balls around real points:
  density = (1 / kN) sum_j sum_i 1[g_j in B(r_i, rho_k(r_i))] (about 1 when the
  distributions agree, above 1 when samples crowd dense real regions),
  coverage = mean_i 1[the nearest sample to r_i lies in B(r_i, rho_k(r_i))].
  These four follow the reference package ``prdc`` exactly (strict inequalities).
* class coverage: with q_c the fraction of samples the classifier assigns to class
  c of K, ``class_coverage`` = the fraction of classes with q_c >= 1 / (2K) (at least
  half a fair share), and ``class_kl_nats`` = KL(q || uniform) = sum_c q_c log(K q_c)
  (0 for balanced classes, log K when all samples fall in one class).

All of them are reported under one key, ``sample_quality`` (a score's top-level
``density`` already says what a model's log_prob is).  Protocol: N = the size of the reference split (270 for the digits test split) seeded
samples, unless set otherwise; a class-conditional model samples with the labels of
the reference examples (and then ``sample_class_accuracy`` is the fraction of samples
classified as their label).  The record ``sample_quality`` also holds ``data_floor``: the same
figures for held-out data (the first N train examples) in place of samples, what a perfect
model reaches (finite-sample FD is not 0: on digits train vs test it is about 28, uniform
noise about 570).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from deepgen.data.spec import DataSpec, Splits
from deepgen.errors import CheckpointError, ConfigError, DataError
from deepgen.evaluation.modes import seeded_samples
from deepgen.io import file_sha256, load_tensors, save_tensors, write_json
from deepgen.nets.classifier import ImageClassifier

NEIGHBOURS = 5  # k of the k-NN balls (precision, recall, density, coverage)
FAIR_SHARE = 0.5  # a class is covered when it gets >= FAIR_SHARE / K of the samples
FORMAT = "deepgen feature net"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DIGITS_NET = WEIGHTS_DIR / "digits-classifier"
USER_NET = "feature-net"  # DIR/feature-net.safetensors + DIR/feature-net.json (deepgen features --out DIR)
METRIC_KEYS = ("frechet_distance", "precision", "recall", "density", "coverage", "class_coverage")

# deterministic training settings of the shipped digits classifier (and defaults for users' nets)
# binary_fraction: that fraction of each batch of L-level images (L > 2) is shown binarized, b = 1[k >= (L-1)/2],
# mapped to (L - 1) b, so the net also reads binary data (digits-binary)
TRAIN_SETTINGS = {"seed": 0, "steps": 1500, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4,
                  "optimizer": "AdamW, cosine decay to 0", "channels": [16, 32], "features": 64,
                  "binary_fraction": 0.25}


# --- metrics ------------------------------------------------------------------
def _as_features(f, name: str) -> torch.Tensor:
    f = torch.as_tensor(f).detach().double().cpu()
    if f.ndim != 2:
        raise DataError(f"{name}: expected features of shape (n, d), got {tuple(f.shape)}")
    return f


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(f1, f2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) of the Gaussians fitted to rows of f1, f2."""
    a, b = _as_features(f1, "frechet_distance"), _as_features(f2, "frechet_distance")
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise DataError(f"frechet_distance: need >= 2 rows of equal width on each side, got {tuple(a.shape)} "
                        f"and {tuple(b.shape)}")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    r = _sqrt_psd(s1)
    cross = torch.linalg.eigvalsh((r @ s2 @ r + (r @ s2 @ r).T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * cross
    return max(float(fd), 0.0)


def _kth_neighbour_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself is the 0-th)."""
    return torch.cdist(f, f).kthvalue(k + 1, dim=1).values


def prdc(real, fake, k: int = NEIGHBOURS) -> dict:
    """precision, recall, density, coverage of ``fake`` against ``real`` features with k-NN balls
    (Kynkäänniemi et al. 2019; Naeem et al. 2020); the same estimates as the ``prdc`` package."""
    r, g = _as_features(real, "prdc"), _as_features(fake, "prdc")
    if r.shape[1] != g.shape[1]:
        raise DataError(f"prdc: features differ in width ({r.shape[1]} vs {g.shape[1]})")
    if len(r) <= k or len(g) <= k:
        raise DataError(f"prdc: need more than k = {k} rows on each side, got {len(r)} and {len(g)}")
    real_radii, fake_radii = _kth_neighbour_radii(r, k), _kth_neighbour_radii(g, k)
    d = torch.cdist(r, g)  # (M, N)
    inside_real = d < real_radii[:, None]
    return {
        "precision": inside_real.any(0).double().mean().item(),
        "recall": (d < fake_radii[None, :]).any(1).double().mean().item(),
        "density": inside_real.sum(0).double().mean().item() / k,
        "coverage": (d.min(1).values < real_radii).double().mean().item(),
    }


def class_coverage(predicted, num_classes: int, fair_share: float = FAIR_SHARE) -> dict:
    """``class_coverage`` (fraction of the K classes with q_c >= fair_share / K), ``class_kl_nats``
    (KL(q || uniform) = sum_c q_c log(K q_c)) and ``class_counts`` of predicted class ids."""
    p = torch.as_tensor(predicted).long().reshape(-1)
    if len(p) == 0:
        raise DataError("class_coverage: no samples")
    counts = torch.bincount(p, minlength=num_classes).double()
    q = counts / counts.sum()
    kl = torch.where(q > 0, q * torch.log(num_classes * q), torch.zeros_like(q)).sum()
    return {"class_coverage": float((q >= fair_share / num_classes).double().mean()),
            "class_kl_nats": float(kl), "class_counts": [int(c) for c in counts]}


# --- the feature net: saving, loading (hash-checked, no code run), the shipped one ----------
@dataclass
class FeatureNet:
    """A trained :class:`ImageClassifier` with its record (``meta``: classes, data, accuracy, sha256)."""

    net: ImageClassifier
    meta: dict
    path: Path

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta["classes"])

    @property
    def levels(self) -> int | None:
        return self.meta["data"].get("levels")

    @torch.no_grad()
    def features_and_classes(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (n, d) and predicted class ids (n,) of images ``x`` on the net's input scale."""
        feats, preds = [], []
        for i in range(0, len(x), batch_size):
            f = self.net.features(x[i : i + batch_size].float())
            feats.append(f)
            preds.append(self.net.head(f).argmax(1))
        return torch.cat(feats), torch.cat(preds)

    def describe(self) -> str:
        acc = self.meta.get("accuracy", {}).get("test")
        acc_text = f", test accuracy {acc:.4f}" if acc is not None else ""
        where = ("shipped with deepgen: deepgen/weights/" + self.path.name if self.path.parent == WEIGHTS_DIR
                 else str(self.path))
        return (f"{self.meta['name']} ({where}.safetensors): penultimate layer, {self.net.num_features} "
                f"features{acc_text}")


def net_paths(path) -> tuple[Path, Path]:
    """(weights, record) of a feature net named by a directory (DIR/feature-net.*), a stem or either file."""
    p = Path(path)
    if p.is_dir():
        p = p / USER_NET
    elif p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_feature_net(net: ImageClassifier, meta: dict, path) -> dict:
    """Write ``path``.safetensors (weights) and ``path``.json (``meta`` + architecture + the weights'
    SHA-256); ``path`` a stem or a directory (then DIR/feature-net).  Returns the record written."""
    weights, record = net_paths(path)
    save_tensors(weights, net.state_dict())
    meta = {"format": FORMAT, "version": 1, **meta, "architecture": net.architecture(),
            "weights": weights.name, "sha256": file_sha256(weights)}
    write_json(record, meta)
    return meta


@functools.lru_cache(maxsize=8)
def _load_cached(weights: str, record: str, mtime: float) -> FeatureNet:
    import json

    weights_path, record_path = Path(weights), Path(record)
    if not record_path.is_file():
        raise CheckpointError(f"{record_path}: feature net record not found (expected the JSON written with its "
                              f"weights by deepgen features)")
    try:
        meta = json.loads(record_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        arch = meta["architecture"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{record_path}: not a feature net record ({exc})") from None
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: feature net weights not found")
    digest = file_sha256(weights_path)
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{weights_path}: SHA-256 {digest} differs from the recorded {meta.get('sha256')} "
                              f"({record_path.name}); the weights were changed or belong to another net")
    try:
        net = ImageClassifier(arch["shape"], arch["num_classes"], tuple(arch["channels"]), arch["features"])
        net.load_state_dict(load_tensors(weights_path))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit the recorded architecture ({exc})") from None
    net.eval().requires_grad_(False)
    return FeatureNet(net, meta, weights_path.with_suffix(""))


def load_feature_net(path) -> FeatureNet:
    """Load (once per process) the feature net at ``path`` (see :func:`net_paths`), checking its SHA-256."""
    weights, record = net_paths(path)
    mtime = weights.stat().st_mtime if weights.is_file() else 0.0
    return _load_cached(str(weights), str(record), mtime)


def digits_feature_net() -> FeatureNet:
    """deepgen's shipped digits classifier (1x8x8, 17 levels, 10 classes)."""
    return load_feature_net(DIGITS_NET)


# --- training a feature net (deterministic) ---------------------------------------
def accuracy(net: ImageClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        was = net.training
        net.eval()
        acc = (net(x.float()).argmax(1) == y).double().mean().item()
        net.train(was)
    return acc


def train_feature_net(splits: Splits, seed: int = TRAIN_SETTINGS["seed"], steps: int = TRAIN_SETTINGS["steps"],
                      batch_size: int = TRAIN_SETTINGS["batch_size"], lr: float = TRAIN_SETTINGS["lr"],
                      weight_decay: float = TRAIN_SETTINGS["weight_decay"],
                      binary_fraction: float = TRAIN_SETTINGS["binary_fraction"], name: str = USER_NET,
                      verbose: bool = False) -> tuple[ImageClassifier, dict]:
    """Train an :class:`ImageClassifier` on the labelled train split of ``splits`` (cross-entropy, AdamW
    with cosine decay, minibatches from a seeded generator; the global RNG is left untouched); returns
    the net and its record (settings and accuracy on each split).  Deterministic for a given torch
    build and thread count (the shipped net: one thread)."""
    spec = splits.spec
    if not spec.is_image:
        raise ConfigError(f"feature net: expected image data (C, H, W), got examples of shape {spec.shape}")
    if not splits.has_labels:
        raise DataError(f"feature net: dataset '{spec.name}' has no class labels; name them with --labels "
                        "(a label file, .npz key, CSV column or 'folders')")
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError(f"feature net: steps, batch size and lr must be positive, got {steps}, {batch_size}, {lr}")
    x, y = splits.train.float(), splits.split_labels("train")
    binarize = bool(binary_fraction) and spec.levels is not None and spec.levels > 2
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ImageClassifier(spec.shape, splits.num_classes, tuple(TRAIN_SETTINGS["channels"]),
                              TRAIN_SETTINGS["features"])
        net.fit_input(x)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        net.train()
        order = torch.randperm(len(x), generator=g)
        pos = 0
        for step in range(steps):
            if pos + batch_size > len(x):
                order, pos = torch.randperm(len(x), generator=g), 0
            idx = order[pos : pos + batch_size]
            pos += batch_size
            xb = x[idx]
            if binarize:
                flip = torch.rand(len(xb), generator=g) < binary_fraction
                xb = torch.where(flip[:, None, None, None], binary_to_levels(binarized(xb, spec.levels), spec.levels), xb)
            loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if verbose and (step + 1) % 250 == 0:
                print(f"step {step + 1}/{steps}: train loss {loss.item():.4f}")
    net.eval().requires_grad_(False)
    acc = {s: accuracy(net, splits.split(s), splits.split_labels(s)) for s in ("train", "val", "test")}
    meta = {"name": name, "classes": list(splits.classes), "data": spec.to_dict(),
            "features": f"penultimate layer (ReLU of a linear map), {net.num_features} values",
            "training": {**TRAIN_SETTINGS, "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
                         "weight_decay": weight_decay, "binary_fraction": binary_fraction if binarize else 0.0,
                         "split": "train", "torch": torch.__version__.split("+")[0]},
            "accuracy": acc}
    return net, meta


def train_digits_feature_net(out=DIGITS_NET, verbose: bool = False) -> dict:
    """Retrain deepgen's digits classifier with the recorded settings (one thread) and write it to ``out``
    (default: the shipped files); also records its test accuracy on ``digits-binary`` mapped b -> 16 b."""
    from deepgen.data import load_data

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, meta = train_feature_net(load_data("digits"), name="digits-classifier", verbose=verbose)
        binary = load_data("digits-binary")
        meta["accuracy"]["test_binary_mapped"] = accuracy(net, binary_to_levels(binary.test, 17),
                                                          binary.split_labels("test"))
    finally:
        torch.set_num_threads(threads)
    meta["binary_input"] = "2-level data are mapped b -> 16 b (the 0..16 scale the net was trained on)"
    return save_feature_net(net, meta, out)


# --- which feature space applies to a dataset ------------------------------------
def binarized(x: torch.Tensor, levels: int) -> torch.Tensor:
    """b = 1[k >= (L - 1) / 2] of images on levels 0..L-1 (``digits-binary`` from ``digits``: k >= 8)."""
    return (x >= (levels - 1) / 2).float()


def binary_to_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Binary images b in {0, 1} on the scale 0..L-1 of a net trained on L levels: (L - 1) b."""
    return x * (levels - 1)


def feature_space(spec: DataSpec, features=None) -> tuple[FeatureNet | None, str]:
    """(feature net, how the data enter it) for data ``spec``, or (None, why there is none).

    ``features``: a feature net the user names (a directory from ``deepgen features``, or a stem);
    None: the shipped digits classifier for 1x8x8 images with 17 or 2 levels, else none."""
    if features is None:
        if tuple(spec.shape) == (1, 8, 8) and spec.levels in (17, 2):
            net = digits_feature_net()
        else:
            return None, (f"no feature space for {spec.name} (examples {tuple(spec.shape)}, "
                          f"{'continuous' if spec.levels is None else f'{spec.levels} levels'}): deepgen's digits "
                          "classifier takes 1x8x8 images with 17 (or 2) levels; for other images train one on your "
                          "labels (deepgen features --data D --labels L --out DIR) and name it (--features DIR). "
                          "Sample quality is never measured on raw pixels")
    else:
        net = load_feature_net(features)
    if tuple(net.net.shape) != tuple(spec.shape):
        raise ConfigError(f"feature net {net.path}: trained on images of shape {tuple(net.net.shape)}; the data "
                          f"'{spec.name}' have shape {tuple(spec.shape)}")
    if spec.levels == net.levels:
        return net, "the data's own scale"
    if spec.levels == 2 and net.levels is not None:
        return net, f"binary data mapped b -> {net.levels - 1} b (the 0..{net.levels - 1} scale of the net)"
    raise ConfigError(f"feature net {net.path}: trained on data with "
                      f"{'continuous values' if net.levels is None else f'{net.levels} levels'}; the data "
                      f"'{spec.name}' have {'continuous values' if spec.levels is None else f'{spec.levels} levels'}")


def to_net_scale(x: torch.Tensor, spec: DataSpec, net: FeatureNet) -> torch.Tensor:
    """Images on the data's scale -> the net's input scale (binary data -> (L - 1) b)."""
    x = x.float()
    if spec.levels == 2 and net.levels not in (None, 2):
        return binary_to_levels(x, net.levels)
    return x


# --- the figures ------------------------------------------------------------------
def quality_metrics(net: FeatureNet, reference: torch.Tensor, samples: torch.Tensor, spec: DataSpec,
                    k: int = NEIGHBOURS) -> dict:
    """FD, precision, recall, density, coverage, class coverage of ``samples`` against ``reference``
    (both on the data's scale), plus the samples' predicted classes (``predicted``, a tensor)."""
    real, _ = net.features_and_classes(to_net_scale(reference, spec, net))
    fake, predicted = net.features_and_classes(to_net_scale(samples, spec, net))
    out = {"frechet_distance": frechet_distance(real, fake), **prdc(real, fake, k)}
    out.update(class_coverage(predicted, len(net.classes)))
    out["predicted"] = predicted
    return out


def sample_quality_scores(model, splits: Splits, split: str = "test", seed: int = 0, n: int | None = None,
                          features=None, context: torch.Tensor | None = None, k: int = NEIGHBOURS) -> dict:
    """``{"sample_quality": {...}}``: the figures of ``n`` (default: the split's size) seeded samples of
    ``model`` against the examples of ``split``, in the feature space of :func:`feature_space`.

    The dict holds :data:`METRIC_KEYS`, ``class_kl_nats``, ``class_counts``, the protocol (feature net
    and its hash, n, k, seed, definitions) and ``data_floor``.  (Nested, since a score's top-level
    ``density`` already names what the model's log_prob is.)  A conditional model gets ``context``
    (one row per example of the split, cycled to ``n``) and also ``sample_class_accuracy``.  Where no
    feature space applies: {"note": why}."""
    net, scale = feature_space(splits.spec, features)
    if net is None:
        return {"sample_quality": {"note": scale}}
    reference = splits.split(split)
    n = len(reference) if n is None else int(n)
    if n <= k:
        raise ConfigError(f"sample quality: need more than k = {k} samples, got {n}")
    rows = torch.arange(n) % len(reference)
    ctx = None if context is None else context[rows]
    samples = seeded_samples(model, n, seed, ctx)
    bad = int((~torch.isfinite(samples.reshape(n, -1))).any(1).sum())
    if bad:
        top = 1e6 if splits.spec.levels is None else splits.spec.levels - 1.0
        samples = torch.nan_to_num(samples, nan=0.0, posinf=top, neginf=-1e6 if splits.spec.levels is None else 0.0)
    result = quality_metrics(net, reference, samples, splits.spec, k)
    predicted = result.pop("predicted")
    definitions = {"features": net.meta.get("features", "penultimate layer"),
                   "frechet_distance": "||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2) of the "
                                       "features of reference (r) and samples (g)",
                   "precision, recall": f"k-NN manifolds, k = {k} (Kynkaanniemi et al. 2019)",
                   "density, coverage": f"k-NN balls around reference points, k = {k} (Naeem et al. 2020)",
                   "class_coverage": f"fraction of the {len(net.classes)} classes given >= {FAIR_SHARE:g}/K of the "
                                     "samples by the classifier; class_kl_nats = KL(q || uniform) in nats"}
    if context is not None and splits.has_labels and tuple(splits.classes) == net.classes:
        labels = splits.split_labels(split)[rows]
        result["sample_class_accuracy"] = (predicted == labels).double().mean().item()
        definitions["sample_class_accuracy"] = "fraction of samples classified as the label they were drawn for"
    if bad:
        result["non_finite_samples"] = bad
    floor_split = "val" if split == "train" else "train"
    m = min(n, len(splits.split(floor_split)))
    floor = split_quality(splits, floor_split, split, n=m, features=features, k=k)
    result.update({
        "feature_net": net.describe(), "sha256": net.meta["sha256"], "input": scale, "n_samples": n,
        "n_reference": len(reference), "reference": f"{splits.spec.name} {split} split", "k": k, "seed": seed,
        "definitions": definitions,
        "data_floor": {"what": f"the first {m} {floor_split} examples scored as samples: what a perfect model "
                               "reaches", **{key: floor[key] for key in METRIC_KEYS}},
    })
    return {"sample_quality": result}


def split_quality(splits: Splits, split: str = "train", reference: str = "test", n: int | None = None,
                  features=None, k: int = NEIGHBOURS) -> dict:
    """The figures of the first ``n`` (default: as many as ``reference`` has) examples of ``split`` as if
    they were samples: the floor a perfect model reaches (train vs test: FD near 0, density and
    coverage near 1)."""
    net, scale = feature_space(splits.spec, features)
    if net is None:
        raise ConfigError(scale)
    ref = splits.split(reference)
    x = splits.split(split)[: len(ref) if n is None else n]
    figures = quality_metrics(net, ref, x, splits.spec, k)
    figures.pop("predicted")
    return figures


__all__ = ["frechet_distance", "prdc", "class_coverage", "FeatureNet", "load_feature_net", "digits_feature_net",
           "save_feature_net", "train_feature_net", "train_digits_feature_net", "feature_space",
           "sample_quality_scores", "split_quality", "quality_metrics", "METRIC_KEYS", "NEIGHBOURS"]
