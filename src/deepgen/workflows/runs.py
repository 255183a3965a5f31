"""Reading a run directory: its model, its data and its label context."""

from __future__ import annotations

import sys
from pathlib import Path

from dataclasses import dataclass

import torch

from deepgen.data import Splits, load_data
from deepgen.data.subsets import exclude_classes
from deepgen.data.context import LabelContext
from deepgen.data.source import source_sha256
from deepgen.errors import CheckpointError, ConfigError, DataError
from deepgen.evaluation.plots import PICTURE_FORMATS
from deepgen.io import read_yaml
from deepgen.models.pretrained import CONFIG_FILE, model_config, run_label_context  # noqa: F401 (re-exported)

ARRAY_OR_PICTURE_FORMATS = PICTURE_FORMATS + (".npz",)


def run_data_source(run) -> tuple[str, str | None]:
    """(data source, label source) recorded in a run's training config, for ``score``/``sample`` defaults.

    Warns on stderr when a user's file has changed since training (its SHA-256 differs)."""
    path = Path(run)
    where = path / CONFIG_FILE
    cfg = read_yaml(where)
    train = cfg.get("train") or {}
    if not isinstance(train, dict):
        raise CheckpointError(f"{where}: field 'train' is {type(train).__name__}; expected a mapping (the training config)")
    data = train.get("data")
    if not data:
        block = model_config(path).get("data")
        data = block.get("name") if isinstance(block, dict) else None
    labels = train.get("labels") or None
    for key, value in (("data", data), ("labels", labels)):
        if value is not None and not isinstance(value, str):
            raise CheckpointError(f"{where}: {key} {value!r} is {type(value).__name__}; expected a dataset name or path")
    if not data:
        raise CheckpointError(f"{where}: no data recorded (train.data); expected the dataset the run was trained on")
    recorded = cfg.get("data_sha256")
    if recorded and source_sha256(data) != recorded:
        print(f"deepgen: warning: {data} has changed since run '{run}' was trained (sha256 differs); "
              "figures are for the data as it is now", file=sys.stderr)
    return data, labels


def check_compatible(model_spec, data_spec, data_name: str) -> None:
    """Data must have the shape and levels the model was trained on."""
    if tuple(model_spec.shape) != tuple(data_spec.shape):
        raise DataError(f"{data_name}: examples have shape {data_spec.shape}, the model was trained on "
                        f"{model_spec.shape} ('{model_spec.name}')")
    if model_spec.levels != data_spec.levels:
        raise DataError(f"{data_name}: data have {data_spec.levels or 'continuous'} levels, the model was trained on "
                        f"{model_spec.levels or 'continuous'} ('{model_spec.name}')")


def check_same_classes(label_context: LabelContext, classes, data_name: str) -> None:
    """Scoring a conditional run needs data with the classes it was trained on."""
    if tuple(str(c) for c in classes) != label_context.classes:
        raise ConfigError(f"{data_name}: classes {list(classes)} differ from the run's classes "
                          f"{list(label_context.classes)}")


@dataclass
class RunSplit:
    """One split of the data a run is applied to: its name, the splits, the examples and their one-hot
    labels (None for an unconditional run)."""

    data_name: str
    splits: Splits
    x: torch.Tensor
    context: torch.Tensor | None
    label_context: LabelContext | None


def run_excluded_classes(run) -> list:
    """The classes a run was trained without (``train.exclude_classes``; [] for none)."""
    where = Path(run) / CONFIG_FILE
    train = read_yaml(where).get("train") or {}
    excluded = train.get("exclude_classes") if isinstance(train, dict) else None
    if excluded is None:
        return []
    if not isinstance(excluded, list):
        raise CheckpointError(f"{where}: train.exclude_classes is {type(excluded).__name__}; expected a list of classes")
    return excluded


def run_split(run, model_spec, data: str | None, labels: str | None, split: str) -> RunSplit:
    """The ``split`` of ``data`` (default: the data the run was trained on, with its label source), checked
    against the model's shape and levels and, for a conditional run, its classes; an empty split is an error."""
    recorded_data, recorded_labels = run_data_source(run)
    data_name = data or recorded_data
    label_context = run_label_context(run)
    splits = load_data(data_name, labels=labels if data else (labels or recorded_labels))
    if not data:  # the run's own data: without the classes it was trained without
        splits = exclude_classes(splits, run_excluded_classes(run), "train.exclude_classes")
    check_compatible(model_spec, splits.spec, data_name)
    x = splits.split(split)
    if len(x) == 0:
        raise ConfigError(f"{data_name}: the {split} split is empty")
    context = None
    if label_context is not None:
        check_same_classes(label_context, splits.classes, data_name)
        context = label_context.one_hot(splits.split_labels(split))
    return RunSplit(data_name, splits, x, context, label_context)


def check_picture_out(out: Path, spec) -> str:
    """The suffix of ``--out``: a picture (images only) or .npz (the arrays); a directory or an unknown
    extension is an error."""
    suffix = out.suffix.lower()
    if suffix not in ARRAY_OR_PICTURE_FORMATS:
        raise ConfigError(f"--out {out}: expected a picture ({', '.join(PICTURE_FORMATS)}) or .npz (the arrays); "
                          f"got {'no extension' if not suffix else repr(out.suffix)}")
    if suffix in PICTURE_FORMATS and not spec.is_image:
        raise ConfigError(f"--out {out}: data '{spec.name}' are vectors, not images; write the arrays instead, "
                          f"e.g. --out {out.with_suffix('.npz')}")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; expected a file name with an extension")
    return suffix
