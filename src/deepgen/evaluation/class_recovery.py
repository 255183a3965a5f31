"""Class recovery: how well an unsupervised categorical code matches the true classes.

A model with a categorical code (InfoGAN's c_cat) assigns each real example x the code
k(x) = argmax_k Q(k | x).  The codes carry no names, so the accuracy is taken under the best
one-to-one matching of codes to labels (the unsupervised clustering accuracy of InfoGAN's
MNIST experiment, Chen et al. 2016):

    C[k, y] = #{i : k(x_i) = k, y_i = y}                        (confusion matrix, K codes x L labels)
    accuracy = max_{pi one-to-one} 1/N sum_k C[k, pi(k)]        (Hungarian assignment)

solved by :func:`scipy.optimize.linear_sum_assignment` on -C.  With K != L only min(K, L) codes
get a label; examples with an unmatched code count as errors.  ``majority_accuracy`` maps every
code to its most frequent label instead (many-to-one; >= accuracy, and equal when the matching
is a bijection of majorities).  Chance: a code independent of the labels scores about the
largest class frequency (a little above it, from the best matching over noise).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from deepgen.errors import ConfigError


def confusion_matrix(codes: torch.Tensor, labels: torch.Tensor, num_codes: int, num_labels: int) -> torch.Tensor:
    """C (num_codes, num_labels) int64: C[k, y] = number of examples with code k and label y."""
    codes, labels = torch.as_tensor(codes).long().cpu(), torch.as_tensor(labels).long().cpu()
    if codes.shape != labels.shape or codes.ndim != 1:
        raise ConfigError(f"class recovery needs codes and labels of the same shape (N,), got "
                          f"{tuple(codes.shape)} and {tuple(labels.shape)}")
    if len(codes) and (codes.min() < 0 or codes.max() >= num_codes or labels.min() < 0 or labels.max() >= num_labels):
        raise ConfigError(f"class recovery: codes must lie in 0..{num_codes - 1} and labels in 0..{num_labels - 1}")
    flat = torch.bincount(codes * num_labels + labels, minlength=num_codes * num_labels)
    return flat.reshape(num_codes, num_labels)


def best_permutation_accuracy(codes: torch.Tensor, labels: torch.Tensor, num_codes: int | None = None,
                              num_labels: int | None = None) -> dict:
    """Accuracy of ``codes`` (N,) against ``labels`` (N,) under the best one-to-one code -> label matching.

    Returns {"accuracy", "majority_accuracy", "n", "mapping": [label of code k, or None if unmatched],
    "confusion": C as nested lists (codes x labels)}.
    """
    codes, labels = torch.as_tensor(codes).long(), torch.as_tensor(labels).long()
    if len(codes) == 0:
        raise ConfigError("class recovery needs at least one example")
    k = int(num_codes if num_codes is not None else int(codes.max()) + 1)
    m = int(num_labels if num_labels is not None else int(labels.max()) + 1)
    conf = confusion_matrix(codes, labels, k, m)
    rows, cols = linear_sum_assignment(-conf.numpy().astype(np.float64))
    mapping: list[int | None] = [None] * k
    for r, c in zip(rows, cols):
        mapping[int(r)] = int(c)
    n = len(codes)
    return {"accuracy": float(conf[rows, cols].sum()) / n,
            "majority_accuracy": float(conf.max(1).values.sum()) / n,
            "n": n, "mapping": mapping, "confusion": conf.tolist()}


def class_recovery_scores(model, splits, split: str = "test", context: torch.Tensor | None = None) -> dict | None:
    """Best-permutation accuracy of ``model``'s categorical code, read as argmax Q(c | x), against the
    labels of ``split``; None when the model has no categorical code (``categories`` = 0 or absent) or
    the data have no labels, or when the model is conditional and no ``context`` is given.

    Returns {"accuracy", "majority_accuracy", "n", "categories", "classes" (names), "mapping"
    (class name matched to each code, None if unmatched), "confusion", "code_usage" (fraction of
    the split given each code), "note"}.
    """
    if not model.can("codes"):
        return None
    categories = int(model.categories)
    if categories < 2 or not splits.has_labels:
        return None
    if model.is_conditional and context is None:
        return None
    x = splits.split(split)
    labels = splits.split_labels(split)
    was_training = model.training
    model.eval()
    try:
        codes = model.code_logits(x, context).argmax(-1).cpu()
    finally:
        model.train(was_training)
    out = best_permutation_accuracy(codes, labels, categories, splits.num_classes)
    usage = torch.bincount(codes, minlength=categories).double() / len(codes)
    return {"accuracy": out["accuracy"], "majority_accuracy": out["majority_accuracy"], "n": out["n"],
            "categories": categories, "classes": list(splits.classes),
            "mapping": [None if y is None else splits.classes[y] for y in out["mapping"]],
            "confusion": out["confusion"], "code_usage": [round(float(u), 4) for u in usage],
            "note": (f"the {split} split's codes argmax_c Q(c | x) matched one-to-one to the "
                     f"{splits.num_classes} classes (Hungarian assignment); unmatched codes count as errors")}
