"""Datasets: built-in (2-D toys, digits) and users' own files.

``load_data(name_or_path)`` returns fixed :class:`Splits`; ``list_datasets()``
names the built-in ones.  A user's file is split 80/10/10 with a fixed seed.
"""

from __future__ import annotations

import os

from deepgen.data.spec import DataSpec, Splits, split_fixed, validate_array
from deepgen.errors import unknown_name

__all__ = ["DataSpec", "Splits", "load_data", "list_datasets"]

_FILE_PREFIXES = ("idx:", "npy:", "npz:", "csv:", "images:")


def list_datasets() -> dict[str, str]:
    """Built-in dataset name -> one-line description."""
    from deepgen.data.toy2d import TOY_DATASETS

    out = dict(TOY_DATASETS)
    out["digits"] = "sklearn handwritten digits; 8x8 grey, 17 levels (0..16); 1257/270/270 train/val/test"
    out["digits-binary"] = "digits binarized at level >= 8; 8x8, 2 levels; 1257/270/270 train/val/test"
    return out


def is_file_source(name: str) -> bool:
    return name.startswith(_FILE_PREFIXES) or os.path.sep in name or os.path.exists(name)


def load_data(name: str) -> Splits:
    """Load a built-in dataset by name, or a user's file / folder by path."""
    if name in ("digits", "digits-binary"):
        from deepgen.data.digits import load_digits_images

        return load_digits_images(binary=name == "digits-binary")
    from deepgen.data.toy2d import TOY_DATASETS, load_toy

    if name in TOY_DATASETS:
        return load_toy(name)
    if is_file_source(name):
        from deepgen.data.files import load_file

        x, spec = load_file(name)
        x = validate_array(x, spec, name)
        train, val, test = split_fixed(x)
        return Splits(spec, x[train], x[val], x[test])
    raise unknown_name("dataset", name, list_datasets())
