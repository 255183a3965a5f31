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
import importlib.util
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepgen.errors import ConfigError, unknown_name

# This module imports no torch at import time (the CLI reads the defaults below for ``--help``);
# the model registry, torch and Lightning are imported inside the methods that need them.

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
LR_SCHEDULES = ("cosine", "constant")
CONTEXTS = ("", "label")
KEEPS = ("last", "best")  # which weights a run keeps: the last step's, or those of the best validation NLL
# Fallback if Lightning's private precision lists move (lightning 2.x).
_PRECISIONS_FALLBACK = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
                        "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")
# Lightning strategies that need no lookup (the rest of StrategyRegistry is checked by importing Lightning).
COMMON_STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "single_device", "fsdp", "deepspeed",
                     "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
SEED_MAX = 2**32 - 1  # numpy / Lightning accept seeds in [0, 2^32 - 1]

# The ``deepgen train`` flag of each field that has one (for error messages and ``--help``).
FLAGS = {
    "model": "--model", "data": "--data", "context": "--context", "labels": "--labels", "steps": "--steps",
    "batch_size": "--batch-size", "lr": "--lr", "warmup_steps": "--warmup-steps", "lr_schedule": "--lr-schedule",
    "grad_clip": "--grad-clip", "seed": "--seed", "eval_every": "--eval-every", "accelerator": "--accelerator",
    "devices": "--devices", "num_nodes": "--num-nodes", "strategy": "--strategy", "precision": "--precision",
    "progress": "--no-progress", "model_params": "--param", "keep": "--keep",
    "exclude_classes": "--exclude-classes", "checkpoint_every": "--checkpoint-every",
    "checkpoint_minutes": "--checkpoint-minutes", "nan_patience": "--nan-patience",
    "max_rollbacks": "--max-rollbacks", "threads": "--threads", "compile": "--compile",
    "weight_decay": "--weight-decay", "steps_per_call": "--steps-per-call",
}

# Numeric ranges of the numeric fields (see deepgen.models.params for the syntax).
RANGES = {
    "steps": ">= 1", "batch_size": ">= 1", "lr": "> 0", "weight_decay": ">= 0", "warmup_steps": ">= 0",
    "grad_clip": ">= 0", "seed": f"in [0, {SEED_MAX}]", "eval_every": ">= 1", "eval_batch_size": ">= 1",
    "log_every": ">= 1", "devices": ">= 1", "num_nodes": ">= 1", "checkpoint_every": ">= 0",
    "checkpoint_minutes": ">= 0", "nan_patience": ">= 1", "max_rollbacks": ">= 0",
    "threads": ">= 0", "steps_per_call": ">= 0",
}


def field_name(key: str) -> str:
    """How a message names a field: ``--batch-size / field 'batch_size'`` (the flag, when it has one)."""
    flag = FLAGS.get(key)
    return f"{flag} / field '{key}'" if flag and key not in ("progress", "model_params") else f"field '{key}'"


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
    grad_clip: float = 5.0  # 0: no clipping
    seed: int = 0
    eval_every: int = 500
    keep: str = "last"  # "last": the last step's weights; "best": those of the lowest validation NLL (model selection)
    eval_batch_size: int = 256
    log_every: int = 25
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = False  # the Python API is quiet; ``deepgen train`` turns it on (--no-progress: off)
    model_params: dict[str, Any] = field(default_factory=dict)
    # classes held out of every split (ids or names of the data's classes), e.g. for OOD on unseen classes
    exclude_classes: list = field(default_factory=list)
    checkpoint_every: int = 0  # also checkpoint every this many steps (0: only at validations and the end)
    checkpoint_minutes: float = 0.0  # also checkpoint when this many minutes passed since the last (0: off)
    nan_patience: int = 5  # this many non-finite steps in a row (each skipped) roll back to the last checkpoint
    max_rollbacks: int = 3  # rollbacks (each halving the lr) before a persistent non-finite loss stops training
    # CPU threads of torch's ops: 0 = auto (OMP_NUM_THREADS if set, else 1 for vector data, torch's default for images)
    threads: int = 0
    # the training loss through torch.compile (likelihood-trained models; deepgen.training.compiled)
    compile: bool = False
    # optimizer steps per call of Lightning's training step (0 = auto: 25 or the largest divisor of eval_every,
    # log_every and checkpoint_every up to it for likelihood-trained vector models in one process, else 1;
    # deepgen.training.steps_per_call): the same steps and batches, Lightning's per-step overhead paid once per call
    steps_per_call: int = 0
    # CPU floats below 1.2e-38 (denormals) read as zero while training: Adam's second moments of rarely-moving weights
    # decay into that range, where x86 arithmetic is ~100x slower (MAF on moons: 6-11 % more steps/s; the same NLL)
    flush_denormal: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        cfg = cls._from_fields(data, source)
        if data.get("model"):
            # the checks that need no torch first: a wrong name, value or data path is reported at once
            cfg.check(source, quick=True)
            from deepgen.models.registry import get_model_class

            # A model may declare better training defaults (e.g. a GAN's lr); explicit fields win.
            defaults = getattr(get_model_class(str(data["model"])), "train_defaults", {})
            if defaults:
                cfg = cls._from_fields({**defaults, **data}, source)
        cfg.check(source)
        return cfg

    @classmethod
    def _from_fields(cls, data: dict[str, Any], source: str) -> "TrainConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"{source}: {unknown_name('field', key, names)}")
            kwargs[key] = _coerce(key, value, names[key], source)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, source: str = "config", quick: bool = False) -> None:
        """Validate every field (types, ranges, choices, what this machine can run, the model's
        parameters); the first problem raises ConfigError with one line naming the field.  ``quick``: only
        the checks that import no torch (types, ranges, names, that a data file exists).

        Nothing is written: :func:`deepgen.workflows.train.train` calls this before it creates
        the run directory.
        """
        where = "" if source in ("config", "command line") else f"{source}: "
        try:  # the checks that import nothing heavy first, so the common mistakes are reported at once
            self._check_types()
            self._check_values()
            self._check_model_name()
            if quick:  # (``quick``: only these, that a data file exists, and that it parses; no torch)
                from deepgen.data.paths import check_exists, is_file_source, is_translation_source

                check_exists(self.data)
                if is_file_source(self.data) and not is_translation_source(self.data):
                    from deepgen.data.file_labels import preparse

                    preparse(self.data, self.labels or None)  # kept for the run's load: parsed once
                return
            self._check_data()
            self._check_machine()
            self._check_model()
        except ConfigError as exc:
            if where and not str(exc).startswith(where):
                raise ConfigError(f"{where}{exc}") from None
            raise

    # --- the parts of check() ---------------------------------------------------
    def _check_types(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            ok = {
                "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
                "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                "str": lambda v: isinstance(v, str),
                "bool": lambda v: isinstance(v, bool),
            }.get(kind.split("[")[0])
            if ok is not None and not ok(value):
                raise ConfigError(f"{field_name(f.name)} must be {_KIND_WORDS.get(kind, kind)}, got {value!r}")
        if not isinstance(self.model_params, dict):
            raise ConfigError(f"field 'model_params' must be a mapping NAME: VALUE, got {self.model_params!r}")
        if not (isinstance(self.exclude_classes, (list, tuple))
                and all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in self.exclude_classes)):
            raise ConfigError(f"{field_name('exclude_classes')} must be a list of class ids or names (e.g. 5,6,7), "
                              f"got {self.exclude_classes!r}")

    def _check_values(self) -> None:
        from deepgen.models.params import parse_constraint

        if not self.model:
            raise ConfigError("--model / field 'model' is required (see `deepgen list`)")
        if not self.data:
            raise ConfigError("--data / field 'data' is required (a built-in name or a file path)")
        for key, text in RANGES.items():
            value = getattr(self, key)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field_name(key)} must be a finite number, got {value!r}")
            c = parse_constraint(text, f"TrainConfig.{key}")
            if not c.allows(value):
                raise ConfigError(f"{field_name(key)} must be {c.text}, got {value!r}")
        if self.context not in CONTEXTS:
            raise ConfigError(f"{field_name('context')} must be 'label' or empty, got {self.context!r}")
        if self.steps_per_call > 1:  # validations, rows and checkpoints fall between calls
            for key in ("eval_every", "log_every", "checkpoint_every"):
                if getattr(self, key) % self.steps_per_call:
                    raise ConfigError(f"{field_name('steps_per_call')} must divide {field_name(key)} "
                                      f"({getattr(self, key)}), got {self.steps_per_call}")
        if self.keep not in KEEPS:
            raise ConfigError(f"{field_name('keep')}: {unknown_name('choice', self.keep, KEEPS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"{field_name('lr_schedule')}: {unknown_name('schedule', self.lr_schedule, LR_SCHEDULES)}")
        if not (isinstance(self.betas, (list, tuple)) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in self.betas)):
            raise ConfigError(f"field 'betas' must be two numbers in [0, 1), got {self.betas!r}")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"{field_name('accelerator')}: "
                              f"{unknown_name('accelerator', self.accelerator, ACCELERATORS)}")
        # the common values are known without importing Lightning (seconds); any other is looked up in it
        if self.strategy not in COMMON_STRATEGIES and self.strategy not in (strategies := available_strategies()):
            raise ConfigError(f"{field_name('strategy')}: {unknown_name('strategy', self.strategy, strategies)}")
        if self.precision not in _PRECISIONS_FALLBACK and self.precision not in (precisions := accepted_precisions()):
            raise ConfigError(f"{field_name('precision')}: "
                              f"{unknown_name('precision', self.precision, precisions)}")
        if self.strategy == "single_device" and self.devices != 1:
            raise ConfigError(f"{field_name('strategy')} 'single_device' runs on one device, but "
                              f"{field_name('devices')} is {self.devices}; use --strategy ddp or --devices 1")

    def _check_data(self) -> None:
        """A built-in dataset name, or a user's file or folder that exists (read later, when training)."""
        from deepgen.data import is_file_source, list_datasets
        from deepgen.data.source import canonical_source

        if is_file_source(self.data):
            canonical_source(self.data)  # DataError naming the path when it does not exist
        elif self.data not in list_datasets():
            raise unknown_name("dataset", self.data, list_datasets())

    def _check_machine(self) -> None:
        """What this machine (and this Python environment) can run."""
        import torch

        acc = self.accelerator
        if acc in ("gpu", "cuda"):
            if not torch.cuda.is_available():
                raise ConfigError(f"{field_name('accelerator')} is {acc!r} but torch.cuda.is_available() is False "
                                  "on this machine (no CUDA GPU, or a CPU-only torch build); use --accelerator cpu")
        elif acc == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ConfigError(f"{field_name('accelerator')} is 'mps' but torch.backends.mps.is_available() is "
                                  "False on this machine (Apple silicon GPU only); use --accelerator cpu")
            if self.devices > 1:
                raise ConfigError(f"{field_name('devices')} is {self.devices} but MPS has one device; use --devices 1")
        elif acc == "tpu" and not _has_module("torch_xla"):
            raise ConfigError(f"{field_name('accelerator')} is 'tpu' but torch_xla is not installed (no TPU "
                              "support in this environment); use --accelerator cpu")
        cuda_used = acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())
        if cuda_used and self.devices > torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError(f"{field_name('devices')} is {self.devices} but this machine has {count} CUDA "
                              f"GPU{'s' if count != 1 else ''} (torch.cuda.device_count()); "
                              f"use --devices {count} or fewer")
        s = self.strategy
        if s.startswith("deepspeed") and not _has_module("deepspeed"):
            raise ConfigError(f"{field_name('strategy')} {s!r} needs the deepspeed package, which is not "
                              "installed (pip install deepspeed); or use --strategy ddp")
        if s.startswith("fsdp") and not cuda_used:
            raise ConfigError(f"{field_name('strategy')} {s!r} needs CUDA GPUs (--accelerator gpu on a machine "
                              "with one); use --strategy ddp on CPUs")
        if (s.startswith("xla") or s in ("single_tpu", "single_xla")) and (acc not in ("tpu", "auto")
                                                                           or not _has_module("torch_xla")):
            raise ConfigError(f"{field_name('strategy')} {s!r} needs TPUs (--accelerator tpu and torch_xla "
                              "installed); use --strategy auto or ddp")
        if self.precision.startswith("transformer-engine") and not _has_module("transformer_engine"):
            raise ConfigError(f"{field_name('precision')} {self.precision!r} needs the transformer_engine "
                              "package, which is not installed; use 32-true or bf16-mixed")

    def _check_model_name(self) -> None:
        """A built-in model name (read from a table, without importing torch) or one registered in Python."""
        from deepgen.models.names import BUILTIN_MODELS

        # models registered by the user's own code live in the registry, which their code has imported
        registry = sys.modules.get("deepgen.models.registry")
        names = registry.model_names() if registry is not None else list(BUILTIN_MODELS)
        if self.model not in names:
            raise unknown_name("model", self.model, names)

    def _check_model(self) -> None:
        from deepgen.data.energy import is_target
        from deepgen.models.registry import check_model_params, get_model_class

        check_model_params(self.model, self.model_params)
        cls = get_model_class(self.model)
        if self.compile:
            self._check_compile(cls, is_target(self.data))
        if self.keep == "best":
            if cls.density == "none" or cls.objective != "likelihood" or is_target(self.data):
                what = (f"data '{self.data}' is a target with no validation split" if is_target(self.data)
                        else f"model '{self.model}' has no likelihood")
                raise ConfigError(f"{field_name('keep')} 'best' selects the weights of the lowest validation NLL, "
                                  f"but {what}; use --keep last")

    def _check_compile(self, cls, target: bool) -> None:
        """``--compile`` compiles the likelihood loss, and TorchInductor needs a C++ compiler on a CPU."""
        if target or cls.objective != "likelihood":
            what = (f"data '{self.data}' is a target (variational inference)" if target
                    else f"model '{self.model}' is trained by the {cls.objective} objective")
            raise ConfigError(f"{field_name('compile')} compiles the loss of models trained on a likelihood or "
                              f"a bound (flows, autoregressive and latent-variable models), but {what}; "
                              f"drop --compile")
        on_cpu = self.accelerator == "cpu" or (self.accelerator == "auto" and not _cuda_available())
        if on_cpu and not any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c):
            raise ConfigError(f"{field_name('compile')} on a CPU needs a C++ compiler for TorchInductor's kernels "
                              f"(g++ or clang++ on PATH, or $CXX); install one or drop --compile")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


_KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_strategies() -> tuple[str, ...]:
    """Lightning's registered strategy names and "auto"."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *sorted(StrategyRegistry.available_strategies()))


def accepted_precisions() -> tuple[str, ...]:
    """The precision values Lightning's Trainer accepts (as strings: "32" and 32 are the same here)."""
    try:
        from typing import get_args

        from lightning.fabric.plugins.precision.precision import (
            _PRECISION_INPUT_INT,
            _PRECISION_INPUT_STR,
            _PRECISION_INPUT_STR_ALIAS,
        )

        values = [*get_args(_PRECISION_INPUT_STR), *get_args(_PRECISION_INPUT_STR_ALIAS),
                  *map(str, get_args(_PRECISION_INPUT_INT))]
    except ImportError:
        values = list(_PRECISIONS_FALLBACK)
    return tuple(dict.fromkeys(values)) or _PRECISIONS_FALLBACK


def train_field_defaults() -> dict[str, Any]:
    """Every TrainConfig field's default (for ``deepgen train --help``)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


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
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{source}: {field_name(key)} must be {_KIND_WORDS.get(kind, kind)}, "
                          f"got {value!r}") from None
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
