"""Sub-populations of a dataset: the splits without some classes (``deepgen train --exclude-classes``).

A run trained with classes held out models only the rest; its in-distribution test split is the
test split without those classes, and the held-out classes' test examples are a natural
out-of-distribution set (``deepgen ood RUN --ood heldout-classes``).
"""

from __future__ import annotations

import dataclasses

import torch

from deepgen.data.mapped import take_rows
from deepgen.data.spec import SPLITS, Splits
from deepgen.errors import DataError


def class_ids(splits: Splits, classes, source: str = "--exclude-classes") -> list[int]:
    """The label ids of ``classes`` (ids or class names, e.g. [5, 6] or ["5", "6"]) in ``splits``; one-line
    DataError for a dataset without labels or a class it does not have."""
    if not splits.has_labels:
        raise DataError(f"{source}: dataset '{splits.spec.name}' has no class labels to exclude classes by")
    ids = []
    for c in classes:
        name = str(c)
        if name not in splits.classes:
            raise DataError(f"{source}: '{name}' is not a class of '{splits.spec.name}' "
                            f"(classes: {', '.join(splits.classes)})")
        ids.append(splits.classes.index(name))
    return sorted(set(ids))


def class_mask(splits: Splits, split: str, ids) -> torch.Tensor:
    """(N,) bool: the examples of ``split`` whose class id is in ``ids``."""
    labels = splits.split_labels(split)
    return torch.isin(labels, torch.as_tensor(list(ids), dtype=labels.dtype))


def exclude_classes(splits: Splits, classes, source: str = "--exclude-classes") -> Splits:
    """``splits`` without the examples of ``classes`` in every split (labels and known factors follow);
    the class list (and so the label ids) stays the same.  Refuses to leave a split empty."""
    if not classes:
        return splits
    if getattr(splits, "translation", None) is not None:
        raise DataError(f"{source}: translation data ('{splits.spec.name}') cannot have classes excluded")
    ids = class_ids(splits, classes, source)
    kept_x, kept_labels, kept_factors = {}, {}, {}
    for split in SPLITS:
        keep = ~class_mask(splits, split, ids)
        if split == "train" and not bool(keep.any()):
            raise DataError(f"{source}: excluding classes {', '.join(splits.classes[i] for i in ids)} leaves no "
                            f"training examples of '{splits.spec.name}'")
        kept_x[split] = take_rows(splits.split(split), keep)
        kept_labels[split] = splits.labels[split][keep]
        if split in splits.factors:
            kept_factors[split] = splits.factors[split][keep]
    return dataclasses.replace(splits, **kept_x, labels=kept_labels, factors=kept_factors)
