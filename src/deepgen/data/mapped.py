"""Data larger than memory: a large .npy file read through a memory map, rows on demand.

A .npy file whose data take at least :func:`memmap_threshold` bytes (64 MiB unless
``DEEPGEN_MEMMAP_BYTES`` says otherwise; ``0`` maps every .npy file) is opened with
``np.load(path, mmap_mode="r")`` instead of being read (pickles are still refused, see
:mod:`deepgen.data.files`).  Each split is then a :class:`RowView`: the memory map and the
split's row numbers (int32 while they fit), never a copy of the data.  Its rows are the rows the
in-memory path would hold, in the same order (the same seeded permutation, see
:func:`deepgen.data.spec.split_fixed`), so a run gives the same figures on either path.

A RowView reads only what it is asked for, as a contiguous float32 tensor:

    len(v), v.shape, v.dtype (float32), v.ndim, v.size(d)      no reading
    v[i], v[i:j], v[LongTensor], v[bool mask], v[rows, cols]     those rows only
    v.rows(p)                                                    a RowView of rows p (no reading)
    row_chunks(v)                                                the whole split, a chunk at a time

Anything else a tensor can do (``v.mean(0)``, ``torch.cat([v, ...])``, ``v.float()``) works too,
on the split gathered into memory first (:meth:`RowView.gather`): exact tensor semantics, at the
in-memory path's cost, and refused with a one-line DataError when the split would take more than
:func:`max_data_bytes`.  Code meant for data of any size uses the cheap calls above, and
:func:`data_moments` / :func:`row_chunks` / :func:`take_rows`, which take tensors and RowViews alike.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from deepgen.data.paths import max_data_bytes
from deepgen.errors import DataError
CHUNK_BYTES = 4 << 20  # float32 bytes per chunk of a whole-split pass (validation, statistics)


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def _positions(key, n: int) -> np.ndarray | slice:
    """Row positions ``key`` (a slice, or ints / a bool mask as a tensor, array or list) of a view of n rows,
    as a slice or an integer array (not copied where it can be) with negative positions resolved; IndexError
    outside -n..n-1 as torch."""
    if isinstance(key, slice):
        return slice(*key.indices(n))
    if isinstance(key, torch.Tensor):
        key = key.detach().cpu().numpy()
    p = np.asarray(key)
    if p.dtype == bool:
        if p.shape != (n,):
            raise IndexError(f"a boolean mask of shape {p.shape} for {n} rows; expected shape ({n},)")
        return np.flatnonzero(p)
    if p.dtype.kind not in "iu" and p.size:
        raise IndexError(f"rows must be indexed by integers, slices or a boolean mask, got dtype {p.dtype}")
    p = p.reshape(-1) if p.size else p.astype(np.int64).reshape(-1)
    if p.size:
        lo, hi = p.min(), p.max()
        if lo < -n or hi >= n:
            bad = int(p[(p < -n) | (p >= n)][0])
            raise IndexError(f"index {bad} is out of bounds for {n} rows")
        if lo < 0:
            p = np.where(p < 0, p + n, p)
    return p


def _index_dtype(n: int):
    """The smallest integer type for row numbers below n: int32 halves the memory of int64."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def _materialize(obj, why: str):
    """``obj`` with every RowView in it (nested in lists, tuples, dicts) gathered into a tensor."""
    if isinstance(obj, RowView):
        return obj.gather(why)
    if type(obj) in (list, tuple):
        return type(obj)(_materialize(o, why) for o in obj)
    if isinstance(obj, dict):
        return {k: _materialize(v, why) for k, v in obj.items()}
    return obj


class RowView:
    """Rows ``index`` (None: all, in order) of an array ``(N, *shape)`` (a memory map), read on demand as float32.

    ``name`` says what the rows are (e.g. ``"big.npy (train split)"``) in messages.
    """

    def __init__(self, array: np.ndarray, index: np.ndarray | None = None, name: str = "data"):
        self.array = array
        self.index = None if index is None else np.asarray(index, dtype=_index_dtype(len(array)))
        self.name = name

    # --- what a tensor says about itself (nothing read) -------------------------------------------
    def __len__(self) -> int:
        return len(self.array) if self.index is None else len(self.index)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.array.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    is_cuda = False
    requires_grad = False

    def is_floating_point(self) -> bool:
        return True

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as float32."""
        return 4 * math.prod(self.array.shape[1:])

    def __repr__(self) -> str:
        return f"RowView({self.name}: {len(self)} rows of shape {tuple(self.array.shape[1:])}, {self.array.dtype})"

    # --- rows --------------------------------------------------------------------------------------
    def rows(self, key, name: str | None = None) -> "RowView":
        """The rows ``key`` (positions in this view: slice, ints, bool mask) as a RowView (called ``name``, by
        default this view's); nothing is read."""
        p = _positions(key, len(self))
        if isinstance(p, slice):
            r = range(len(self))[p]
            p = np.arange(r.start, r.stop, r.step, dtype=_index_dtype(len(self.array)))
        return RowView(self.array, p if self.index is None else self.index[p], name or self.name)

    def __getitem__(self, key) -> torch.Tensor:
        """``v[i]`` one row, ``v[i:j]``, ``v[ints]``, ``v[mask]`` those rows, ``v[rows, ...]`` then the rest of
        the key on them: a contiguous float32 tensor, as indexing the split's tensor would give."""
        if isinstance(key, tuple) and key and key[0] is not Ellipsis and key[0] is not None:
            return self[key[0]][(slice(None),) * (not _is_int(key[0])) + key[1:]].contiguous()
        if _is_int(key):
            n = len(self)
            if not -n <= int(key) < n:
                raise IndexError(f"index {int(key)} is out of bounds for {n} rows")
            return self.read(np.array([int(key) % n]))[0]
        if isinstance(key, (slice, list, np.ndarray, torch.Tensor)):
            return self.read(_positions(key, len(self)))
        return self.gather(f"indexing with {key!r}")[key]

    def read(self, positions: np.ndarray | slice, why: str = "") -> torch.Tensor:
        """Rows at ``positions`` (a slice or integer array of positions in this view) as a float32 tensor;
        ``why``: the operation that needs them all, for the message when they would not fit in memory."""
        count = len(range(len(self))[positions]) if isinstance(positions, slice) else len(positions)
        need, cap = count * self.row_bytes, max_data_bytes()
        if need > cap:
            doing = f"'{why}' needs all {count} rows in memory" if why else f"reading {count} rows at once"
            raise DataError(f"{self.name}: {doing}: {_gb(need)} as float32; expected at most {_gb(cap)} (half this "
                            "machine's memory; DEEPGEN_MAX_DATA_BYTES changes it); read it in batches")
        rows = positions if self.index is None else self.index[positions]
        part = self.array[rows]
        with np.errstate(over="ignore", invalid="ignore"):  # float64 overflow -> inf, as the in-memory path
            if isinstance(rows, slice):  # a view into the map: copy it out
                out = np.array(part, dtype=np.float32, order="C")
            else:  # fancy indexing already copied
                out = np.ascontiguousarray(part.view(np.ndarray), dtype=np.float32)
        return torch.from_numpy(out)

    def gather(self, why: str = "") -> torch.Tensor:
        """The whole view as one float32 tensor in memory (what the in-memory path would hold); ``why`` names
        the operation that needs it, in the one-line DataError when it would not fit."""
        return self.read(slice(0, len(self)), why)

    # --- everything else: on the gathered tensor ------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        why = getattr(func, "__name__", str(func))
        return func(*_materialize(args, why), **_materialize(kwargs or {}, why))

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("array", "index", "name"):
            raise AttributeError(name)
        return getattr(self.gather(name), name)

    def __array__(self, dtype=None, copy=None):
        a = self.gather("numpy").numpy()
        return a if dtype is None else a.astype(dtype, copy=False)


def _is_int(key) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool) or \
        isinstance(key, torch.Tensor) and key.ndim == 0 and not key.dtype.is_floating_point and key.dtype != torch.bool


def take_rows(x, rows, name: str | None = None):
    """Rows ``rows`` (a LongTensor of positions, or a bool mask) of a split: ``x[rows]`` for a tensor, a
    RowView of them (nothing read; called ``name`` if given) for a RowView."""
    return x.rows(rows, name) if isinstance(x, RowView) else x[rows]


def row_chunks(x, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, rows) over a whole split: a tensor in one piece, a RowView in float32 chunks of about
    ``chunk_bytes``."""
    if not isinstance(x, RowView):
        yield 0, x
        return
    step = max(1, min(chunk_bytes, max_data_bytes()) // max(x.row_bytes, 1))
    for start in range(0, len(x), step):
        yield start, x[start : start + step]


@torch.no_grad()
def data_moments(x, dims: tuple[int, ...], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (unbiased; NaN for a single example) of ``x`` over ``dims`` (0 for
    vectors, (0, 2, 3) for images), as the dtype and device of ``like``.

    A tensor: ``x.mean(dims)``, ``x.std(dims)`` in ``like``'s dtype.  A RowView: one pass over float32
    chunks, merged in float64 (Chan et al.'s pairwise update of count n, mean m and squared deviations M2:
    m = m_a + (m_b - m_a) n_b / n,  M2 = M2_a + M2_b + (m_b - m_a)^2 n_a n_b / n), so no split is held whole."""
    if not isinstance(x, RowView):
        x = x.to(like.device, like.dtype)
        return x.mean(dims), x.std(dims)
    n, mean, m2 = 0, 0.0, 0.0
    for _, chunk in row_chunks(x):
        c = chunk.double()
        nb = c.numel() // math.prod(c.shape[d] for d in range(c.ndim) if d not in dims)
        mb = c.mean(dims)
        m2b = c.sub_(mb.reshape([c.shape[d] if d not in dims else 1 for d in range(c.ndim)])).square_().sum(dims)
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta ** 2 * (n * nb / total)
        n = total
    std = (m2 / (n - 1)).sqrt() if n > 1 else torch.full_like(mean, math.nan)
    return mean.to(like.device, like.dtype), std.to(like.device, like.dtype)
