"""Class labels as a model's context: one-hot vectors, the label prior, the record a run keeps.

A run trained with ``context: label`` models p(x | y) with the context c = one_hot(y)
(K classes, K = ``context_features``).  The label prior p(y) is the class frequency
of the training split; with it a conditional model gives

    log p(x) = log sum_y p(x | y) p(y)           (marginal likelihood)
    y_hat    = argmax_y p(x | y) p(y)            (a generative classifier)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepgen.errors import ConfigError, DataError

CONTEXT_KINDS = ("label",)


@dataclass(frozen=True)
class LabelContext:
    """The label space of a conditional run: class names (index = label id) and training counts."""

    classes: tuple[str, ...]
    train_counts: tuple[int, ...]

    @classmethod
    def from_splits(cls, splits) -> "LabelContext":
        if not splits.has_labels:
            raise DataError(f"dataset '{splits.spec.name}' has no labels, so it cannot give a label context; "
                            "use a labelled dataset or give labels (see README: 'Your own data')")
        return cls(tuple(str(c) for c in splits.classes), tuple(int(v) for v in splits.class_counts().tolist()))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """(N,) int labels -> (N, K) float one-hot contexts."""
        labels = torch.as_tensor(labels).long()
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"labels must be in 0..{self.num_classes - 1}, got values in "
                            f"[{int(labels.min())}, {int(labels.max())}]")
        return torch.nn.functional.one_hot(labels, self.num_classes).float()

    def log_prior(self) -> torch.Tensor:
        """log p(y) from the training frequencies, (K,) float64 (a class absent from training gets -inf)."""
        counts = torch.tensor(self.train_counts, dtype=torch.float64)
        return torch.log(counts / counts.sum())

    def index(self, name: str) -> int:
        """The label id of class ``name`` (its string form, e.g. "3")."""
        if str(name) in self.classes:
            return self.classes.index(str(name))
        raise ConfigError(f"--label {name!r}: not a class of this run (classes: {', '.join(self.classes)})")

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n labels drawn from the training frequencies."""
        probs = torch.tensor(self.train_counts, dtype=torch.float64)
        return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)

    def to_dict(self) -> dict:
        return {"kind": "label", "classes": list(self.classes), "train_counts": list(self.train_counts)}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.yaml") -> "LabelContext":
        try:
            if d.get("kind") != "label":
                raise ValueError(f"kind {d.get('kind')!r}")
            classes = tuple(str(c) for c in d["classes"])
            counts = tuple(int(c) for c in d["train_counts"])
            if len(classes) != len(counts) or not classes:
                raise ValueError("classes and train_counts differ in length")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: malformed 'context' block ({exc}); expected kind: label, classes, "
                              "train_counts") from None
        return cls(classes, counts)

    def entropy_nats(self) -> float:
        """H(y) of the label prior in nats (the most a label can tell about x)."""
        p = [c / sum(self.train_counts) for c in self.train_counts if c]
        return -sum(q * math.log(q) for q in p)
