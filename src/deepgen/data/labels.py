"""Class labels ("conditioning as data"): raw label values -> integer ids + class names.

Rules, the same for every source:

- ids are int64 in ``0..K-1``; ``classes[k]`` is the name of class ``k``;
- integer values (any integer dtype, bool, or floats holding whole numbers) are
  mapped by sorted numeric value, and named by their decimal form
  (``-1, 0, 2, 10`` -> ids ``0, 1, 2, 3``, classes ``("-1", "0", "2", "10")``);
- strings (CSV cells, folder names, unicode arrays) are mapped by sorted value;
- floats that are not whole numbers, NaN / infinite values, other dtypes and more
  than :data:`MAX_CLASSES` distinct values are a one-line :class:`DataError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from deepgen.errors import DataError

if TYPE_CHECKING:  # (annotations only: this module imports no torch)
    import torch

MAX_CLASSES = 1000
NO_LABELS = "none"  # labels="none": no labels, and no automatic detection

# Value of the ``labels`` argument that names each kind of source, for messages.
LABEL_SOURCES = ("an IDX label file", "a .npz key", "a .npy file", "a CSV column name or col:K",
                 "'folders' for an image folder")


class Labels(NamedTuple):
    """Class ids of N examples (int64, values in 0..K-1) and the K class names."""

    ids: torch.Tensor  # (a NumPy array in what :func:`label_ids` returns)
    classes: tuple[str, ...]


def encode_labels(values: np.ndarray | Sequence[str], where: str) -> Labels:
    """Map raw label values (1-D: numbers or strings) to ids by sorted unique value (a torch int64 tensor).

    ``where`` names the file or field in error messages (``"<where>: <what>"``).
    """
    import torch

    ids, classes = label_ids(values, where)
    return Labels(torch.from_numpy(ids), classes)


def label_ids(values: np.ndarray | Sequence[str], where: str) -> Labels:
    """:func:`encode_labels` with the ids as a NumPy int64 array (imports no torch: files are parsed before
    torch loads, so their errors come at once)."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(f"{where}: labels have shape {a.shape}; expected a 1-D array (N,), one label per example")
    if a.dtype.kind == "U":
        uniq, inverse = np.unique(a, return_inverse=True)
        classes = tuple(str(v) for v in uniq)
    elif a.dtype.kind in "biuf" and a.dtype.names is None:
        a = _whole_numbers(a, where)
        uniq, inverse = np.unique(a, return_inverse=True)
        classes = tuple(str(int(v)) for v in uniq)
    else:
        raise DataError(f"{where}: labels have dtype {a.dtype}; expected integers (or strings)")
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{where}: {len(classes)} distinct label values; expected at most {MAX_CLASSES} classes")
    return Labels(inverse.reshape(-1).astype(np.int64), classes)


def _whole_numbers(a: np.ndarray, where: str) -> np.ndarray:
    """Integer labels as int64; floats must be finite whole numbers."""
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) > 2**53)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: label {float(a[i])!r} of example {i} is not a whole number; "
                            "expected integer class labels")
        return a.astype(np.int64)
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise DataError(f"{where}: label {a.max()} is too large; expected integer class labels below 2**63")
    return a.astype(np.int64)


def label_summary(classes: Sequence[str], shown: int = 10) -> str:
    """``"K classes"`` plus their names when there are few (for descriptions)."""
    if len(classes) > shown:
        return f"{len(classes)} classes"
    return f"{len(classes)} classes ({', '.join(classes)})"


def check_labels(labels: dict[str, torch.Tensor], classes: Sequence[str], sizes: dict[str, int], name: str) -> None:
    """Check the labels of a :class:`Splits`: known splits, int64 (N,), ids in 0..K-1."""
    import torch

    if labels and not classes:
        raise DataError(f"dataset '{name}': labels are given without class names; expected classes")
    for split, y in labels.items():
        if split not in sizes:
            raise DataError(f"dataset '{name}': labels for unknown split '{split}'; expected train, val or test")
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or tuple(y.shape) != (sizes[split],):
            what = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise DataError(f"dataset '{name}': {split} labels are {what}; expected int64 of shape ({sizes[split]},)")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"dataset '{name}': {split} labels lie in [{y.min().item()}, {y.max().item()}]; "
                            f"expected ids in 0..{len(classes) - 1} for {len(classes)} classes")
