"""Where a run's data came from, recorded exactly: absolute paths and a content hash.

A user's source ``[fmt:]path[:key]`` is recorded as ``fmt:/absolute/path[:key]`` (format made
explicit, npz key kept), so ``score``/``sample`` find the same data from any working
directory; its SHA-256 (of the file, or of a folder's file names and bytes) tells whether the
data changed since training.  Translation folders are recorded as ``aligned:/absolute/path`` or
``unaligned:/absolute/path`` (also a plain path holding ``trainA/ trainB/``).  Built-in dataset names are kept as they are.
"""

from __future__ import annotations

import hashlib
import os

from deepgen.data.files import resolve_source
from deepgen.data.translation_files import translation_source


def is_builtin(name: str) -> bool:
    from deepgen.data import is_file_source

    return not is_file_source(name)


def canonical_source(source: str) -> str:
    """``fmt:/absolute/path[:key]`` for a user's file or folder; anything else (a built-in name) unchanged."""
    if is_builtin(source):
        return source
    translation = translation_source(source)
    if translation is not None:
        return f"{translation[0]}:{os.path.abspath(translation[1])}"
    fmt, path, key = resolve_source(source)
    return f"{fmt}:{os.path.abspath(path)}" + (f":{key}" if key else "")


def canonical_labels(labels: str | None) -> str | None:
    """A label source that is a path becomes absolute; a key, column or keyword stays as given."""
    if labels and os.path.exists(labels):
        return os.path.abspath(labels)
    return labels


def source_sha256(source: str) -> str | None:
    """SHA-256 of a user's data (a file's bytes; a folder's relative file names and bytes); None if built in."""
    if is_builtin(source):
        return None
    translation = translation_source(source)
    path = translation[1] if translation is not None else resolve_source(source)[1]
    h = hashlib.sha256()
    # regular files only (a symlink to one counts): a FIFO or device in a folder would block or never end
    files = [path] if os.path.isfile(path) else sorted(
        p for p in (os.path.join(root, f) for root, _, names in os.walk(path) for f in names) if os.path.isfile(p))
    for f in files:
        if f != path:
            h.update(os.path.relpath(f, path).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
