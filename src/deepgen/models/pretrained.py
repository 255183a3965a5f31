"""Saving and loading models: ``save_pretrained`` / ``from_pretrained`` — safely.

A saved model is a directory with ``config.yaml`` (model name, hyper-parameters,
data spec: enough to rebuild it exactly; and, for a staged model, the runs it
builds on with their weights' SHA-256) and ``model.safetensors`` (weights only).
Nothing here uses pickle, so loading a stranger's directory never runs code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import CheckpointError, DataError, DeepgenError
from deepgen.io import file_sha256, load_tensors, read_yaml, save_tensors, write_yaml
from deepgen.models.registry import build_model, get_model_class

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
BEST_DIR = "best"  # keep: best -- the weights of the lowest validation NLL so far (a loadable model directory)


def save_model(model, directory, extra: dict | None = None) -> Path:
    """Write ``config.yaml`` (``model.config()`` plus any ``extra`` blocks) and ``model.safetensors``."""
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
    if (not isinstance(block["model"], str) or not block["model"] or not isinstance(block["data"], dict)
            or not isinstance(block.get("params") or {}, dict)):
        raise CheckpointError(f"{directory / CONFIG_FILE}: model_config needs 'model' (a model name), 'params' "
                              "(a mapping) and 'data' (a mapping)")
    return block


def load_weights(model, path: Path) -> None:
    """Load a safetensors file into ``model``: names and shapes must match exactly."""
    state = load_tensors(path)
    expected = model.state_dict()
    # runs saved before preprocessing existed have no standardisation buffers: identity, as they were trained
    missing = sorted(k for k in set(expected) - set(state) if k not in ("data_loc", "data_scale"))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: weights do not match config.yaml "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]})"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{path}: tensor '{k}' has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict(state, strict=not (set(expected) - set(state)))


def load_model(directory, map_location: str | torch.device = "cpu"):
    """Rebuild a model from ``config.yaml`` and load ``model.safetensors`` (strict keys and shapes).

    For a staged model, every run it builds on must still hold the weights it was trained
    with (same SHA-256 as recorded); otherwise CheckpointError.
    """
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    block = model_config(directory)
    source = directory / CONFIG_FILE
    try:
        spec = DataSpec.from_dict(block["data"])
        if any(s < 1 or s > 2 ** 31 for s in spec.shape) or (spec.levels is not None and spec.levels < 1):
            raise DataError(f"data shape {tuple(spec.shape)} / levels {spec.levels}: expected sizes in 1..2^31")
        model = build_model(block["model"], spec, saved_params(block["model"], block.get("params") or {}),
                            strict=False)
    except CheckpointError:
        raise
    except DeepgenError as exc:  # a hand-edited or hostile config: name the file (same error class)
        raise type(exc)(f"{source}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{source}: cannot build the model it describes ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    check_builds_on(model, block.get("builds_on") or {}, directory / CONFIG_FILE)
    load_weights(model, directory / WEIGHTS_FILE)
    return model.to(map_location).eval()


def saved_params(name: str, params: dict) -> dict:
    """A saved run's hyper-parameters, with the ``params_added_later`` of model ``name`` that it lacks (the
    values that rebuild a run saved before they existed)."""
    later = getattr(get_model_class(name), "params_added_later", {}) if isinstance(name, str) else {}
    return {**later, **params} if isinstance(params, dict) else params


def check_builds_on(model, recorded: dict, source: Path) -> None:
    """The frozen runs ``model`` loaded must be the ones recorded in ``source`` (same weights hash)."""
    now = model.builds_on()
    for role, rec in recorded.items():
        cur = now.get(role)
        if cur is None:
            raise CheckpointError(f"{source}: records that the model builds on run '{rec.get('run')}' as "
                                  f"'{role}', but the rebuilt model does not")
        if cur["weights_sha256"] != rec.get("weights_sha256"):
            raise CheckpointError(
                f"{source}: the run it builds on ({cur['run']}, as '{role}') has changed since training: weights "
                f"sha256 {cur['weights_sha256'][:12]}..., recorded {str(rec.get('weights_sha256'))[:12]}...; "
                "restore that run or retrain this one")


def load_frozen(run_dir) -> tuple[Any, dict]:
    """A trained run loaded for another model to build on: eval mode, no gradients, plus its record."""
    run_dir = Path(run_dir).resolve()
    if not (run_dir / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{run_dir}: a run to build on must hold {WEIGHTS_FILE} (train it first)")
    model = load_model(run_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    record = {"run": str(run_dir), "model": model.name, "weights_sha256": file_sha256(run_dir / WEIGHTS_FILE)}
    return model.eval(), record


def run_label_context(run):
    """The label context a run was trained with (``context: label``; a LabelContext), or None."""
    from deepgen.data.context import LabelContext

    path = Path(run)
    if path.is_file():
        path = path.parent
    block = read_yaml(path / CONFIG_FILE).get("context")
    if block is not None and not isinstance(block, dict):
        raise CheckpointError(f"{path / CONFIG_FILE}: field 'context' is {type(block).__name__}; expected a mapping "
                              "(the run's label context)")
    return None if block is None else LabelContext.from_dict(block, str(path / CONFIG_FILE))
