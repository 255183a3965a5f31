"""Saving and loading models and run files — safely.

A saved model is a directory with ``config.yaml`` (model name, hyper-parameters,
data spec: enough to rebuild it exactly) and ``model.safetensors`` (weights
only).  Nothing here uses pickle, so loading a stranger's directory never runs
code.  Every file is written to a temporary name in the same directory and then
renamed (``os.replace`` is atomic), so an interrupted write never leaves a
half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepgen.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


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


def write_json(path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


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
    head = path.read_bytes()[:8] if path.stat().st_size >= 2 else b""
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


def save_model(model, directory, extra: dict | None = None) -> Path:
    """Write ``config.yaml`` (``model_config`` plus any ``extra`` blocks) and ``model.safetensors``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS_FILE, model.state_dict(), metadata={"model": model.name})
    write_yaml(directory / CONFIG_FILE, {"model_config": model.config(), **(extra or {})})
    return directory


def model_config(directory) -> dict[str, Any]:
    """The ``model_config`` block of a run directory's ``config.yaml``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: run directory not found")
    cfg = read_yaml(directory / CONFIG_FILE)
    block = cfg.get("model_config")
    if not isinstance(block, dict) or "model" not in block or "data" not in block:
        raise CheckpointError(f"{directory / CONFIG_FILE}: missing 'model_config' with 'model', 'params' and 'data'")
    return block


def load_model(directory, map_location: str | torch.device = "cpu"):
    """Rebuild a model from ``config.yaml`` and load ``model.safetensors`` (strict keys and shapes)."""
    from deepgen.data.spec import DataSpec
    from deepgen.models.registry import build_model

    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    block = model_config(directory)
    spec = DataSpec.from_dict(block["data"])
    model = build_model(block["model"], spec, block.get("params") or {})
    state = load_tensors(directory / WEIGHTS_FILE)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE}: weights do not match config.yaml "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]})"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(
                f"{directory / WEIGHTS_FILE}: tensor '{k}' has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()
