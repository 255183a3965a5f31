"""Users' own data from disk: IDX (MNIST-style), .npy, .npz, .csv, folders of images.

``load_file(source)`` returns every example as float32 ``(N, *shape)`` and a
:class:`DataSpec`.  The format comes from a prefix (``idx:``, ``npy:``, ``npz:``,
``csv:``, ``images:``) or else from the path.  ``archive.npz:key`` picks one array.

Shapes: ``(N, D)`` -> vectors; ``(N, H, W)`` -> ``(N, 1, H, W)``; ``(N, C, H, W)``
with C in {1, 3} as is; ``(N, H, W, C)`` with C in {1, 3} -> NCHW.
Levels: uint8 -> 256; bool -> 2; other non-negative integer *images* -> max + 1;
everything else (floats, integer vectors, CSV) is continuous (None).
A CSV file with a header row names its features: the spec's ``features`` are the
header's names of the feature columns, in order (never the labels column).
Images from a folder have 256 levels.

Every failure is a one-line :class:`DataError` naming the file; pickled
content is refused, never unpickled.

Data larger than memory: a .npy file with at least ``DEEPGEN_MEMMAP_BYTES`` (64 MiB) of data is
memory-mapped, not read; ``load_file`` then returns a :class:`~deepgen.data.mapped.RowView` of its
rows (see :mod:`deepgen.data.mapped`), checked chunk by chunk, and the memory cap does not apply.

Class labels of a user's file are read by :mod:`deepgen.data.file_labels`, which
uses the readers here (``read_idx``, ``read_numpy``, ``read_csv``, ``image_files``).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import zlib
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from deepgen.data.paths import max_data_bytes, memmap_threshold
from deepgen.errors import DataError

if TYPE_CHECKING:  # (annotations only: this module imports no torch)
    import torch

    from deepgen.data.mapped import RowView
    from deepgen.data.spec import DataSpec

from deepgen.data.paths import EXPECTED as _EXPECTED, FORMATS, path_error as _err, split_source as _split_source
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_NPZ_KEYS = ("x", "data", "arr_0")

# IDX type code -> (big-endian numpy dtype, name)
_IDX_TYPES = {
    0x08: (">u1", "ubyte"),
    0x09: (">i1", "byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}


def _why(exc: BaseException) -> str:
    """First line of a library exception, for the one-line message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- sources


def _guess_format(path: str) -> str:
    """From the suffix (.npy .npz .csv; .gz .idx* -ubyte are IDX), else a directory is images."""
    name = os.path.basename(os.path.normpath(path)).lower()
    ext = os.path.splitext(name)[1]
    if ext in (".npy", ".npz", ".csv"):
        return ext[1:]
    if ext == ".gz" or ext.startswith(".idx") or name.endswith("-ubyte"):
        return "idx"
    if os.path.isdir(path):
        return "images"
    raise _err(path, f"cannot tell the format from the name; {_EXPECTED}, or prefix one of "
               + ", ".join(f"'{f}:'" for f in FORMATS))


def _check_count(path: str, count: int, shape, what: str = "header declares") -> None:
    """Refuse ``count`` elements (as float32) beyond :func:`max_data_bytes`, before any allocation."""
    need, cap = 4 * count, max_data_bytes()
    if need > cap:
        raise _err(path, f"{what} shape {tuple(shape)} = {count} values ({_gb(need)} as float32); expected at most "
                   f"{_gb(cap)} (half this machine's memory; DEEPGEN_MAX_DATA_BYTES changes it); refused before reading")


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def _open_checked(path: str):
    """Open a regular file for binary reading; a directory, a FIFO, a device or an OS error becomes a
    DataError (a FIFO or a terminal would block the read forever)."""
    if os.path.isdir(path):
        raise _err(path, "is a directory; expected a file (use 'images:' for a folder of images)")
    if os.path.exists(path) and not os.path.isfile(path):
        raise _err(path, "is not a regular file (a device, FIFO or socket); expected a data file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise _err(path, f"cannot open file ({_why(exc)})") from None


def _read_bytes(path: str) -> bytes:
    """All bytes of a file; OS errors become a DataError naming it."""
    with _open_checked(path) as f:
        try:
            return f.read()
        except OSError as exc:
            raise _err(path, f"cannot read file ({_why(exc)})") from None


# --------------------------------------------------------------------------- arrays


def _levels(a: np.ndarray, image: bool) -> int | None:
    """Discrete levels implied by dtype: bool 2, uint8 256, non-negative int images max+1."""
    if a.dtype.kind == "b":
        return 2
    if a.dtype.kind == "u" and a.dtype.itemsize == 1:
        return 256
    if a.dtype.kind in "iu" and image and a.min() >= 0:
        return max(int(a.max()) + 1, 2)
    return None


def _to_examples(a: np.ndarray, path: str) -> tuple[np.ndarray, int | None]:
    """Numeric array -> (examples in (N, D) or NCHW layout, levels)."""
    if a.dtype.kind not in "biuf" or a.dtype.names is not None:
        raise _err(path, f"array has dtype {a.dtype}; expected a numeric (bool, integer or float) array")
    if a.ndim == 0:
        raise _err(path, "holds a single number; expected an array of examples (N, ...)")
    if a.size == 0:
        raise _err(path, f"dataset is empty (array shape {a.shape}); expected at least one example")
    if a.ndim == 1:
        raise _err(path, f"1-D array of {len(a)} values; expected (N, D) vectors or (N, H, W[, C]) images "
                   "(reshape to (N, 1) for scalars)")
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3):
        if a.shape[3] not in (1, 3):
            raise _err(path, f"4-D array of shape {a.shape}; expected (N, C, H, W) or (N, H, W, C) with C = 1 or 3")
        a = a.transpose(0, 3, 1, 2)
    elif a.ndim > 4:
        raise _err(path, f"{a.ndim}-D array of shape {a.shape}; expected (N, D), (N, H, W) or 4-D images")
    return a, _levels(a, image=a.ndim == 4)


def finish(a: np.ndarray, levels: int | None, path: str, fmt: str, classes: tuple[str, ...] = (),
           features: tuple[str, ...] | None = None) -> tuple[torch.Tensor | RowView, DataSpec]:
    """float32 tensor + spec, checked by :func:`validate_array`; ``classes`` goes into the description,
    ``features`` (a table's column names, or None) into the spec.  A memory-mapped array (a large .npy
    file, see :mod:`deepgen.data.mapped`) stays on disk: a :class:`RowView` of all its rows, checked chunk by chunk."""
    import torch  # (the readers of this module import no torch: a file is parsed, and refused, before torch loads)

    from deepgen.data.labels import label_summary
    from deepgen.data.mapped import RowView
    from deepgen.data.spec import DataSpec, validate_array

    name = os.path.basename(os.path.normpath(path))
    if isinstance(a, np.memmap):
        x = RowView(a, name=name)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # float64 overflow -> inf, caught below
            x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    shape = tuple(x.shape[1:])
    desc = (f"{fmt} from {name}: N={len(x)}, shape {shape}, "
            + (f"{levels} levels (0..{levels - 1})" if levels else "continuous")
            + (f"; {label_summary(classes)}" if classes else ""))
    spec = DataSpec(name=name, shape=shape, levels=levels, description=desc, features=features)
    return validate_array(x, spec, path), spec


# --------------------------------------------------------------------------- formats


def read_idx(path: str) -> tuple[np.ndarray, str]:
    """An IDX file (gzipped or not) as an array of its header's shape, and a description.

    The header is read first; a shape whose data would not fit (see :func:`max_data_bytes`) or does not
    match the file's size is refused before the data are read, and a gzip stream is decompressed only
    up to the size the header declares (a gzip bomb stops there)."""
    with _open_checked(path) as f:
        try:
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                return _read_idx_stream(path, gzip.GzipFile(fileobj=f, mode="rb"), None, "gzipped IDX")
            return _read_idx_stream(path, f, os.fstat(f.fileno()).st_size, "IDX")
        except (OSError, EOFError, zlib.error) as exc:
            raise _err(path, f"corrupt or truncated gzip data ({_why(exc)}); expected a gzipped IDX file") from None


def _read_exactly(stream, n: int) -> bytes:
    """Up to ``n`` bytes of ``stream`` (fewer only at its end), read in blocks of at most 16 MiB."""
    parts, left = [], n
    while left > 0:
        block = stream.read(min(left, 16 << 20))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def _read_idx_stream(path: str, stream, size: int | None, fmt: str) -> tuple[np.ndarray, str]:
    """Header, checks, then exactly the declared data; ``size`` is the file's (None for a gzip stream)."""
    head = _read_exactly(stream, 4)
    if len(head) < 4:
        raise _err(path, f"file is truncated ({len(head)} bytes); expected an IDX header of at least 4 bytes")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES or head[3] == 0:
        raise _err(path, f"wrong IDX magic number 0x{head.hex()}; expected 0x0000 then a type code "
                   "(08 ubyte, 09 byte, 0B short, 0C int, 0D float, 0E double) and the number of dims")
    dtype, tname = _IDX_TYPES[head[2]]
    ndim, header = head[3], 4 + 4 * head[3]
    dim_bytes = _read_exactly(stream, 4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise _err(path, f"file is truncated ({4 + len(dim_bytes)} bytes); expected a {header}-byte IDX header")
    dims = tuple(int(d) for d in np.frombuffer(dim_bytes, ">u4", ndim))
    count = math.prod(dims)
    expected = header + count * np.dtype(dtype).itemsize
    if size is not None and size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise _err(path, f"file is {what}: {size} bytes, expected {expected} for {tname} data of shape {dims}")
    _check_count(path, count, dims, what=f"IDX header declares {tname} data of")
    data = _read_exactly(stream, expected - header + 1)  # one byte more tells a longer stream
    got = header + len(data)
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise _err(path, f"{fmt} data are {what}: {'at least ' if got > expected else ''}{got} bytes, expected "
                   f"{expected} for {tname} data of shape {dims}")
    return np.frombuffer(data, dtype, count).reshape(dims), f"{fmt} {tname}"


def _load_idx(path: str, key: str | None) -> tuple[np.ndarray, str]:
    """An IDX file of examples (not a 1-D label file)."""
    a, desc = read_idx(path)
    if a.ndim == 1:
        raise _err(path, f"this is an IDX label file (1-D, {len(a)} {desc.split()[-1]} values); "
                   "expected an IDX file of images (N, H, W) or vectors (N, D)")
    return a, desc


def _load_numpy(path: str, key: str | None) -> tuple[np.ndarray, str]:
    """.npy array (memory-mapped when large) or one array of an .npz archive (by magic bytes); never unpickles."""
    return read_numpy(path, key, _npz_member, mappable=True)


def read_numpy(path: str, key: str | None, member: Callable, mappable: bool = False) -> tuple[np.ndarray, str]:
    """Open a .npy / .npz file (by magic bytes) without unpickling; returns (array, "npy" | "npz").

    For an archive, ``member(archive, path, key)`` picks the array (raising DataError if it can't).
    ``mappable``: a .npy file of at least :func:`~deepgen.data.paths.memmap_threshold` bytes of data comes
    back as a read-only ``np.memmap`` (not read, and not held to :func:`max_data_bytes`).
    """
    with _open_checked(path) as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        kind = "npy"
    elif magic[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        kind = "npz"
    else:
        raise _err(path, f"not a .npy or .npz file (starts with {magic!r}); expected NumPy's .npy / .npz format")
    if kind == "npy" and key is not None:
        raise _err(path, f"is a .npy file, which has no key '{key}'")
    mapped = False
    if kind == "npy":
        with _open_checked(path) as f:
            mapped = _check_npy_header(path, f, os.fstat(f.fileno()).st_size, mappable=mappable)
    else:
        _check_npz_members(path)
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if mapped else None)
        if kind == "npy":
            return loaded, kind
        with loaded:
            return member(loaded, path, key), kind
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _err(path, "contains pickled Python objects, which are never loaded; "
                       "expected a numeric array") from None
        raise _err(path, f"unreadable {kind} file ({_why(exc)}); expected a valid .{kind} file") from None
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds on corrupt input
        raise _err(path, f"unreadable or truncated {kind} file ({_why(exc)}); expected a valid .{kind} file") from None


def _check_npy_header(path: str, f, size: int, where: str = "", mappable: bool = False) -> bool:
    """Check a .npy header against the bytes that follow it (``size`` in all) and the memory cap, before
    NumPy allocates the array; an object dtype (pickled content) is refused here.  Returns True when the
    array is to be memory-mapped (``mappable`` and at least :func:`memmap_threshold` bytes of data); the
    memory cap does not apply to it then."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=1 << 16)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=1 << 16)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, ... on a corrupt header
        raise _err(path, f"{where}corrupt or truncated .npy header ({_why(exc)}); expected NumPy's .npy format") from None
    if dtype.hasobject:
        raise _err(path, f"{where}contains pickled Python objects (dtype {dtype}), which are never loaded; "
                   "expected a numeric array")
    count = math.prod(shape)
    need = count * dtype.itemsize
    left = size - f.tell()
    if need > left:
        raise _err(path, f"{where}data are truncated: the header declares shape {shape} of {dtype} "
                   f"({need} bytes), the file holds {max(left, 0)}; expected a complete .npy file")
    if mappable and 0 < need and need >= memmap_threshold():
        return True
    _check_count(path, count, shape, what=f"{where}header declares")
    return False


def _check_npz_members(path: str) -> None:
    """Every .npy member of an archive: header checked against the member's size (see :func:`_check_npy_header`;
    pickled members are left to ``np.load``, which refuses them when asked for)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as m:
                    try:
                        _check_npy_header(path, m, info.file_size, where=f"member '{info.filename}': ")
                    except DataError as exc:
                        if "pickled" in str(exc):
                            continue
                        raise
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile raises BadZipFile, OSError, EOFError, zlib.error, ...
        raise _err(path, f"unreadable or truncated npz file ({_why(exc)}); expected a valid .npz file") from None


def _npz_member(z, path: str, key: str | None) -> np.ndarray:
    """The data array of an archive: ``key``, else the only array, else 'x' / 'data' / 'arr_0'."""
    return z[npz_data_key(list(z.files), path, key)]


def npz_data_key(keys: list[str], path: str, key: str | None) -> str:
    """Which key of an archive holds the data (see :func:`_npz_member`)."""
    if key is None:
        if not keys:
            raise _err(path, "npz archive holds no arrays; expected one under key 'x', 'data' or 'arr_0'")
        found = [k for k in _NPZ_KEYS if k in keys]
        if len(keys) == 1:
            key = keys[0]
        elif found:
            key = found[0]
        else:
            raise _err(path, f"npz archive has keys {keys}; expected one array or a key 'x', 'data' or "
                       "'arr_0' (or pick one with 'file.npz:key')")
    elif key not in keys:
        raise _err(path, f"npz archive has no key '{key}'; keys are {keys}")
    return key


class CsvTable(NamedTuple):
    """A CSV table: numeric features (N, D) float64 and, if a labels column was taken out, its cells.

    ``names`` are the header's names of the feature columns, or None without a header row."""

    features: np.ndarray
    label_cells: list[str] | None
    label_column: str  # "column 'name'" or "column K" (0-based), for messages
    lines: list[int]  # line number of each data row
    names: tuple[str, ...] | None = None


def _csv_rows(path: str) -> tuple[list[list[str]], list[int]]:
    """Non-blank rows of a UTF-8 CSV file as stripped cells, with their line numbers."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _err(path, f"not a UTF-8 text file (byte {exc.start}); expected a comma-separated numeric table") from None
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    try:
        for row in reader:
            if row and any(c.strip() for c in row):
                rows.append([c.strip() for c in row])
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise _err(path, f"line {reader.line_num}: malformed CSV ({exc}); expected a comma-separated numeric table") from None
    return rows, lines


def _csv_label_column(path: str, first: list[str], label: str) -> tuple[int, bool]:
    """Index of the labels column ``label`` (a header name or ``col:K``) and whether ``first`` is a header."""
    if label.startswith("col:"):
        try:
            k = int(label[4:])
        except ValueError:
            raise _err(path, f"labels '{label}' is not a column index; "
                       "expected col:K with K a 0-based integer") from None
        if not 0 <= k < len(first):
            raise _err(path, f"labels '{label}' is out of range: the table has {len(first)} columns; "
                       f"expected col:K with K in 0..{len(first) - 1}")
        return k, any(not _is_number(c) for i, c in enumerate(first) if i != k)
    if label in first:
        return first.index(label), True
    if all(_is_number(c) for c in first):
        raise _err(path, f"labels column '{label}': the table has no header row; "
                   "expected col:K (0-based column index) for a table without header")
    raise _err(path, f"no labels column '{label}' in the header row (columns: {', '.join(first)}); "
               "expected a column name or col:K")


def read_csv(path: str, label: str | None = None) -> CsvTable:
    """A numeric table with an optional header row; ``label`` (name or ``col:K``) takes out a labels column.

    Without ``label`` the first row is a header when any cell is not a number; with
    ``col:K``, when any cell outside column K is not a number; with a name, it must be.
    """
    rows, lines = _csv_rows(path)
    if not rows:
        raise _err(path, "dataset is empty (no data rows); expected a numeric table with at least one row")
    width = len(rows[0])
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise _err(path, f"line {line} has {len(row)} fields; expected {width} like the first row")
    if label is None:
        col, header = None, not all(_is_number(c) for c in rows[0])
    else:
        col, header = _csv_label_column(path, rows[0], label)
    names = rows[0] if header else None
    if header:
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise _err(path, "dataset is empty (no data rows); expected a numeric table with at least one row")
    keep = [i for i in range(width) if i != col]
    if not keep:
        raise _err(path, f"labels '{label}' is the only column; expected at least one feature column besides it")
    table = rows if col is None else [[row[i] for i in keep] for row in rows]
    try:
        features = np.array(table, dtype=np.float64)
    except ValueError:
        for row, line in zip(rows, lines):
            for i in keep:
                if not _is_number(row[i]):
                    raise _err(path, f"line {line}, column {i + 1}: '{row[i][:40]}' is not a number; "
                               "expected numeric cells") from None
        raise _err(path, "could not parse the table as numbers; expected numeric cells") from None
    feature_names = None if names is None else tuple(names[i] for i in keep)
    if col is None:
        return CsvTable(features, None, "", lines, feature_names)
    where = f"column '{names[col]}'" if names else f"column {col}"
    return CsvTable(features, [row[col] for row in rows], where, lines, feature_names)


def _is_number(cell: str) -> bool:
    """True when ``cell`` parses as a float."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def image_files(path: str) -> list[str]:
    """Every image file under a folder (recursive), sorted by path."""
    if not os.path.isdir(path):
        raise _err(path, "is not a directory; expected a folder of .png / .jpg / .jpeg / .bmp images")
    files = sorted(
        os.path.join(root, f)
        for root, _, names in os.walk(path)
        for f in names
        if f.lower().endswith(IMAGE_SUFFIXES)
    )
    if not files:
        raise _err(path, f"dataset is empty: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    root = os.path.realpath(path)
    for f in files:
        if os.path.islink(f):
            target = os.path.realpath(f)
            if os.path.commonpath([root, target]) != root:
                raise _err(f, f"is a symbolic link to {target}, outside the folder {path}; expected the images "
                           "inside the folder (copy the file in, or load the folder it points to)")
        if not os.path.isfile(f):
            raise _err(f, "is not a regular file (a device, FIFO, socket or broken link); expected an image file")
    return files


def read_images(path: str, files: list[str]) -> np.ndarray:
    """Images ``files`` (all the same size) of folder ``path`` as (N, H, W, C) uint8."""
    from PIL import Image

    arrays, size0 = [], None
    for f in files:
        try:
            with Image.open(f) as im:
                pixels = im.size[0] * im.size[1]
                if pixels > (Image.MAX_IMAGE_PIXELS or 1 << 62):
                    raise _err(f, f"image header declares {im.size[0]}x{im.size[1]} (WxH) = {pixels} pixels; "
                               f"expected at most {Image.MAX_IMAGE_PIXELS} (refused before decoding)")
                _check_count(f, pixels * 3 * len(files), (len(files), 3, im.size[1], im.size[0]),
                             what=f"{len(files)} images of this size make")
                if size0 is not None and im.size != size0:
                    raise _err(f, f"image is {im.size[0]}x{im.size[1]} (WxH); expected {size0[0]}x{size0[1]} "
                               f"like {os.path.relpath(files[0], path)} (all images must have the same size)")
                size0 = size0 or im.size
                im = im.convert("L" if im.mode in ("L", "1") else "RGB")
                arrays.append(np.asarray(im, dtype=np.uint8))
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt input
            raise _err(f, f"cannot read image ({_why(exc)}); expected a valid PNG, JPEG or BMP file") from None
    if any(a.ndim == 3 for a in arrays):  # mixed grey / colour: grey -> RGB
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    else:
        arrays = [a[..., None] for a in arrays]
    return np.stack(arrays)


def _load_images(path: str, key: str | None) -> tuple[np.ndarray, str]:
    """All images under a folder (recursive, sorted by path) as (N, H, W, C) uint8."""
    return read_images(path, image_files(path)), "images"


_LOADERS: dict[str, Callable[[str, str | None], tuple[np.ndarray, str]]] = {
    "idx": _load_idx,
    "npy": _load_numpy,
    "npz": _load_numpy,
    "images": _load_images,
}


def resolve_source(source: str) -> tuple[str, str, str | None]:
    """``[fmt:]path[:key]`` -> (format, path, npz key or None); the path must exist."""
    if "\0" in source:
        raise _err(source.replace("\0", "\\0"), "contains a NUL byte; expected a file path")
    fmt, path, key = _split_source(source)
    if not os.path.exists(path):
        raise _err(path, f"no such file or directory; {_EXPECTED}")
    return fmt or _guess_format(path), path, key


def read_examples(fmt: str, path: str, key: str | None) -> tuple[np.ndarray, int | None, str, tuple[str, ...] | None]:
    """The examples of a resolved source in (N, D) or NCHW layout, their levels, a format description
    and the feature names (a CSV header's; None otherwise)."""
    if fmt == "csv":
        table = read_csv(path)
        return table.features, None, "csv", table.names
    a, fmt_desc = _LOADERS[fmt](path, key)
    if fmt == "images":
        return a.transpose(0, 3, 1, 2), 256, fmt_desc, None
    a, levels = _to_examples(a, path)
    return a, levels, fmt_desc, None


def load_file(path: str) -> tuple[torch.Tensor, DataSpec]:
    """All examples of a user's file or folder as float32 (N, *shape), and its spec (no labels).

    ``path`` is ``[idx:|npy:|npz:|csv:|images:]path`` or ``archive.npz:key``.  For the
    class labels too, see :func:`deepgen.data.file_labels.load_labelled_file`.
    """
    fmt, path, key = resolve_source(path)
    a, levels, fmt_desc, features = read_examples(fmt, path, key)
    return finish(a, levels, path, fmt_desc, features=features)
