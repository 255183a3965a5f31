"""Model registry: names -> classes, and building a model from validated parameters.

Built-in models are listed by dotted path and imported on first use, so the
registry imports no model module (no import circle) and ``deepgen --help`` stays
light.  ``register(cls)`` adds a model of one's own under ``cls.name``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, unknown_name

# name -> "module:Class"; one model per file, one subpackage per family.
BUILTIN_MODELS: dict[str, str] = {
    "realnvp": "deepgen.models.flows.realnvp:RealNVP",
    "made": "deepgen.models.autoregressive.made:MADE",
    "vae": "deepgen.models.latent.vae:VAE",
    "gan": "deepgen.models.adversarial.gan:GAN",
}
_REGISTERED: dict[str, type] = {}


def register(cls):
    """Class decorator: make ``cls`` (a GenerativeModel subclass with a ``name``) buildable by its name."""
    if not getattr(cls, "name", ""):
        raise ConfigError(f"{cls.__name__}: set a class attribute 'name' before registering it")
    _REGISTERED[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (built-in models stay)."""
    _REGISTERED.pop(name, None)


def _load(path: str) -> type:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def model_names() -> list[str]:
    return sorted({*BUILTIN_MODELS, *_REGISTERED})


def list_models() -> dict[str, type]:
    """Every model name -> its class (imports the model modules)."""
    return {name: get_model_class(name) for name in model_names()}


def get_model_class(name: str) -> type:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN_MODELS:
        return _load(BUILTIN_MODELS[name])
    raise unknown_name("model", name, model_names())


def model_defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of a model's constructor."""
    cls = get_model_class(name)
    sig = inspect.signature(cls.__init__)
    return {
        k: p.default for k, p in sig.parameters.items()
        if k not in ("self", "spec") and p.default is not inspect.Parameter.empty
    }


def build_model(name: str, spec: DataSpec, params: dict[str, Any] | None = None, strict: bool = True):
    """Build model ``name`` for data ``spec``; unknown or ill-typed parameters raise ConfigError.

    ``strict``: a parameter the model ignores on this data's shape (e.g. an MLP width for an
    image flow) is an error too.  Rebuilding a saved model passes ``strict=False``, since a
    saved config lists every parameter with its value.
    """
    cls = get_model_class(name)
    defaults = model_defaults(name)
    params = dict(params or {})
    unused = cls.unused_params(spec) if strict else frozenset()
    for key, value in params.items():
        if key not in defaults:
            raise unknown_name(f"parameter of model '{name}'", key, defaults)
        if key in unused:
            kind = "images" if spec.is_image else "vectors"
            used = ", ".join(n for n in defaults if n in set().union(*map(set, cls.shape_params.values()))
                             and n not in unused)
            raise ConfigError(f"model parameter '{key}' is not used by {name} on {kind} (data '{spec.name}' has "
                              f"shape {spec.shape}); for {kind} set {used}")
        default = defaults[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"model parameter '{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"model parameter '{key}' must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"model parameter '{key}' must be an integer, got {value!r}")
            params[key] = type(default)(value)
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"model parameter '{key}' must be a string, got {value!r}")
    full = {**defaults, **params}
    return cls(spec, **full)
