"""Users' translation data, in the folder layouts pix2pix and CycleGAN use.

``aligned:PATH`` (pix2pix, paired): every image is A and B side by side, width = 2 x height,
left half A, right half B.  PATH holds ``train/`` (and optionally ``val/``, ``test/``) folders of
such images; a missing ``val/`` or ``test/`` is carved out of ``train/`` (10 % each, seeded
permutation).  A flat PATH (no ``train/``) is split 80/10/10 with the fixed seed of every user file
(:func:`deepgen.data.spec.split_fixed`).  ``paired=True``, truth = B.

``unaligned:PATH``, or any PATH with ``trainA/`` and ``trainB/`` (CycleGAN, unpaired): ``trainA/``,
``trainB/`` and optionally ``testA/`` with ``testB/``; val = 10 % of each train folder and, without
test folders, test = another 10 % (seeded permutation).  Within each split the two domains are then
made the same size: the larger one keeps a seeded random subset (in file order) of as many images as the
smaller has, the rest are dropped.  ``paired=False``, truth = {} (T is unknown).

Images are read by :mod:`deepgen.data.files` (same checks: sizes, symbolic links, decompression
bombs, memory cap); all images of a task must have one size (A and B alike), and have 256 levels.
A recorded run keeps ``aligned:/absolute/PATH`` or ``unaligned:/absolute/PATH``
(:func:`canonical_translation_source`).  Every failure is a one-line DataError naming the file or folder.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from deepgen.data.files import image_files, read_images
from deepgen.data.spec import SPLITS, DataSpec, Splits, Translation, split_fixed
from deepgen.data.paths import UNALIGNED
from deepgen.errors import DataError

FORMATS = ("aligned", "unaligned")
CARVE_FRACTION = 0.1  # of train, for a missing val / test folder
_SEED = 0
_UNALIGNED = UNALIGNED
_LAYOUT_A = "pix2pix's aligned layout: train/ (optional val/, test/) or a flat folder of A|B images"
_LAYOUT_U = "CycleGAN's layout trainA/ trainB/ (optional testA/ testB/)"


def translation_source(source: str) -> tuple[str, str] | None:
    """(``"aligned"`` | ``"unaligned"``, folder) for a translation source, or None for anything else.

    ``aligned:PATH`` and ``unaligned:PATH`` are translation sources (PATH must be a folder); so is a plain
    PATH with a ``trainA/`` or ``trainB/`` folder (unaligned).  A format prefix such as ``images:PATH``
    keeps its meaning (the folder's images as one dataset)."""
    head, sep, rest = source.partition(":")
    if sep and head in FORMATS:
        if not os.path.isdir(rest):
            what = "is not a folder" if os.path.exists(rest) else "no such folder"
            layout = _LAYOUT_A if head == "aligned" else _LAYOUT_U
            raise DataError(f"{rest}: {what}; expected a folder in {layout}")
        return head, rest
    if os.path.isdir(source) and any(os.path.isdir(os.path.join(source, d)) for d in _UNALIGNED[:2]):
        return "unaligned", source
    return None


def canonical_translation_source(source: str) -> str | None:
    """``aligned:/absolute/PATH`` or ``unaligned:/absolute/PATH`` for a translation source, else None."""
    found = translation_source(source)
    return None if found is None else f"{found[0]}:{os.path.abspath(found[1])}"


def load_translation_files(source: str) -> Splits | None:
    """The :class:`Splits` (domain B, with ``translation`` = domain A) of a translation source, or None
    when ``source`` is not one (see :func:`translation_source`)."""
    found = translation_source(source)
    if found is None:
        return None
    fmt, path = found
    return _load_aligned(path) if fmt == "aligned" else _load_unaligned(path)


# --------------------------------------------------------------------------- helpers


def _read_groups(path: str, groups: dict[str, list[str]]) -> dict[str, torch.Tensor]:
    """The images of each group of files (read together: one size for all) as float32 (N, C, H, W)."""
    files = [f for fs in groups.values() for f in fs]
    a = np.ascontiguousarray(read_images(path, files).transpose(0, 3, 1, 2), dtype=np.float32)
    x, out, start = torch.from_numpy(a), {}, 0
    for name, fs in groups.items():
        out[name], start = x[start:start + len(fs)], start + len(fs)
    return out


def _carve(n: int, missing: list[str], where: str) -> dict[str, torch.Tensor]:
    """Row indices of ``train`` and of each ``missing`` split (10 % of n each) out of n train rows."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_SEED))
    k = max(1, round(CARVE_FRACTION * n))
    if n - k * len(missing) < 1:
        raise DataError(f"{where}: {n} image(s); expected at least {len(missing) + 1} to carve "
                        f"{' and '.join(missing)} out of it ({CARVE_FRACTION:.0%} each) and keep one for train")
    out = {s: perm[i * k:(i + 1) * k] for i, s in enumerate(missing)}
    out["train"] = perm[k * len(missing):]
    return out


def _spec(path: str, x: torch.Tensor, what: str) -> DataSpec:
    """256-level image spec named after the folder."""
    name = os.path.basename(os.path.normpath(path))
    return DataSpec(name, tuple(x.shape[1:]), 256, f"{what} from {name}: shape {tuple(x.shape[1:])}, 256 levels (0..255)")


# --------------------------------------------------------------------------- aligned (pix2pix)


def _load_aligned(path: str) -> Splits:
    """Paired A|B images: split folders, or a flat folder split 80/10/10."""
    dirs = {s: os.path.join(path, s) for s in SPLITS if os.path.isdir(os.path.join(path, s))}
    if dirs and "train" not in dirs:
        raise DataError(f"{os.path.join(path, 'train')}: no such folder, but {path} has "
                        f"{'/ '.join(sorted(dirs))}/; expected {_LAYOUT_A}")
    groups = {s: image_files(d) for s, d in dirs.items()} if dirs else {"all": image_files(path)}
    images = _read_groups(path, groups)
    first = next(iter(images.values()))
    h, w = first.shape[-2:]
    if w != 2 * h:
        example = os.path.relpath(next(iter(groups.values()))[0], path)
        raise DataError(f"{path}: images are {w}x{h} (WxH) like {example}; expected width = 2 x height "
                        f"(pix2pix's aligned layout: left half A, right half B)")
    if not dirs:
        x = images["all"]
        if len(x) < 3:
            raise DataError(f"{path}: {len(x)} image(s); expected at least 3 to split into train/val/test "
                            f"(or {_LAYOUT_A})")
        parts = dict(zip(SPLITS, split_fixed(x, seed=_SEED)))
        images = {s: x[p] for s, p in parts.items()}
    elif len(dirs) < len(SPLITS):
        train = images["train"]
        parts = _carve(len(train), [s for s in SPLITS if s not in dirs], dirs["train"])
        images = {s: images[s] if s in dirs else train[parts[s]] for s in SPLITS} | {"train": train[parts["train"]]}
    a = {s: images[s][..., :w // 2].contiguous() for s in SPLITS}
    b = {s: images[s][..., w // 2:].contiguous() for s in SPLITS}
    tr = Translation(paired=True, source=a, truth=dict(b), description="aligned A|B images; T unknown (truth = B)")
    return Splits(_spec(path, b["train"], "aligned A|B images (pix2pix)"), **b, translation=tr)


# --------------------------------------------------------------------------- unaligned (CycleGAN)


def _load_unaligned(path: str) -> Splits:
    """Unpaired trainA/ trainB/ (testA/ testB/) folders, per-split sizes equalised."""
    dirs = {d: os.path.join(path, d) for d in _UNALIGNED}
    present = {d for d, p in dirs.items() if os.path.isdir(p)}
    for d, other in (("trainA", "trainB"), ("trainB", "trainA"), ("testA", "testB"), ("testB", "testA")):
        if d not in present and (d.startswith("train") or other in present):
            raise DataError(f"{dirs[d]}: no such folder{f' (but {other}/ exists)' if other in present else ''}; "
                            f"expected {_LAYOUT_U}")
    groups = {d: image_files(dirs[d]) for d in _UNALIGNED if d in present}
    images = _read_groups(path, groups)
    has_test = "testA" in present
    domains = {}
    for dom in "AB":
        train = images[f"train{dom}"]
        parts = _carve(len(train), ["val"] if has_test else ["val", "test"], dirs[f"train{dom}"])
        domains[dom] = {s: train[parts[s]] for s in parts}
        if has_test:
            domains[dom]["test"] = images[f"test{dom}"]
    for s in SPLITS:  # the larger domain keeps a seeded random subset, in file order
        n = min(len(domains["A"][s]), len(domains["B"][s]))
        for dom in "AB":
            x = domains[dom][s]
            if len(x) > n:
                keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SEED))[:n].sort().values
                domains[dom][s] = x[keep]
    tr = Translation(paired=False, source=domains["A"], domains=("A", "B"),
                     description="unpaired trainA/ -> trainB/ folders; T unknown; per-split sizes equalised")
    return Splits(_spec(path, domains["B"]["train"], "unaligned A/B images (CycleGAN)"), **domains["B"], translation=tr)
