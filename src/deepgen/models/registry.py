"""Model registry: names -> classes, and building a model from validated parameters."""

from __future__ import annotations

import inspect
from typing import Any

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, unknown_name

MODELS: dict[str, type] = {}


def register(cls):
    """Class decorator: make ``cls`` buildable by its ``name``."""
    MODELS[cls.name] = cls
    return cls


def _ensure_loaded():
    import deepgen.models.autoregressive  # noqa: F401  (each import registers its models)
    import deepgen.models.flows  # noqa: F401
    import deepgen.models.gan  # noqa: F401
    import deepgen.models.vae  # noqa: F401


def list_models() -> dict[str, type]:
    _ensure_loaded()
    return dict(MODELS)


def model_defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of a model's constructor."""
    cls = get_model_class(name)
    sig = inspect.signature(cls.__init__)
    return {
        k: p.default for k, p in sig.parameters.items()
        if k not in ("self", "spec") and p.default is not inspect.Parameter.empty
    }


def get_model_class(name: str) -> type:
    _ensure_loaded()
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


def build_model(name: str, spec: DataSpec, params: dict[str, Any] | None = None):
    """Build model ``name`` for data ``spec``; unknown or ill-typed parameters raise ConfigError."""
    cls = get_model_class(name)
    defaults = model_defaults(name)
    params = dict(params or {})
    for key, value in params.items():
        if key not in defaults:
            raise unknown_name(f"parameter of model '{name}'", key, defaults)
        default = defaults[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"model parameter '{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"model parameter '{key}' must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"model parameter '{key}' must be an integer, got {value!r}")
            params[key] = type(default)(value)
    full = {**defaults, **params}
    return cls(spec, **full)
