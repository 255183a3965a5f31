"""How well a translator aligns the two mixtures of the ``mixtures`` task: component accuracy and map error.

The built-in ``mixtures`` task (:func:`deepgen.data.translation.mixture_task`; data ``mixtures`` is
seed 0, ``mixtures-S`` seed S) knows its map T and both mixtures.  Component k of B is T(component k
of A), so a right alignment G carries each A point a_i of component y_i into B's component y_i.
Over the N domain-A points of one split (default test), for G = ``model.translate``:

* component accuracy = (1 / N) sum_i 1[c_B(G(a_i)) = y_i], c_B(x) = argmax_k pi^B_k N(x; mu^B_k, S^B_k)
  the most probable component of B's true mixture (:meth:`MixtureTask.classify`);
* map error = (1 / N) sum_i ||G(a_i) - T(a_i)||^2 (squared data units).

Baselines, the same figures: ``identity`` (G(a) = a) and ``oracle`` (G = T: map error 0, its
component accuracy the Bayes rate of B's mixture, the ceiling).  Unlike
:func:`deepgen.evaluation.translation.point_errors` (nearest component mean, any 2-D translation data),
the classifier here is the task's own Bayes classifier, weights and covariances included.
"""

from __future__ import annotations

import re

import torch

from deepgen.data.spec import Splits
from deepgen.data.translation import MixtureTask, mixture_task
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.translation import check_translator, sources, translate_all, translation_of

_NAME = re.compile(r"mixtures(?:-(\d+))?")


def is_mixture_task(splits: Splits) -> bool:
    """Whether ``splits`` are the built-in mixtures task ("mixtures" or "mixtures-S", 2-D points)."""
    return _NAME.fullmatch(splits.spec.name) is not None and tuple(splits.spec.shape) == (2,)


def task_of(splits: Splits) -> tuple[MixtureTask, int]:
    """The :class:`MixtureTask` that made ``splits`` and its seed, from the data's name ("mixtures" -> 0,
    "mixtures-S" -> S); a DataError naming the data otherwise."""
    match = _NAME.fullmatch(splits.spec.name)
    if match is None or tuple(splits.spec.shape) != (2,):
        raise DataError(f"alignment scores: data '{splits.spec.name}' is not the built-in mixtures task "
                        "(expected 'mixtures' or 'mixtures-SEED', 2-D points with a known map T)")
    seed = int(match.group(1) or 0)
    return mixture_task(seed), seed


def alignment_row(out: torch.Tensor, a: torch.Tensor, labels: torch.Tensor, task: MixtureTask) -> dict:
    """``component_accuracy`` and ``map_error`` of translations ``out`` of the A points ``a`` (labels: their
    components) under ``task``."""
    out = out.double()
    return {"component_accuracy": (task.classify(out, "B") == labels).double().mean().item(),
            "map_error": (out - task.apply(a.double())).pow(2).sum(1).mean().item()}


def alignment_scores(model, splits: Splits, split: str = "test", seed: int = 0) -> dict:
    """The figures of the module docstring for ``model`` (capability "translate") and the ``identity`` and
    ``oracle`` baselines on the domain-A points of ``split``:
    ``{"component_accuracy", "map_error", "rows": {"model", "identity", "oracle"}, "task", "task_seed",
    "split", "n", "units", "definitions"}`` (the top-level figures are the model's)."""
    check_translator(model)
    task, task_seed = task_of(splits)
    tr = translation_of(splits)
    a = sources(splits, split)
    labels = tr.source_labels.get(split)
    if labels is None:
        raise DataError(f"alignment scores: data '{splits.spec.name}' has no components for its domain-A "
                        f"points ({split} split)")
    out = translate_all(model, a, seed=seed)
    if tuple(out.shape) != tuple(a.shape):
        raise ConfigError(f"{getattr(model, 'name', 'model')}.translate returned shape {tuple(out.shape)} for "
                          f"points of shape {tuple(a.shape)}")
    rows = {"model": alignment_row(out, a, labels, task), "identity": alignment_row(a, a, labels, task),
            "oracle": alignment_row(task.apply(a.double()), a, labels, task)}
    return {**rows["model"], "rows": rows, "model": getattr(model, "name", type(model).__name__),
            "task": splits.spec.name, "task_seed": task_seed, "split": split, "n": len(a),
            "units": "component accuracy: fraction of points; map error: squared data units",
            "definitions": {
                "component_accuracy": "fraction of translated A points whose most probable component of B's true "
                                      "mixture is the one T carries their own component to",
                "map_error": "mean over points of ||G(a) - T(a)||^2",
            }}


__all__ = ["alignment_scores", "alignment_row", "task_of"]
