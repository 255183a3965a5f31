"""The order of training batches as a function of the step, so a resumed run continues it exactly.

Batch b of a run (b = 0, 1, ... over all epochs) is rows ``perm_e[j*B : (j+1)*B]`` of the training
split, with e = b // E, j = b % E, E = the batches per epoch (the last partial batch is dropped
when the split holds more than one batch) and ``perm_e`` the permutation drawn by a generator
seeded with (seed, stream, e).  Nothing depends on the global RNG or on how many batches were drawn
before: a run resumed at step s starts its loader at batch s and sees exactly the batches the
uninterrupted run saw.  Separate ``stream`` numbers give independent orders (a WGAN critic's extra
batches come from stream 1).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

_STREAM_STRIDE = 1_000_003  # keeps (seed, stream, epoch) seeds apart


class StepBatches(Sampler[list[int]]):
    """Batches of row indices: batch ``start``, ``start + 1``, ... of the deterministic order above.

    Each ``iter()`` runs to the end of one epoch (the first one from wherever the previous one
    stopped: ``start`` on the first call), as a DataLoader epoch does.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, stream: int = 0,
                 drop_last: bool | None = None):
        if n < 1 or batch_size < 1:
            raise ValueError(f"StepBatches needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size = int(n), int(min(batch_size, n))
        self.drop_last = n > self.batch_size if drop_last is None else bool(drop_last)
        self.per_epoch = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        self.seed, self.stream = int(seed), int(stream)
        self.position = int(start)  # the index of the next batch to yield

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * _STREAM_STRIDE * 7 + self.stream * _STREAM_STRIDE + epoch)
        return torch.randperm(self.n, generator=g)

    def batch(self, b: int) -> list[int]:
        """The row indices of batch ``b`` (a pure function of b)."""
        epoch, j = divmod(b, self.per_epoch)
        return self.permutation(epoch)[j * self.batch_size:(j + 1) * self.batch_size].tolist()

    def __iter__(self):
        epoch, j = divmod(self.position, self.per_epoch)
        perm = self.permutation(epoch)
        for k in range(j, self.per_epoch):
            self.position = epoch * self.per_epoch + k + 1
            yield perm[k * self.batch_size:(k + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.per_epoch
