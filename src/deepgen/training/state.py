"""Training state (optimizer, step, RNG) as safetensors — no pickle.

Tensors go in the file under ``optim<j>.<param index>.<key>`` (optimizer j) and ``rng.cpu``;
everything else (step, param_groups) goes in the safetensors JSON metadata.
"""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from deepgen.errors import CheckpointError
from deepgen.io import save_tensors

STATE_FILE = "training_state.safetensors"


def save_training_state(path, optimizers: list[torch.optim.Optimizer], step: int) -> None:
    tensors = {"rng.cpu": torch.get_rng_state()}
    scalars, groups = {}, []
    for j, optimizer in enumerate(optimizers):
        sd = optimizer.state_dict()
        groups.append(sd["param_groups"])
        for idx, entry in sd["state"].items():
            for key, value in entry.items():
                if torch.is_tensor(value):
                    tensors[f"optim{j}.{idx}.{key}"] = value
                else:
                    scalars[f"{j}.{idx}.{key}"] = value
    meta = {"step": str(step), "param_groups": json.dumps(groups), "scalars": json.dumps(scalars)}
    save_tensors(path, tensors, metadata=meta)


def load_training_state(path) -> tuple[list[dict], int, torch.Tensor]:
    """(optimizer state_dicts, step, cpu RNG state) from :func:`save_training_state`'s file."""
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
    states: list[dict[int, dict]] = [{} for _ in groups]
    try:
        for name, value in tensors.items():
            if name.startswith("optim"):
                opt, idx, key = name.split(".", 2)
                states[int(opt[5:])].setdefault(int(idx), {})[key] = value
        for name, value in scalars.items():
            opt, idx, key = name.split(".", 2)
            states[int(opt)].setdefault(int(idx), {})[key] = value
    except (ValueError, IndexError):
        raise CheckpointError(f"{path}: optimizer entries do not match its metadata") from None
    return [{"state": s, "param_groups": g} for s, g in zip(states, groups)], step, tensors.get("rng.cpu")

