"""Linear probes: how linearly a representation of x predicts its class label.

Given features f(x) of the train and test splits and their labels, the probe is a
multinomial logistic regression on standardised features,

    u = (f(x) - m) / s                   m, s: per-feature mean and std of the *train* features
    p(y = k | x) = softmax_k(W u + b)    fitted by L-BFGS on the train split, minimising
                                         -sum_i log p(y_i | x_i) + ||W||^2 / (2 C)

with the inverse regularisation C chosen from ``CS`` by stratified ``FOLDS``-fold
cross-validation accuracy *on the train split* (seeded folds; ties go to the smaller C).
The test split is used once, for the reported ``accuracy``: its labels never reach the
fit, the scaler or the choice of C.

:func:`representation_probe` probes a model's representation: ``encode(x)`` for a model
that encodes (a VAE's posterior mean, a BiGAN's E(x)), else ``features(x)`` (e.g. a GAN
discriminator's last hidden layer), flattened to (B, F); :func:`pixel_probe` is the
baseline on the raw pixels (data scale, flattened).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

CS = (0.01, 0.1, 1.0, 10.0)
FOLDS = 3
MAX_ITER = 2000


def _as_numpy(a) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a)


def linear_probe(train_features, train_labels, test_features, test_labels, seed: int = 0) -> dict:
    """Fit the probe on (train_features, train_labels), score it on the test split.

    Features (N, F) (tensors or arrays; flattened beyond the first axis), labels (N,) ints.
    Returns {"accuracy": test accuracy, "train_accuracy", "n_train", "n_test", "features": F,
    "C": the chosen inverse regularisation, "classes": number of train classes,
    "chance": the test frequency of the most frequent train class}.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    xtr = _as_numpy(train_features).reshape(len(train_features), -1).astype(np.float64)
    xte = _as_numpy(test_features).reshape(len(test_features), -1).astype(np.float64)
    ytr = _as_numpy(train_labels).astype(np.int64).ravel()
    yte = _as_numpy(test_labels).astype(np.int64).ravel()
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"linear_probe: {len(xtr)} train features for {len(ytr)} labels, "
                         f"{len(xte)} test features for {len(yte)} labels")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"linear_probe: train features have {xtr.shape[1]} dimensions, test {xte.shape[1]}")
    bad = int((~np.isfinite(xtr)).sum() + (~np.isfinite(xte)).sum())
    xtr, xte = np.nan_to_num(xtr, posinf=0.0, neginf=0.0), np.nan_to_num(xte, posinf=0.0, neginf=0.0)
    classes, counts = np.unique(ytr, return_counts=True)
    majority = classes[np.argmax(counts)]
    result = {"n_train": len(xtr), "n_test": len(xte), "features": int(xtr.shape[1]), "classes": len(classes),
              "chance": float(np.mean(yte == majority))}
    if bad:
        result["nonfinite_features"] = bad  # set to 0 before fitting
    if len(classes) < 2:  # nothing to learn: predict the one class seen
        result.update(accuracy=float(np.mean(yte == majority)), train_accuracy=1.0, C=None)
        return result

    def fit(x, y, c):
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=c, max_iter=MAX_ITER, tol=1e-4)
        clf.fit(scaler.transform(x), y)
        return scaler, clf

    folds = min(FOLDS, int(counts.min()))
    if folds >= 2:
        split = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(xtr, ytr))
        cv = []
        for c in CS:
            accs = []
            for tr, va in split:
                scaler, clf = fit(xtr[tr], ytr[tr], c)
                accs.append(np.mean(clf.predict(scaler.transform(xtr[va])) == ytr[va]))
            cv.append(float(np.mean(accs)))
        best_c = CS[int(np.argmax(cv))]  # argmax: the first (smallest) C on ties
    else:
        best_c = 1.0
    scaler, clf = fit(xtr, ytr, best_c)
    result.update(accuracy=float(np.mean(clf.predict(scaler.transform(xte)) == yte)),
                  train_accuracy=float(np.mean(clf.predict(scaler.transform(xtr)) == ytr)), C=best_c)
    return result


@torch.no_grad()
def model_features(model, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, str] | None:
    """(features (N, F) on the CPU, what they are) of a model's representation of x: ``encode(x)``
    if the model encodes, else ``features(x)``; None if it has neither (or is conditional: its code
    is a representation of x *given* the label, and probing it for the label would be meaningless)."""
    if model.is_conditional:
        return None
    if model.can("encode"):
        fn, source = model.encode, "encode(x)"
    elif model.can("features"):
        fn, source = model.features, "features(x)"
    else:
        return None
    was_training = model.training
    model.eval()
    try:
        out = [fn(x[i:i + batch_size].to(model.device)).detach().float().flatten(1).cpu()
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out), source


def representation_probe(model, splits, batch_size: int = 256, seed: int = 0, baseline: bool = True) -> dict | None:
    """The linear probe of a model's representation on a labelled dataset: fitted on the train split,
    ``accuracy`` on the test split (see :func:`linear_probe`), with ``representation`` naming the
    features and, if ``baseline``, ``pixel_accuracy`` of the same probe on raw pixels.
    None when the data have no labels or the model gives no representation (see :func:`model_features`)."""
    if not splits.has_labels:
        return None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        train = model_features(model, splits.split("train"), batch_size)
        if train is None:
            return None
        test, source = model_features(model, splits.split("test"), batch_size)
    result = linear_probe(train[0], splits.split_labels("train"), test, splits.split_labels("test"), seed=seed)
    result["representation"] = source
    if baseline:
        result["pixel_accuracy"] = pixel_probe(splits, seed=seed)["accuracy"]
    result["protocol"] = (f"multinomial logistic regression on standardised features, C in {list(CS)} by "
                          f"{FOLDS}-fold CV on the train split; accuracy on the test split")
    return result


# pixel probes already fitted in this process, by a digest of the data, labels and seed (every
# model scored on the same data shares one baseline; the fit is the slow part of a score)
_PIXEL_PROBES: dict[str, dict] = {}


def pixel_probe(splits, seed: int = 0) -> dict:
    """The baseline: the same probe on the raw data (flattened, on the data's scale)."""
    parts = (splits.split("train"), splits.split_labels("train"), splits.split("test"), splits.split_labels("test"))
    digest = hashlib.sha256(str(seed).encode())
    for t in parts:
        digest.update(np.ascontiguousarray(_as_numpy(t)).tobytes())
    key = digest.hexdigest()
    if key not in _PIXEL_PROBES:
        result = linear_probe(*parts, seed=seed)
        result["representation"] = "pixels"
        _PIXEL_PROBES[key] = result
    return dict(_PIXEL_PROBES[key])
