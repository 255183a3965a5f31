"""Reading a run directory: its model, its data and its label context."""

from __future__ import annotations

import sys
from pathlib import Path

from deepgen.data.context import LabelContext
from deepgen.data.source import source_sha256
from deepgen.errors import ConfigError, DataError
from deepgen.io import read_yaml
from deepgen.models.pretrained import CONFIG_FILE, model_config


def run_label_context(run) -> LabelContext | None:
    """The label context a run was trained with (``context: label``), or None."""
    path = Path(run)
    if path.is_file():
        path = path.parent
    block = read_yaml(path / CONFIG_FILE).get("context")
    return None if block is None else LabelContext.from_dict(block, str(path / CONFIG_FILE))


def run_data_source(run) -> tuple[str, str | None]:
    """(data source, label source) recorded in a run's training config, for ``score``/``sample`` defaults.

    Warns on stderr when a user's file has changed since training (its SHA-256 differs)."""
    path = Path(run)
    cfg = read_yaml(path / CONFIG_FILE)
    train = cfg.get("train") or {}
    data = str(train.get("data") or model_config(path)["data"]["name"])
    recorded = cfg.get("data_sha256")
    if recorded and source_sha256(data) != recorded:
        print(f"deepgen: warning: {data} has changed since run '{run}' was trained (sha256 differs); "
              "figures are for the data as it is now", file=sys.stderr)
    return data, (train.get("labels") or None)


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
