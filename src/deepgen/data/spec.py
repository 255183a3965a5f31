"""What a dataset is: its per-example shape, its discrete levels, its splits.

Units.  A dataset with ``levels = L`` holds integers ``k`` in ``{0, ..., L-1}``
(stored as float32).  Every model's ``log_prob`` on such data is the log of a
*discrete* probability P(k) (exact, estimated or bounded), so that

    bits/dim = -log P(k) / (D * ln 2),      D = prod(shape)

is comparable across families.  Continuous models reach it by uniform
dequantization (see :mod:`deepgen.data.dequantize`).  A dataset with
``levels = None`` is continuous; its NLL is in nats of the data's own units,
and bits/dim is the same figure divided by D ln 2 (a differential entropy,
which may be negative).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from deepgen.data.labels import LABEL_SOURCES, check_labels
from deepgen.data.mapped import RowView, row_chunks
from deepgen.errors import DataError


@dataclass(frozen=True)
class DataSpec:
    """Shape and scale of one example.

    ``shape``: per-example shape, ``(D,)`` for vectors, ``(C, H, W)`` for images.
    ``levels``: number of discrete values per dimension, or None if continuous.
    ``description``: one line on where the data come from and their scale.
    ``features``: names of the D features of vector data (e.g. a CSV file's header), or None
    when the data do not name them (see :attr:`feature_names`).
    """

    name: str
    shape: tuple[int, ...]
    levels: int | None = None
    description: str = ""
    features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Store ``features`` as a tuple of strings, one per dimension of a vector."""
        if self.features is None:
            return
        names = tuple(str(f) for f in self.features)
        if len(self.shape) != 1 or len(names) != self.shape[0]:
            raise DataError(f"data spec '{self.name}': {len(names)} feature names for examples of shape "
                            f"{tuple(self.shape)}; expected one name per feature of a vector")
        object.__setattr__(self, "features", names)

    @property
    def dim(self) -> int:
        """Number of dimensions D = prod(shape)."""
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) examples."""
        return len(self.shape) == 3

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per dimension of the flattened example: ``features`` if known, else x0 .. x{D-1}."""
        return self.features if self.features is not None else tuple(f"x{i}" for i in range(self.dim))

    @property
    def is_discrete(self) -> bool:
        """True when the data have a finite number of levels."""
        return self.levels is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for config.yaml); ``features`` only when the data name them."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        if self.features is None:
            del d["features"]
        else:
            d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSpec":
        """Inverse of :meth:`to_dict` (a dict without ``features`` gives None); a malformed dict is a DataError."""
        try:
            features = d.get("features")
            if features is not None and (isinstance(features, str) or not isinstance(features, (list, tuple))):
                raise TypeError(f"features must be a list of names, got {features!r}")
            return cls(
                name=str(d["name"]),
                shape=tuple(int(s) for s in d["shape"]),
                levels=None if d.get("levels") is None else int(d["levels"]),
                description=str(d.get("description", "")),
                features=None if features is None else tuple(features),
            )
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"data spec {d!r} is malformed: expected name, shape, levels, optional features "
                            f"({exc})") from None

    def bits_per_dim(self, nll_nats: float) -> float:
        """bits/dim = NLL[nats per example] / (D ln 2)."""
        return nll_nats / (self.dim * math.log(2))


SPLITS = ("train", "val", "test")


@dataclass
class Translation:
    """Domain A of a translation task A -> B; the :class:`Splits`' train/val/test tensors hold domain B.

    ``paired``: True when row i of ``source[split]`` is the A partner of row i of that split of B
    (pix2pix); False when rows carry no correspondence and the order of A is arbitrary (CycleGAN).
    ``source``: split -> (N_split, *spec.shape) float32 domain-A examples on the same :class:`DataSpec`
    as B (same shape, levels and scale), one per row of B's split.
    ``truth``: split -> T(source[split]) when the map T is known (built-in tasks; for paired data, B itself);
    ``{}`` for users' unpaired folders.
    ``source_labels``: split -> class ids (int64) of the A rows, when known; the Splits' ``labels`` stay
    those of the B rows and both use the Splits' ``classes`` (so label preservation ``y(T(a)) == y(a)``
    can be measured against ``truth``).
    ``domains``: the names of A and B (e.g. ``("edges", "digits")``); ``description``: what T is, one line.
    """

    paired: bool
    source: dict[str, torch.Tensor]
    truth: dict[str, torch.Tensor] = field(default_factory=dict)
    source_labels: dict[str, torch.Tensor] = field(default_factory=dict)
    domains: tuple[str, str] = ("A", "B")
    description: str = ""

    def check(self, splits: "Splits") -> None:
        """Sizes, shapes, dtypes and scale against the B splits of ``splits`` (a one-line DataError if not)."""
        name, spec = splits.spec.name, splits.spec
        self.domains = tuple(str(d) for d in self.domains)
        if len(self.domains) != 2:
            raise DataError(f"dataset '{name}': translation domains {self.domains}; expected two names (A, B)")
        if not isinstance(self.paired, bool):
            raise DataError(f"dataset '{name}': translation paired={self.paired!r}; expected True or False")
        if set(self.source) != set(SPLITS):
            raise DataError(f"dataset '{name}': domain A has splits {sorted(self.source)}; expected train, val, test")
        sizes = splits.sizes()
        for what, tensors in (("domain A", self.source), ("translation truth", self.truth)):
            for split, a in tensors.items():
                where = f"dataset '{name}': {what} ({split})"
                if split not in sizes:
                    raise DataError(f"{where}: unknown split; expected train, val or test")
                b = splits.split(split)
                if not isinstance(a, torch.Tensor) or a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
                    got = f"{a.dtype} {tuple(a.shape)}" if isinstance(a, torch.Tensor) else type(a).__name__
                    raise DataError(f"{where}: examples are {got}; expected {b.dtype} {tuple(b.shape)} like domain B")
                validate_array(a, spec, where)
        check_labels(self.source_labels, splits.classes, sizes, f"{name} (domain A)")


@dataclass
class Splits:
    """Fixed train / val / test tensors of one dataset, all of shape (N, *spec.shape).

    A large .npy file's splits are :class:`~deepgen.data.mapped.RowView` s instead: its rows on disk,
    read on demand (``x[rows]``, ``x[i:j]``, ``len(x)``, ``x.shape``) as float32 tensors.

    ``labels`` maps a split to its class ids (int64, shape (N,), values in
    ``0..K-1``) and ``classes`` holds the K class names (index = label id);
    both are empty for a dataset without labels.  ``factors`` maps a split to known generative
    factors (int64 indices, shape (N, F); synthetic data such as ``blobs``) named by ``factor_names``.
    ``translation`` holds domain A of a translation task (the splits themselves are domain B), or None.
    """

    spec: DataSpec
    train: torch.Tensor | RowView
    val: torch.Tensor | RowView
    test: torch.Tensor | RowView
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    factors: dict[str, torch.Tensor] = field(default_factory=dict)
    factor_names: tuple[str, ...] = ()
    translation: Translation | None = None

    def __post_init__(self) -> None:
        """Check the labels (int64 ids in 0..K-1, one per example) and domain A of a translation task."""
        self.classes = tuple(str(c) for c in self.classes)
        check_labels(self.labels, self.classes, self.sizes(), self.spec.name)
        if self.translation is not None:
            self.translation.check(self)

    def split(self, name: str) -> torch.Tensor | RowView:
        """The examples of split ``name`` (train, val or test)."""
        if name not in SPLITS:
            raise DataError(f"unknown split '{name}': expected train, val or test")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    @property
    def has_labels(self) -> bool:
        """True when every split has class labels (and the class names are known)."""
        return bool(self.classes) and all(s in self.labels for s in SPLITS)

    @property
    def num_classes(self) -> int:
        """Number of classes K (0 for a dataset without labels)."""
        return len(self.classes)

    def split_labels(self, name: str) -> torch.Tensor:
        """Class ids (int64, shape (N,)) of split ``name``; DataError if the dataset has none."""
        self.split(name)  # checks the split name
        if not self.classes or name not in self.labels:
            raise DataError(
                f"dataset '{self.spec.name}' has no class labels ({name} split); expected a labelled built-in "
                f"dataset (e.g. digits, moons) or your own data loaded with labels=...: "
                + ", ".join(LABEL_SOURCES)
            )
        return self.labels[name]

    def class_counts(self) -> torch.Tensor:
        """Examples per class in the train split (int64, length num_classes)."""
        return torch.bincount(self.split_labels("train"), minlength=self.num_classes)


def validate_array(x, spec: DataSpec, source: str):
    """Check one split: non-empty, finite, right shape, values on the spec's scale.  Returns a float32
    tensor, or the same :class:`~deepgen.data.mapped.RowView` (checked chunk by chunk, never held whole)."""
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{source}: dataset is empty (expected at least one example)")
    if tuple(x.shape[1:]) != tuple(spec.shape):
        raise DataError(f"{source}: examples have shape {tuple(x.shape[1:])}, expected {tuple(spec.shape)}")
    integers, lo, hi = True, math.inf, -math.inf
    for start, chunk in row_chunks(x):
        if not torch.isfinite(chunk).all():
            bad = start + (~torch.isfinite(chunk)).reshape(len(chunk), -1).any(1).nonzero()[0].item()
            raise DataError(f"{source}: contains NaN or infinite values (first at example {bad})")
        if spec.levels is not None:
            integers = integers and not bool((chunk != chunk.round()).any())
            lo, hi = min(lo, chunk.min().item()), max(hi, chunk.max().item())
    if spec.levels is not None and (not integers or lo < 0 or hi > spec.levels - 1):
        raise DataError(
            f"{source}: expected integers in [0, {spec.levels - 1}] for {spec.levels} levels, "
            f"got values in [{lo:g}, {hi:g}]"
        )
    return x if isinstance(x, RowView) else x.float()


def split_fixed(x: torch.Tensor, fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Split rows of ``x`` into train/val/test with a seeded permutation (same every run): three index tensors.

    For a memory-mapped ``x`` (:class:`~deepgen.data.mapped.RowView`) the permutation is held as int32 while
    the rows allow (half the memory; torch draws the same permutation in either dtype)."""
    n = len(x)
    g = torch.Generator().manual_seed(seed)
    small = isinstance(x, RowView) and n <= torch.iinfo(torch.int32).max
    perm = torch.randperm(n, generator=g, dtype=torch.int32 if small else torch.int64)
    n_val = max(1, int(round(fractions[1] * n))) if n >= 3 else 0
    n_test = max(1, int(round(fractions[2] * n))) if n >= 3 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(f"dataset has {n} examples; need at least 3 to make train/val/test splits")
    idx = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return idx
