"""``deepgen score``: a run's figures on a split of its data (or other data of the same shape)."""

from __future__ import annotations

from pathlib import Path

from deepgen.data import load_data
from deepgen.data.subsets import exclude_classes
from deepgen.errors import ConfigError
from deepgen.data.energy import load_target
from deepgen.evaluation.scoring import score_model
from deepgen.evaluation.variational import check_can_fit_target, score_target
from deepgen.models.pretrained import load_model
from deepgen.workflows.runs import (check_compatible, check_same_classes, run_data_source, run_excluded_classes,
                                   run_label_context)


def score_run(run, data: str | None = None, split: str = "test", seed: int = 0, batch_size: int = 256,
              iw_samples: int | None = None, csv: str | None = None, labels: str | None = None,
              features: str | None = None, quality_samples: int | None = None,
              alignment_training: bool = False) -> dict:
    """Score run ``run`` on ``split`` of ``data`` (default: the data it was trained on).

    Writes per-example log-likelihoods to ``csv`` (default RUN/scores-DATA-SPLIT.csv) when the
    model has a density.  Returns the figures (see :func:`deepgen.evaluation.scoring.score_model`).
    Sample quality (``sample_quality``) is measured in the feature space of ``features`` (a feature net
    from :func:`train_features`) or, for 1x8x8 images with 17 or 2 levels, deepgen's digits classifier,
    with ``quality_samples`` samples (default: the split's size).
    When ``data`` (default: the run's) is an unnormalised target exp(-U), the figures are those of
    variational inference (:func:`deepgen.evaluation.variational.score_target`; no split, no csv).
    """
    model = load_model(run)
    recorded_data, recorded_labels = run_data_source(run)
    data_name = data or recorded_data
    target = load_target(data_name)
    if target is not None:
        check_compatible(model.spec, target.spec, data_name)
        check_can_fit_target(model, target)
        return score_target(model, target, seed=seed)
    label_context = run_label_context(run)
    splits = load_data(data_name, labels=labels if data else (labels or recorded_labels))
    if not data:  # the run's own data: without the classes it was trained without (--exclude-classes)
        splits = exclude_classes(splits, run_excluded_classes(run), "train.exclude_classes")
    check_compatible(model.spec, splits.spec, data_name)
    if alignment_training and not model.can("translate"):
        raise ConfigError(f"--alignment-training: {model.name} is not a translator (pix2pix, cyclegan, ...)")
    if label_context is not None:
        check_same_classes(label_context, splits.classes, data_name)
    csv_path = Path(csv) if csv else Path(run) / f"scores-{splits.spec.name}-{split}.csv"
    kwargs = {"k": iw_samples} if iw_samples else {}
    result = score_model(model, splits, split, seed=seed, batch_size=batch_size, csv_path=csv_path,
                         label_context=label_context, features=features, quality_samples=quality_samples,
                         **kwargs)
    if model.density != "none":
        result["per_example_csv"] = str(csv_path)
    if alignment_training:
        from deepgen.evaluation.alignment_training import alignment_for_training

        result["alignment_for_training"] = alignment_for_training(model, splits, seed=seed)
    return result


def train_features(data: str, out, labels: str | None = None, seed: int = 0, steps: int | None = None,
                   overwrite: bool = False, verbose: bool = True) -> dict:
    """Train deepgen's small image classifier on the labelled train split of ``data`` (labels from
    ``labels``, as for train) and write ``out``/feature-net.safetensors and feature-net.json (settings,
    accuracy per split, SHA-256): the feature space ``score --features OUT`` measures sample quality in.
    Returns the record written."""
    from deepgen.evaluation.sample_quality import TRAIN_SETTINGS, net_paths, save_feature_net, train_feature_net

    if not overwrite and any(p.exists() for p in net_paths(Path(out) / "feature-net")):
        raise ConfigError(f"{out} already holds a feature net; pass --overwrite to replace it")
    splits = load_data(data, labels=labels)
    net, meta = train_feature_net(splits, seed=seed, steps=steps or TRAIN_SETTINGS["steps"], verbose=verbose)
    Path(out).mkdir(parents=True, exist_ok=True)
    return save_feature_net(net, meta, Path(out))
