"""Built-in out-of-distribution sets, on the run's data scale, deterministic for a seed.

Discrete images (e.g. digits, L = 17 levels; N = the test split's size):

    noise            every value uniform in {0, ..., L-1}
    constant         flat images, each at one uniform level
    inverted         L - 1 - x of the test images
    hflip / vflip    the test images mirrored left-right / upside down
    blur             3x3 box filter (edges: mean of the pixels inside), rounded to a level
    shift            the test images moved 2 pixels right and 2 down, background (level 0) filled in
    heldout-classes  the test images of the classes the run was trained without
                     (``train.exclude_classes`` in its config.yaml); refused for other runs

Vectors (e.g. the 2-D toys):

    shifted          the test split moved by 3 training standard deviations along every feature
    toy:NAME         the test split's size drawn from the built-in 2-D toy NAME (seeded)

A user's file (``--ood PATH``) is read with :func:`deepgen.data.load_data`; all its examples
(train, val and test splits together) form the set, and they must match the run's shape and levels:
for discrete data, integers in 0..L-1 (a file's levels are read as its max + 1, so a file may use
fewer levels than the run, never more).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepgen.data import is_file_source, load_data
from deepgen.data.spec import DataSpec, Splits, validate_array
from deepgen.data.subsets import class_ids, class_mask
from deepgen.data.toy2d import TOY_DATASETS, sample_toy
from deepgen.errors import ConfigError, DataError, unknown_name

IMAGE_SETS = {
    "noise": "uniform random levels",
    "constant": "flat images at a random level",
    "inverted": "L - 1 - x",
    "hflip": "mirrored left-right",
    "vflip": "mirrored upside down",
    "blur": "3x3 box blur",
    "shift": "moved 2 pixels right and down",
    "heldout-classes": "test images of the classes excluded from training",
}
VECTOR_SETS = {
    "shifted": "moved by 3 training standard deviations",
    "toy:NAME": "another built-in 2-D toy",
}
SHIFT_PIXELS = 2
SHIFT_STDS = 3.0


def builtin_sets(spec: DataSpec) -> dict[str, str]:
    """The built-in OOD sets for data of ``spec`` (name -> description)."""
    if spec.is_image and spec.levels is not None:
        return dict(IMAGE_SETS)
    if not spec.is_image and len(spec.shape) == 1:
        return dict(VECTOR_SETS) if spec.shape == (2,) else {"shifted": VECTOR_SETS["shifted"]}
    return {}


def default_sets(spec: DataSpec, exclude_classes=None) -> list[str]:
    """The sets a suite runs when none are named: every built-in one that applies (``heldout-classes``
    only for a run trained with excluded classes; for 2-D data ``shifted`` and one other toy)."""
    names = [n for n in builtin_sets(spec) if n != "toy:NAME" and (n != "heldout-classes" or exclude_classes)]
    if spec.shape == (2,):
        names.append("toy:checkerboard" if spec.name != "checkerboard" else "toy:moons")
    return names


def make_set(name: str, splits: Splits, seed: int = 0, exclude_classes=None) -> torch.Tensor:
    """The OOD set ``name`` (a built-in name or a data file's path) for a run of ``splits``' data:
    float32 (N, *shape) on the data's scale."""
    spec = splits.spec
    sets = builtin_sets(spec)
    if name in sets or (name.startswith("toy:") and "toy:NAME" in sets):
        x = _builtin(name, splits, seed, exclude_classes)
        return validate_array(x.float(), spec, f"OOD set '{name}'")
    if name.startswith("toy:") or name in IMAGE_SETS or name in VECTOR_SETS:
        raise ConfigError(f"OOD set '{name}' is not for data '{spec.name}' (shape {tuple(spec.shape)}, "
                          f"{spec.levels or 'continuous'} levels); built-in sets for it: "
                          f"{', '.join(sets) or 'none'}")
    if is_file_source(name):
        return load_user_set(name, spec)
    raise unknown_name("OOD set", name, sets)


def load_user_set(path: str, spec: DataSpec) -> torch.Tensor:
    """All examples of a data file (every split), checked against the run's shape and levels."""
    data = load_data(path, labels="none")
    got = data.spec
    if tuple(got.shape) != tuple(spec.shape):
        raise DataError(f"--ood {path}: examples have shape {tuple(got.shape)}; the run was trained on "
                        f"{tuple(spec.shape)} ('{spec.name}')")
    if spec.levels is not None and (got.levels is None or got.levels > spec.levels):
        raise DataError(f"--ood {path}: data have {got.levels or 'continuous'} levels; the run was trained on "
                        f"{spec.levels} levels: expected integers in 0..{spec.levels - 1}")
    x = torch.cat([data.train, data.val, data.test])
    return validate_array(x, spec, f"--ood {path}")


def _builtin(name: str, splits: Splits, seed: int, exclude_classes) -> torch.Tensor:
    test, spec = splits.test, splits.spec
    g = torch.Generator().manual_seed(int(seed))
    n = len(test)
    if name == "shifted":
        return test + SHIFT_STDS * splits.train.std(0)
    if name.startswith("toy:"):
        toy = name[4:]
        if toy not in TOY_DATASETS:
            raise unknown_name("toy dataset", toy, TOY_DATASETS)
        if toy == spec.name:
            raise ConfigError(f"OOD set '{name}' is the run's own data; name another toy")
        return sample_toy(toy, n, g)
    levels = spec.levels
    if name == "noise":
        return torch.randint(levels, (n, *spec.shape), generator=g).float()
    if name == "constant":
        return torch.randint(levels, (n, 1, 1, 1), generator=g).float().expand(n, *spec.shape).clone()
    if name == "inverted":
        return (levels - 1) - test
    if name == "hflip":
        return test.flip(-1)
    if name == "vflip":
        return test.flip(-2)
    if name == "blur":
        return F.avg_pool2d(test, 3, stride=1, padding=1, count_include_pad=False).round()
    if name == "shift":
        k = SHIFT_PIXELS
        out = torch.zeros_like(test)
        out[..., k:, k:] = test[..., :-k, :-k]
        return out
    return heldout_classes(splits, exclude_classes)


def heldout_classes(splits: Splits, exclude_classes) -> torch.Tensor:
    """The test examples of ``exclude_classes`` (the run's ``train.exclude_classes``: ids or names)."""
    if not exclude_classes:
        raise ConfigError("OOD set 'heldout-classes' needs a run trained without some classes (deepgen train "
                          "--exclude-classes 5,6,7,8,9, recorded as train.exclude_classes); this run saw all classes")
    mask = class_mask(splits, "test", class_ids(splits, exclude_classes, "train.exclude_classes"))
    if not mask.any():
        raise DataError(f"OOD set 'heldout-classes': the test split holds no example of classes {list(exclude_classes)}")
    return splits.test[mask]
