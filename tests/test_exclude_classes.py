"""``deepgen train --exclude-classes``: the classes are held out of every split, the run records them, and
scoring the run uses its own (reduced) test split."""

from __future__ import annotations

import pytest
import torch

from deepgen.data import load_data
from deepgen.data.subsets import exclude_classes
from deepgen.errors import DataError
from deepgen.training.config import TrainConfig
from deepgen.workflows.score import score_run
from deepgen.workflows.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_excluded_classes_leave_every_split():
    d = load_data("digits")
    kept = exclude_classes(d, [5, "6", 7, 8, 9])
    for split in ("train", "val", "test"):
        labels = kept.split_labels(split)
        assert bool((labels < 5).all())
        assert len(kept.split(split)) == int((d.split_labels(split) < 5).sum())
        assert torch.equal(kept.split(split), d.split(split)[d.split_labels(split) < 5])
    assert kept.classes == d.classes  # label ids keep their meaning


@pytest.mark.parametrize("classes,message", [([42], "'42' is not a class of 'digits'"),
                                             (list(range(10)), "leaves no training examples")])
def test_bad_exclusions_are_one_line_errors(classes, message):
    with pytest.raises(DataError, match=message):
        exclude_classes(load_data("digits"), classes)


def test_a_dataset_without_labels_cannot_exclude_classes():
    with pytest.raises(DataError, match="has no class labels"):
        exclude_classes(load_data("swissroll"), [1])


def test_a_run_trained_without_classes_is_scored_without_them(tmp_path):
    cfg = TrainConfig.from_dict({"model": "made", "data": "digits", "steps": 3, "eval_every": 3,
                                 "exclude_classes": [5, 6, 7, 8, 9], "model_params": {"hidden": 16}})
    scores = train(cfg, tmp_path / "r")
    n_kept = int((load_data("digits").split_labels("test") < 5).sum())
    assert scores["n"] == n_kept
    assert score_run(tmp_path / "r")["n"] == n_kept
