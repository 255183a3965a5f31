"""Training state (optimizer, step, RNG) as safetensors — no pickle.

Tensors go in the file under ``optim.<param index>.<key>`` and ``rng.cpu``;
everything else (step, param_groups) goes in the safetensors JSON metadata.
"""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from deepgen.errors import CheckpointError
from deepgen.io import atomic_path, save_tensors

STATE_FILE = "training_state.safetensors"


def save_training_state(path, optimizer: torch.optim.Optimizer, step: int) -> None:
    sd = optimizer.state_dict()
    tensors = {"rng.cpu": torch.get_rng_state()}
    scalars = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    meta = {"step": str(step), "param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}
    save_tensors(path, tensors, metadata=meta)


def load_training_state(path) -> tuple[dict, int, torch.Tensor]:
    """(optimizer state_dict, step, cpu RNG state) from :func:`save_training_state`'s file."""
    from deepgen.io import load_tensors

    tensors = load_tensors(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        step = int(meta["step"])
        groups = json.loads(meta["param_groups"])
        scalars = json.loads(meta.get("scalars", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: training state metadata missing or malformed ({exc})") from None
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in scalars.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}, step, tensors.get("rng.cpu")


__all__ = ["STATE_FILE", "save_training_state", "load_training_state", "atomic_path"]
