"""Where a user's data are, read from the ``--data`` string alone: ``[fmt:]path[:key]``.

Imports no torch, so the CLI checks that a file exists before anything heavy loads (a typo in a path
is answered at once).  :mod:`deepgen.data.files` reads the data.
"""

from __future__ import annotations

import os

from deepgen.errors import DataError

FORMATS = ("idx", "npy", "npz", "csv", "images")
EXPECTED = "expected a .npy, .npz, .csv, IDX file (.gz, -ubyte, .idx*) or a folder of images"
FILE_PREFIXES = tuple(f"{f}:" for f in FORMATS) + ("aligned:", "unaligned:")
UNALIGNED = ("trainA", "trainB", "testA", "testB")  # CycleGAN's folders (deepgen.data.translation_files)
MEMMAP_BYTES = 64 << 20  # default threshold of the memory-mapped path (DEEPGEN_MEMMAP_BYTES overrides)


def path_error(path: str, what: str) -> DataError:
    """The one-line error ``"<path>: <what>"``."""
    return DataError(f"{path}: {what}")


def is_file_source(name: str) -> bool:
    """True when ``name`` is a path or has a format prefix (``idx:``, ``npy:``, ..., ``aligned:``, ``unaligned:``)."""
    return name.startswith(FILE_PREFIXES) or os.path.sep in name or os.path.exists(name)


def is_translation_source(source: str) -> bool:
    """``aligned:PATH`` / ``unaligned:PATH``, or a folder holding ``trainA/`` or ``trainB/``: translation data
    (read by :mod:`deepgen.data.translation_files`, not as one dataset)."""
    if source.startswith(("aligned:", "unaligned:")):
        return True
    return os.path.isdir(source) and any(os.path.isdir(os.path.join(source, d)) for d in UNALIGNED[:2])


def split_source(source: str) -> tuple[str | None, str, str | None]:
    """``[fmt:]path[:key]`` -> (fmt or None, path, npz key or None)."""
    fmt = None
    head, sep, rest = source.partition(":")
    if sep and head in FORMATS:
        fmt, source = head, rest
    key = None
    if not os.path.exists(source):
        base, sep, k = source.rpartition(":")
        if sep and k and base.lower().endswith(".npz") and os.path.isfile(base):
            source, key = base, k
            if fmt not in (None, "npz"):
                raise path_error(source, f"an array key ':{k}' needs the npz format, not '{fmt}'")
            fmt = "npz"
    return fmt, source, key


def check_exists(source: str) -> None:
    """A user's file or folder named by ``source`` must exist (translation folders are checked when read)."""
    if not is_file_source(source) or source.startswith(("aligned:", "unaligned:")):
        return
    if "\0" in source:
        raise path_error(source.replace("\0", "\\0"), "contains a NUL byte; expected a file path")
    _, path, _ = split_source(source)
    if not os.path.exists(path):
        raise path_error(path, f"no such file or directory; {EXPECTED}")


def max_data_bytes() -> int:
    """The most bytes a loaded dataset may take as float32: half this machine's memory (``DEEPGEN_MAX_DATA_BYTES``
    overrides).  A header declaring more is refused before anything is allocated."""
    env = os.environ.get("DEEPGEN_MAX_DATA_BYTES", "").strip()
    if env.isdigit():
        return int(env)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, OSError, ValueError):  # no sysconf: 8 GiB
        return 8 << 30


def memmap_threshold() -> int:
    """A .npy file whose data take at least this many bytes is memory-mapped (``DEEPGEN_MEMMAP_BYTES``, default
    64 MiB; 0 maps every .npy file: see :mod:`deepgen.data.mapped`)."""
    env = os.environ.get("DEEPGEN_MEMMAP_BYTES", "").strip()
    return int(env) if env.isdigit() else MEMMAP_BYTES
