"""Class labels of users' files, chosen by the ``labels`` argument of ``load_data``.

=======  =========================================  ==============================================
format   ``labels=...``                             ``labels=None`` (automatic)
=======  =========================================  ==============================================
IDX      path of an IDX label file (1-D, N values)  MNIST naming: ``X-images-idx3-ubyte[.gz]`` or
                                                    ``X-images.idx3-ubyte[.gz]`` uses the sibling
                                                    ``X-labels-idx1-ubyte[.gz]`` (resp.
                                                    ``X-labels.idx1-ubyte``) when it exists
.npz     key of an array (N,) in the same archive   first of ``y``, ``labels``, ``label``,
                                                    ``targets`` holding N valid labels (never the
                                                    data's own key)
.npy     path of another .npy of shape (N,)         none
CSV      a header column name, or ``col:K``         none: every column is a feature
         (0-based); that column leaves the features
images   ``"folders"``: class = the image's         when every image lies in an immediate
         immediate subfolder (sorted by name)       subfolder and there are >= 2 subfolders
=======  =========================================  ==============================================

``labels="none"`` turns labels off (no automatic detection).  Values become ids
by the rules of :mod:`deepgen.data.labels`.  An automatic ``.npz`` key or folder
layout that does not qualify (wrong length, non-integer values, too many
classes) is ignored; the same source given explicitly is an error saying why.
The MNIST sibling label file, once found, must match (count, format) or it is an
error.  Every error is one line naming the file and what was expected.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from deepgen.data.files import (
    _err, finish, image_files, npz_data_key, read_csv, read_examples, read_idx, read_images,
    read_numpy, resolve_source,
)
from deepgen.data.labels import NO_LABELS, Labels, label_ids
from deepgen.errors import DataError

if TYPE_CHECKING:  # (annotations only: this module imports no torch)
    import torch

    from deepgen.data.spec import DataSpec

NPZ_LABEL_KEYS = ("y", "labels", "label", "targets")
_MNIST_IMAGES = re.compile(r"^(?P<stem>.*)-images(?P<sep>[-.])idx3-ubyte(?P<gz>\.gz)?$")


class Parsed(NamedTuple):
    """A user's file read into NumPy, not yet checked as float32 (:func:`parse_labelled_file`)."""

    examples: np.ndarray
    levels: int | None
    desc: str
    features: tuple[str, ...] | None
    labels: Labels | None  # ids as a NumPy int64 array


# The one file parsed ahead of loading (see :func:`preparse`): (key, Parsed).
_AHEAD: list = []


def _file_key(source: str, labels: str | None):
    """What identifies one parse of ``source``: the source, the labels, and the file's identity and age."""
    _, path, _ = resolve_source(source)
    st = os.stat(path)
    return source, labels, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def preparse(source: str, labels: str | None = None) -> None:
    """Parse a user's file now, without torch (a malformed file is reported at once, before the heavy imports),
    and keep the result for the :func:`load_labelled_file` of the same unchanged file (one file is kept)."""
    parsed = parse_labelled_file(source, labels)
    _AHEAD[:] = [(_file_key(source, labels), parsed)]


def load_labelled_file(source: str, labels: str | None = None) -> tuple[torch.Tensor, DataSpec, Labels | None]:
    """A user's file as float32 examples (N, *shape), their spec, and their labels (or None).

    ``source`` is as for :func:`deepgen.data.files.load_file`; ``labels`` is the
    label source of the table above, None for automatic detection or "none".
    """
    import torch

    parsed = None
    if _AHEAD:
        (key, ahead), _AHEAD[:] = _AHEAD[0], []
        if key == _file_key(source, labels):
            parsed = ahead
    if parsed is None:
        parsed = parse_labelled_file(source, labels)
    found = parsed.labels
    x, spec = finish(parsed.examples, parsed.levels, resolve_source(source)[1], parsed.desc,
                     found.classes if found else (), parsed.features)
    return x, spec, (Labels(torch.from_numpy(found.ids), found.classes) if found else None)


def parse_labelled_file(source: str, labels: str | None = None) -> Parsed:
    """The NumPy part of :func:`load_labelled_file` (imports no torch): examples, levels, format, feature names
    and labels of a user's file, every format and label error raised as one line."""
    fmt, path, key = resolve_source(source)
    if labels == NO_LABELS:
        a, levels, desc, features = read_examples(fmt, path, key)
        return Parsed(a, levels, desc, features, None)
    features = None
    if fmt == "csv":
        a, found, features = csv_labels(path, labels)
        levels, desc = None, "csv"
    elif fmt == "images":
        files = image_files(path)
        found = folder_labels(path, files, labels)
        a, levels, desc = read_images(path, files).transpose(0, 3, 1, 2), 256, "images"
    else:
        a, levels, desc, _ = read_examples(fmt, path, key)
        if fmt == "idx":
            found = idx_labels(path, labels, len(a))
        elif desc == "npz":
            found = npz_labels(path, key, labels, len(a))
        else:
            found = npy_labels(path, labels, len(a))
    return Parsed(a, levels, desc, features, found)


def _count_error(label_path: str, n_labels: int, data_path: str, n: int) -> DataError:
    """Label count != example count, naming both files and both counts."""
    return DataError(f"{label_path}: {n_labels} labels but {data_path} has {n} examples; "
                     "expected one label per example")


def mnist_label_sibling(path: str) -> str | None:
    """The MNIST-named label file next to an MNIST-named images file, if it exists."""
    folder, name = os.path.split(path)
    m = _MNIST_IMAGES.match(name)
    if m is None:
        return None
    base = f"{m['stem']}-labels{m['sep']}idx1-ubyte"
    gz = m["gz"] or ""
    for candidate in (base + gz, base + (".gz" if not gz else "")):
        if os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    return None


def idx_labels(path: str, labels: str | None, n: int) -> Labels | None:
    """Labels of an IDX file of N examples: the IDX label file ``labels``, else its MNIST sibling."""
    if labels is None:
        label_path = mnist_label_sibling(path)
        if label_path is None:
            return None
    else:
        label_path = labels
        if not os.path.isfile(label_path):
            raise _err(label_path, f"no such file; expected an IDX label file (1-D, {n} values) for {path}")
    y, desc = read_idx(label_path)
    if y.ndim != 1:
        raise _err(label_path, f"IDX file of shape {y.shape}; expected an IDX label file (1-D, {n} ubyte or int "
                   f"values) for {path}")
    if len(y) != n:
        raise _count_error(label_path, len(y), path, n)
    return label_ids(y, label_path)


def npy_labels(path: str, labels: str | None, n: int) -> Labels | None:
    """Labels of a .npy file of N examples: the .npy file ``labels`` of shape (N,) (never automatic)."""
    if labels is None:
        return None
    if not os.path.isfile(labels):
        raise _err(labels, f"no such file; expected a .npy file of {n} labels, shape ({n},), for {path}")
    y, _ = read_numpy(labels, None, _refuse_archive)
    if y.ndim != 1:
        raise _err(labels, f"labels have shape {y.shape}; expected shape ({n},), one label per example of {path}")
    if len(y) != n:
        raise _count_error(labels, len(y), path, n)
    return label_ids(y, labels)


def _refuse_archive(z, path: str, key: str | None):
    """A label file given for .npy data must be a .npy file too."""
    raise _err(path, "is an .npz archive; expected a .npy file of labels, shape (N,)")


def npz_labels(path: str, key: str | None, labels: str | None, n: int) -> Labels | None:
    """Labels of the data in an .npz archive: the array under key ``labels``, else a conventional key."""

    def pick(z, path: str, key: str | None) -> Labels | None:
        """The labels in the open archive ``z`` whose data are under ``key`` (or the default key)."""
        keys = list(z.files)
        data_key = npz_data_key(keys, path, key)
        if labels is None:
            return _npz_auto(z, path, [k for k in NPZ_LABEL_KEYS if k in keys and k != data_key], n)
        if labels not in keys:
            raise _err(path, f"npz archive has no labels key '{labels}'; keys are {keys}")
        if labels == data_key:
            raise _err(path, f"labels key '{labels}' holds the data; expected the key of a separate array of labels")
        y = z[labels]
        if y.ndim != 1:
            raise _err(path, f"labels key '{labels}' has shape {y.shape}; expected shape ({n},), "
                       f"one label per example of key '{data_key}'")
        if len(y) != n:
            raise DataError(f"{path}: labels key '{labels}' has {len(y)} values but key '{data_key}' has {n} "
                            "examples; expected one label per example")
        return label_ids(y, f"{path}:{labels}")

    return read_numpy(path, key, pick)[0]


def _npz_auto(z, path: str, candidates: list[str], n: int) -> Labels | None:
    """The first candidate key holding N valid labels, or None."""
    for k in candidates:
        try:
            y = z[k]
            if y.ndim == 1 and len(y) == n:
                return label_ids(y, f"{path}:{k}")
        except Exception:  # noqa: BLE001 - not labels (pickled, corrupt, non-integer): keep looking
            continue
    return None


def csv_labels(path: str, labels: str | None) -> tuple[np.ndarray, Labels | None, tuple[str, ...] | None]:
    """Features (N, D) of a CSV table, the labels in column ``labels`` (a name or col:K), taken out,
    and the header's names of the feature columns (None without a header)."""
    table = read_csv(path, labels)
    if table.label_cells is None:
        return table.features, None, table.names
    where = f"{path}: {table.label_column}"
    for cell, line in zip(table.label_cells, table.lines):
        if not cell:
            raise DataError(f"{where}: line {line} has an empty label; expected a class label in every row")
    try:
        values = np.array([float(c) for c in table.label_cells])
    except ValueError:  # some cell is not a number: string labels
        values = np.array(table.label_cells, dtype=str)
    return table.features, label_ids(values, where), table.names


def folder_labels(path: str, files: list[str], labels: str | None) -> Labels | None:
    """Labels of images in a folder: the name of each image's immediate subfolder of ``path``."""
    if labels not in (None, "folders"):
        raise _err(path, f"labels '{labels}' not understood for an image folder; expected 'folders' "
                   "(class = name of the image's immediate subfolder)")
    parts = [os.path.relpath(f, path).split(os.sep) for f in files]
    names = np.array([p[0] for p in parts], dtype=str)
    if labels is None:
        if any(len(p) != 2 for p in parts) or len(set(names.tolist())) < 2:
            return None
        try:
            return label_ids(names, path)
        except DataError:  # too many folders to be classes: no labels
            return None
    for f, p in zip(files, parts):
        if len(p) < 2:
            raise _err(f, f"lies directly in {path}; expected labels='folders' to find every image in a "
                       "subfolder named after its class")
    return label_ids(names, path)
