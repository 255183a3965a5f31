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
from deepgen.models.names import BUILTIN_MODELS
from deepgen.models.params import check_params, describe_params, signature_params

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
    return {k: p.default for k, p in signature_params(get_model_class(name)).items()
            if p.default is not inspect.Parameter.empty}


def model_params(name: str) -> list[dict[str, Any]]:
    """Model ``name``'s hyper-parameters, one dict each: ``name``, ``type``, ``default``,
    ``constraint`` (allowed values, e.g. ">= 1" or "one of: natural, random"; "" if unconstrained)
    and ``meaning`` (one line from the constructor docstring's ``Args:`` section; "" if undocumented).
    An unknown name raises ConfigError with the closest model name."""
    return describe_params(get_model_class(name))


def check_model_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` of model ``name`` without building it (names, types, ``param_constraints``);
    returns them with numbers converted to their defaults' types.  Raises ConfigError."""
    return check_params(get_model_class(name), name, dict(params or {}), model_defaults(name))


def build_model(name: str, spec: DataSpec, params: dict[str, Any] | None = None, strict: bool = True):
    """Build model ``name`` for data ``spec``; unknown, ill-typed or out-of-range parameters raise ConfigError.

    Every given parameter is checked against the class's ``param_constraints`` before the
    constructor runs (:mod:`deepgen.models.params`).  ``strict``: a parameter the model ignores
    on this data's shape (e.g. an MLP width for an image flow) is an error too.  Rebuilding a
    saved model passes ``strict=False``, since a saved config lists every parameter with its value.
    """
    cls = get_model_class(name)
    defaults = model_defaults(name)
    params = check_params(cls, name, dict(params or {}), defaults)
    unused = cls.unused_params(spec) if strict else frozenset()
    for key in params:
        if key in unused:
            kind = "images" if spec.is_image else "vectors"
            used = ", ".join(n for n in defaults if n in set().union(*map(set, cls.shape_params.values()))
                             and n not in unused)
            raise ConfigError(f"model parameter '{key}' is not used by {name} on {kind} (data '{spec.name}' has "
                              f"shape {spec.shape}); for {kind} set {used}")
    full = {**defaults, **params}
    return cls(spec, **full)
