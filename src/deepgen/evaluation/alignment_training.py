"""Alignment for training: is a translator A -> B a way to train a classifier for domain B from labelled A?

The setting (lecture seed 004, "uses of distribution alignment for training"): labelled examples of
domain A (summer images), few or no labels in domain B (winter).  Augment the training set with A
translated to B by the model, G(a), keeping a's label, and test on real B.  Three classifiers, each the
small image classifier of :mod:`deepgen.evaluation.sample_quality` trained by its
:func:`~deepgen.evaluation.sample_quality.train_feature_net` (same architecture, AdamW with cosine
decay, ``steps`` seeded steps of ``batch_size``, no binarized inputs), each tested on the labelled B
examples of the test split:

* ``a_only``:            trained on {(a_i, y_i)}, the labelled domain-A sources of the train split;
* ``a_plus_translated``: trained on {(a_i, y_i)} and {(G(a_i), y_i)};
* ``b_only`` (reference, what labels in B would give): trained on the labelled B examples of the
  train split {(b_j, y_j)}.

Accuracy = (1 / N) sum_j 1[argmax_c f(b_j)_c = y_j] over the N test examples of B (fraction, 0..1).
"""

from __future__ import annotations

import torch

from deepgen.data.spec import Splits
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.sample_quality import TRAIN_SETTINGS, train_feature_net
from deepgen.evaluation.translation import check_translator, sources, translate_all, translation_of

STEPS = 400  # short: the comparison, not the best classifier


def _b_labels(splits: Splits) -> dict[str, torch.Tensor]:
    if not splits.has_labels:
        raise DataError(f"alignment for training: dataset '{splits.spec.name}' has no class labels for its "
                        "domain-B examples (needed to test on real B)")
    return {s: splits.split_labels(s) for s in ("train", "val", "test")}


def accuracy_on_b(splits: Splits, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int,
                       batch_size: int) -> float:
    """Accuracy on the real B test examples of a classifier trained on (x, y) by :func:`train_feature_net`."""
    labels = _b_labels(splits)
    training = Splits(splits.spec, x.float(), splits.val, splits.test,
                      labels={"train": y.long(), "val": labels["val"], "test": labels["test"]},
                      classes=splits.classes)
    _, meta = train_feature_net(training, seed=seed, steps=steps, batch_size=batch_size, binary_fraction=0.0,
                                name="alignment-for-training")
    return meta["accuracy"]["test"]


def alignment_for_training(model, splits: Splits, seed: int = 0, steps: int = STEPS,
                           batch_size: int = TRAIN_SETTINGS["batch_size"], reference: bool = True) -> dict:
    """Test accuracies on real B of classifiers trained on A only, on A plus G(A) and (``reference``) on
    labelled B (see the module docstring); with the protocol."""
    check_translator(model)
    if not splits.spec.is_image:
        raise ConfigError(f"alignment for training: dataset '{splits.spec.name}' holds vectors; the classifier "
                          "takes images (C, H, W)")
    tr = translation_of(splits)
    if "train" not in tr.source_labels:
        raise DataError(f"alignment for training: dataset '{splits.spec.name}' has no labels for its domain-A "
                        "sources (Translation.source_labels['train'])")
    a, y = sources(splits, "train"), tr.source_labels["train"]
    b_labels = _b_labels(splits)
    translated = translate_all(model, a, seed=seed)
    result = {
        "a_only": accuracy_on_b(splits, a, y, seed, steps, batch_size),
        "a_plus_translated": accuracy_on_b(splits, torch.cat([a, translated]), torch.cat([y, y]), seed, steps,
                                                batch_size),
    }
    if reference:
        result["b_only"] = accuracy_on_b(splits, splits.train, b_labels["train"], seed, steps, batch_size)
    dom_a, dom_b = tr.domains
    result.update({
        "model": getattr(model, "name", type(model).__name__), "task": splits.spec.name,
        "domains": [dom_a, dom_b], "n_train_a": len(a), "n_test_b": len(splits.test), "seed": seed,
        "steps": steps, "batch_size": batch_size,
        "units": "accuracy on the real domain-B test examples (fraction)",
        "definitions": {"a_only": f"classifier trained on labelled {dom_a} (train split)",
                        "a_plus_translated": f"trained on labelled {dom_a} plus {dom_a} translated to {dom_b} by "
                                             "the model, with the source labels",
                        "b_only": f"reference: trained on labelled real {dom_b} (train split)"},
    })
    return result


def alignment_table(result: dict) -> str:
    """A markdown table of :func:`alignment_for_training`."""
    dom_a, dom_b = result["domains"]
    rows = [("a_only", f"{dom_a} only"), ("a_plus_translated", f"{dom_a} + {dom_a}->{dom_b} by {result['model']}"),
            ("b_only", f"real {dom_b} (reference)")]
    lines = [f"{result['task']}: classifier ({result['steps']} steps) tested on real {dom_b}, test split "
             f"(n = {result['n_test_b']})", "", "| trained on | accuracy on real B |", "|---|---|"]
    lines += [f"| {label} | {result[key]:.3f} |" for key, label in rows if key in result]
    return "\n".join(lines) + "\n"


__all__ = ["alignment_for_training", "alignment_table", "accuracy_on_b", "STEPS"]
