"""Training configuration: one flat mapping, from a YAML preset and CLI overrides.

A preset file holds these fields (all optional but ``model`` and ``data``)::

    model: realnvp
    data: digits
    steps: 3000
    context: label          # optional: class-conditional p(x | y) on the data's labels
    model_params: {channels: 64, scales: 2}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepgen.errors import ConfigError, unknown_name
from deepgen.models.registry import get_model_class


@dataclass
class TrainConfig:
    model: str = ""
    data: str = ""
    context: str = ""  # "" (unconditional) or "label": condition on the dataset's class labels
    labels: str = ""  # where a user file's labels are (see README, "Your own data"); "" = automatic
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # "cosine" (decay to 0 after warm-up) or "constant"
    grad_clip: float = 5.0
    seed: int = 0
    eval_every: int = 500
    eval_batch_size: int = 256
    log_every: int = 25
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = True
    model_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        if data.get("model"):
            # A model may declare better training defaults (e.g. a GAN's lr); explicit fields win.
            data = {**getattr(get_model_class(str(data["model"])), "train_defaults", {}), **data}
        kwargs = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"{source}: {unknown_name('field', key, names)}")
            kwargs[key] = _coerce(key, value, names[key], source)
        cfg = cls(**kwargs)
        cfg.check(source)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, source: str = "config") -> None:
        if not self.model:
            raise ConfigError(f"{source}: field 'model' is required (see `deepgen list`)")
        if not self.data:
            raise ConfigError(f"{source}: field 'data' is required (a built-in name or a file path)")
        for key in ("steps", "batch_size", "eval_every", "eval_batch_size", "log_every", "devices", "num_nodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{source}: field '{key}' must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"{source}: field 'lr' must be > 0, got {self.lr}")
        if self.context not in ("", "label"):
            raise ConfigError(f"{source}: field 'context' must be 'label' or empty, got {self.context!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"{source}: field 'lr_schedule' must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if not (isinstance(self.betas, (list, tuple)) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas)):
            raise ConfigError(f"{source}: field 'betas' must be two numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.model_params, dict):
            raise ConfigError(f"{source}: field 'model_params' must be a mapping")


def _coerce(key, value, f, source):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "str":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field '{key}' must be {kind}, got {value!r}") from None
    return value


def resolve_preset(path_or_name: str) -> Path:
    """A preset path, or the name of a preset shipped in ``deepgen/configs``."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    shipped = Path(__file__).resolve().parent.parent / "configs"
    for cand in (shipped / path_or_name, shipped / f"{path_or_name}.yaml", shipped / p.name):
        if cand.is_file():
            return cand
    names = sorted(q.stem for q in shipped.glob("*.yaml"))
    raise ConfigError(f"{path_or_name}: preset file not found ({unknown_name('preset', p.stem, names)})")


def list_presets() -> list[str]:
    shipped = Path(__file__).resolve().parent.parent / "configs"
    return sorted(q.stem for q in shipped.glob("*.yaml"))
