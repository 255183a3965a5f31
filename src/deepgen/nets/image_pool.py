"""CycleGAN's history of generated images (Shrivastava et al. 2017; Zhu et al. 2017, sec. 4).

The discriminators are updated on fakes drawn from a pool of past generator outputs
rather than only on the latest batch, which damps the oscillation of the game.  For
each fake of a batch, in order:

* while the pool holds fewer than ``capacity`` (50) examples, the fake is stored and returned;
* once it is full, with probability 1/2 the fake replaces a uniformly chosen stored example,
  which is returned in its place; otherwise the fake itself is returned.

(With several fakes of one batch drawing the same slot, the slot keeps one of them and each
gets back the slot's earlier content; the reference code, one fake at a time, would hand the
second one the first.)  Everything is detached: the pool feeds D's update only.

The pool is training-time state, not part of the model: its storage is a *non-persistent*
buffer (it follows ``.to(device)`` / ``.double()`` but is not in ``state_dict``), so saved
weights and translations do not depend on it and a loaded or resumed model starts with an
empty pool (as every run does).  Its random choices use the global torch RNG, so a seeded
run is reproducible.
"""

from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """A pool of up to ``capacity`` past examples of shape ``shape``; :meth:`query` is the update rule above."""

    def __init__(self, capacity: int, shape):
        super().__init__()
        self.capacity = int(capacity)
        self.register_buffer("images", torch.zeros(self.capacity, *shape), persistent=False)
        self.filled = 0

    def reset(self) -> None:
        """Empty the pool."""
        self.filled = 0

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """The examples D should see for this batch of ``fakes`` (B, *shape); updates the pool."""
        fakes = fakes.detach()
        if self.capacity == 0:
            return fakes
        out = fakes.clone()
        fakes = fakes.to(self.images.dtype)
        take = min(self.capacity - self.filled, len(fakes))
        if take > 0:  # filling: store and return the first fakes as they are
            self.images[self.filled:self.filled + take] = fakes[:take]
            self.filled += take
        rest = len(fakes) - take
        if rest > 0:
            swap = torch.rand(rest, device=self.images.device) < 0.5
            slots = torch.randint(self.capacity, (rest,), device=self.images.device)
            rows = torch.nonzero(swap).squeeze(1)
            if len(rows):
                slots = slots[rows]
                out[take + rows] = self.images[slots].to(out.dtype)
                self.images[slots] = fakes[take + rows]
        return out
