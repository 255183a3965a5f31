"""File I/O only — safely: atomic writes, safe YAML, JSON, safetensors.

Nothing here uses pickle, so reading a stranger's file never runs code.  Every
file is written to a temporary name in the same directory and then renamed
(``os.replace`` is atomic), so an interrupted write never leaves a half-written
file behind.  Building models from files lives in :mod:`deepgen.models.pretrained`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepgen.errors import CheckpointError, ConfigError, DeepgenError

_EXPONENT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def parse_value(text: str):
    """A command-line value as YAML reads it (``4`` -> 4, ``true`` -> True, ``a`` -> "a"), except that
    1e-3 (no dot, which YAML 1.1 leaves a string) is a float; text YAML cannot read stays a string."""
    if _EXPONENT_NUMBER.fullmatch(text.strip()):
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class WriteError(DeepgenError):
    """A file could not be written (disk full, file-size limit, quota, no permission); the previous
    version of the file, if any, is left as it was."""


# errno values that mean "no room": ENOSPC (disk full), EFBIG (file-size limit, ``ulimit -f``), EDQUOT (quota)
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
MAX_YAML_BYTES = 16 << 20  # a config file larger than this is refused before parsing


def ignore_file_size_signal() -> None:
    """Ignore SIGXFSZ so a write past ``ulimit -f`` fails with OSError(EFBIG) instead of killing the process
    (main thread only; a no-op where the signal does not exist)."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def write_error(path, exc: OSError) -> WriteError:
    """One line naming ``path`` and why writing it failed (disk full, file-size limit, ...)."""
    if exc.errno == errno.ENOSPC:
        why = "no space left on the device (disk full)"
    elif exc.errno == errno.EFBIG:
        why = "file too large (a file-size limit, e.g. ulimit -f, or the file system's maximum)"
    elif exc.errno == getattr(errno, "EDQUOT", None):
        why = "disk quota exceeded"
    else:
        text = (exc.strerror or str(exc)).strip().splitlines()
        why = text[0] if text else type(exc).__name__
    return WriteError(f"{path}: cannot write file ({why}); the previous version of the file, if any, is unchanged")


def _is_write_failure(exc: BaseException) -> bool:
    """An OSError from writing (no room, permission, read-only file system), also wrapped by a library
    (safetensors and matplotlib re-raise the OS error's text)."""
    if isinstance(exc, DeepgenError):
        return False
    if isinstance(exc, OSError) and exc.errno in _NO_ROOM | {errno.EACCES, errno.EROFS, errno.EPERM}:
        return True
    text = str(exc)
    return any(s in text for s in ("No space left on device", "File too large", "Disk quota exceeded"))


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    text = str(exc)
    for code, words in ((errno.ENOSPC, "No space left on device"), (errno.EFBIG, "File too large")):
        if words in text:
            return code
    return getattr(errno, "EDQUOT", None) if "Disk quota exceeded" in text else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The temporary file is flushed to disk before the rename.  A full disk or a file-size limit
    (ENOSPC, EFBIG, EDQUOT; also when a library wraps the OS error) raises :class:`WriteError` naming
    ``path``; the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:  # mkstemp makes the file 0600: give it the previous file's mode, else the umask's default
            os.fchmod(fd, _file_mode(path))
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    group = getattr(_GROUP, "pending", None)
    try:
        yield tmp
        _fsync(tmp)
        if group is None:
            os.replace(tmp, path)
        else:
            group.append((tmp, path))
    except Exception as exc:
        if _is_write_failure(exc):
            code = _errno_of(exc)
            raise write_error(path, OSError(code, os.strerror(code)) if code else exc) from None
        raise
    finally:
        if group is None or not group or group[-1][0] != tmp:
            _unlink_quietly(tmp)


def _unlink_quietly(tmp: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.exists(tmp):
            os.unlink(tmp)


_GROUP = threading.local()
_GROUP.pending = None


COMMIT_JOURNAL = ".deepgen-commit.json"  # a group's renames still to do (see atomic_group)


@contextlib.contextmanager
def atomic_group():
    """Files written (through :func:`atomic_path`) inside the block replace their old versions together at its
    end, once all of them are written and flushed; if any write fails (e.g. a full disk), none is replaced.
    Used for a checkpoint (weights, training state, metrics), which must never mix two steps.

    Also under ``kill -9``: when the files share a folder, the renames to do are first written (atomically)
    to a journal there, ``COMMIT_JOURNAL``; a process killed between two renames leaves the journal, and
    :func:`finish_commit` (run before a run directory is used again) completes them, so the folder holds
    all the new files or all the old ones."""
    if getattr(_GROUP, "pending", None) is not None:  # nested: part of the outer group
        yield
        return
    _GROUP.pending = pending = []
    try:
        yield
    except BaseException:
        _GROUP.pending = None
        for tmp, _ in pending:
            _unlink_quietly(tmp)
        raise
    _GROUP.pending = None
    folders = {Path(path).parent for _, path in pending}
    journal = next(iter(folders)) / COMMIT_JOURNAL if len(folders) == 1 and len(pending) > 1 else None
    if journal is not None:
        try:
            with atomic_path(journal) as tmp, open(tmp, "w") as f:
                json.dump([[os.path.basename(t), Path(p).name] for t, p in pending], f)
        except BaseException:
            for tmp, _ in pending:
                _unlink_quietly(tmp)
            raise
    for i, (tmp, path) in enumerate(pending):
        try:
            os.replace(tmp, path)
        except OSError as exc:
            for rest, _ in pending[i:]:
                _unlink_quietly(rest)
            if journal is not None:
                _unlink_quietly(str(journal))
            raise write_error(path, exc) from None
    if journal is not None:
        _unlink_quietly(str(journal))


def finish_commit(folder) -> bool:
    """Complete a group of replacements that a killed process left half done in ``folder`` (its journal,
    see :func:`atomic_group`), and remove temporary files of writes that never finished.  Returns True when a
    journal was found.  Call it only while no other process writes the folder (a run directory's lock)."""
    folder = Path(folder)
    journal = folder / COMMIT_JOURNAL
    found = journal.is_file()
    if found:
        try:
            pairs = json.loads(journal.read_text())
            for tmp, name in pairs:
                if "/" in tmp or "/" in name or os.sep in tmp or os.sep in name:
                    raise ValueError(f"{tmp!r} -> {name!r} leaves the folder")
                if (folder / tmp).is_file():
                    os.replace(folder / tmp, folder / name)
        except (OSError, ValueError, TypeError) as exc:
            raise WriteError(f"{journal}: cannot complete an interrupted checkpoint ({exc}); "
                             "remove the file to keep the previous checkpoint") from None
        _unlink_quietly(str(journal))
    for stale in folder.glob(".*.tmp"):
        _unlink_quietly(str(stale))
    return found


_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def _file_mode(path: Path) -> int:
    """The mode a rewritten file keeps (its previous one), or a new file's default (0666 less the umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _fsync(path: str) -> None:
    """Flush a written file to the disk, so the rename never publishes a file whose blocks are not there
    (a delayed-allocation file system reports ENOSPC at this point)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):  # a file system without fsync
            return
        raise
    finally:
        os.close(fd)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_yaml(path, data: dict) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def strict_json(data) -> str:
    """JSON text that any parser accepts: NaN and infinities become null (JSON has no such numbers)."""
    return json.dumps(_finite(data), allow_nan=False)


def _finite(value):
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path, data: dict) -> None:
    """Strict JSON (see :func:`strict_json`), indented, written atomically."""
    write_text(path, json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def read_yaml(path) -> dict[str, Any]:
    """Parse a YAML mapping with ``safe_load`` (no object construction)."""
    path = Path(path)
    if not path.is_file():  # also a directory, a FIFO or a device: never opened (a FIFO would block)
        raise ConfigError(f"{path}: file not found" if not path.exists()
                          else f"{path}: not a regular file; expected a YAML file")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {size} bytes; expected a YAML config file of at most {MAX_YAML_BYTES} bytes")
        with open(path, "rb") as f:
            text = f.read(MAX_YAML_BYTES + 1).decode("utf-8-sig")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def save_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def _sniff_unsafe(path: Path) -> str | None:
    """Name a pickle-based format (zip from torch.save, a raw pickle stream), or None.

    A safetensors file starts with its header length (u64, little endian) and then the JSON
    header's "{"; that test comes first, since a header length can begin with any byte
    (0x80 included, which is also pickle's first byte).
    """
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return None
    if head[:2] == b"PK":
        return "a zip archive (torch.save format, which unpickles on load)"
    if head[:1] == b"\x80":
        return "a pickle stream"
    return None


def load_tensors(path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse anything else (never unpickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found (expected a safetensors file)")
    unsafe = _sniff_unsafe(path)
    if unsafe:
        raise CheckpointError(f"{path}: is {unsafe}, not safetensors; refusing to load it because pickle can run code")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({first})") from None


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
