"""deepgen: deep generative models behind one protocol (see README).

The public names below are imported on first use (PEP 562), so ``import deepgen``
and ``deepgen --help`` stay fast and import no torch until a model or dataset is needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "DataSpec": "deepgen.data.spec:DataSpec",
    "load_data": "deepgen.data:load_data",
    "list_datasets": "deepgen.data:list_datasets",
    "build_model": "deepgen.models.registry:build_model",
    "list_models": "deepgen.models.registry:list_models",
    "model_params": "deepgen.models.registry:model_params",
    "TrainConfig": "deepgen.training.config:TrainConfig",
    "train": "deepgen.workflows.train:train",
    "register": "deepgen.models.registry:register",
    "from_pretrained": "deepgen.models.pretrained:load_model",
    "save_model": "deepgen.models.pretrained:save_model",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepgen' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
