"""File I/O only — safely: atomic writes, safe YAML, JSON, safetensors.

Nothing here uses pickle, so reading a stranger's file never runs code.  Every
file is written to a temporary name in the same directory and then renamed
(``os.replace`` is atomic), so an interrupted write never leaves a half-written
file behind.  Building models from files lives in :mod:`deepgen.models.pretrained`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepgen.errors import CheckpointError, ConfigError

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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
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
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
