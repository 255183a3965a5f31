"""The one protocol every model speaks.

    model.sample(n, context=None, temperature=1.0) -> Tensor     # every family
    model.log_prob(x, context=None) -> Tensor                    # per example, nats
    model.loss(batch) -> dict with "loss"                        # the training objective
    model.density   # "exact" | "bound" | "none": what log_prob means
    model.objective # "likelihood" | "adversarial": which training adapter fits

Data scale.  Models receive data on the dataset's own scale (see
:mod:`deepgen.data.spec`): for discrete data, ``log_prob`` is the log of a
discrete probability, so NLLs are comparable across families.

Models are plain ``torch.nn.Module``s, built from a :class:`DataSpec` and
keyword hyper-parameters; ``config()`` records both, which is enough to rebuild
the model exactly (see :mod:`deepgen.io`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from deepgen.data.spec import DataSpec


class GenerativeModel(nn.Module):
    """Base class.  Subclasses set ``name``, ``density``, ``family`` and implement the protocol."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    density: ClassVar[str] = "exact"
    objective: ClassVar[str] = "likelihood"
    description: ClassVar[str] = ""

    def __init__(self, spec: DataSpec, **params: Any):
        super().__init__()
        self.spec = spec
        self.params = dict(params)

    # --- protocol -------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Default objective: mean negative log-likelihood per example (nats)."""
        x, context = unpack_batch(batch)
        nll = -self.log_prob(x, context).mean()
        return {"loss": nll, "nll": nll.detach()}

    # --- bookkeeping ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"model": self.name, "params": dict(self.params), "data": self.spec.to_dict()}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def save_pretrained(self, directory) -> None:
        from deepgen.io import save_model

        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory) -> "GenerativeModel":
        from deepgen.io import load_model

        return load_model(directory)


def unpack_batch(batch):
    """(x, context) from a batch that is a tensor, a 1-tuple or an (x, context) pair."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if len(batch) == 1:
        return batch[0], None
    return batch[0], batch[1]
