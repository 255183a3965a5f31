"""Training batches: the order as a function of the step, and rows fetched a batch at a time.

Batch b of a run (b = 0, 1, ... over all epochs) is rows ``perm_e[j*G : (j+1)*G]`` of the training
split, with e = b // E, j = b % E, G = B x W the global batch (B rows per process, W processes),
E = the batches per epoch (the last partial batch is dropped when the split holds more than one
global batch) and ``perm_e`` the permutation drawn by a generator seeded with (seed, stream, e).
Process r of W takes the B rows ``r*B .. (r+1)*B`` of each global batch.  Nothing depends on the
global RNG or on how many batches were drawn before: a run resumed at step s starts its loader at
batch s and sees exactly the batches the uninterrupted run saw (with one process or several).
Separate ``stream`` numbers give independent orders (a WGAN critic's extra batches come from stream 1).
With ``group`` = K > 1 (one process only) each item is K consecutive batches, b .. b + K - 1, their row
indices concatenated (K x B rows, one gather): the trainer runs K optimizer steps on one item
(``steps_per_call``), and the batches are still those above, whatever K is.

:class:`TensorRows` holds the split's tensors and returns a whole batch from one index tensor
(``x[idx]``, one gather per tensor) instead of collating B examples one by one; :func:`batch_loader`
wraps both in a ``DataLoader`` that does no collation of its own.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

_STREAM_STRIDE = 1_000_003  # keeps (seed, stream, epoch) seeds apart


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process in the default process group; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StepBatches(Sampler[torch.Tensor]):
    """Index tensors of batch ``start``, ``start + 1``, ... of the deterministic order above.

    Each ``iter()`` runs to the end of one epoch (the first one from wherever the previous one
    stopped: ``start`` on the first call), as a DataLoader epoch does.  The process's rank and the
    world size are read when iteration starts (after DDP has set up its process group); ``rank`` /
    ``world`` fix them instead.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, stream: int = 0,
                 drop_last: bool | None = None, rank: int | None = None, world: int | None = None, group: int = 1):
        if n < 1 or batch_size < 1 or group < 1:
            raise ValueError(f"StepBatches needs n >= 1, batch_size >= 1 and group >= 1, got n={n}, "
                             f"batch_size={batch_size}, group={group}")
        self.group = int(group)
        self.n, self.batch_size = int(n), int(min(batch_size, n))
        self._drop_last = drop_last
        self.seed, self.stream = int(seed), int(stream)
        self.position = int(start)  # the index of the next batch to yield
        self._rank, self._world = rank, world

    @property
    def world(self) -> int:
        return self._world if self._world is not None else process_rank()[1]

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else process_rank()[0]

    @property
    def global_batch(self) -> int:
        """Rows per step over all processes (at most the split: each process then gets n // W rows)."""
        world = self.world
        return min(self.batch_size * world, self.n - self.n % world) if self.n >= world else self.n

    @property
    def drop_last(self) -> bool:
        return self.n > self.global_batch if self._drop_last is None else bool(self._drop_last)

    @property
    def per_epoch(self) -> int:
        g = self.global_batch
        return self.n // g if self.drop_last else -(-self.n // g)

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * _STREAM_STRIDE * 7 + self.stream * _STREAM_STRIDE + epoch)
        return torch.randperm(self.n, generator=g)

    def _rows(self, perm: torch.Tensor, j: int) -> torch.Tensor:
        g, world = self.global_batch, self.world
        rows = perm[j * g:(j + 1) * g]
        if world == 1:
            return rows
        per = -(-len(rows) // world)  # a last partial global batch is shared out as evenly as possible
        return rows[self.rank * per:(self.rank + 1) * per]

    def batch(self, b: int) -> torch.Tensor:
        """The row indices (this process's share) of batch ``b``: a pure function of b."""
        epoch, j = divmod(b, self.per_epoch)
        return self._rows(self.permutation(epoch), j)

    def __iter__(self):
        if self.group > 1:
            yield from self._groups()
            return
        per_epoch = self.per_epoch
        epoch, j = divmod(self.position, per_epoch)
        perm = self.permutation(epoch)
        for k in range(j, per_epoch):
            self.position = epoch * per_epoch + k + 1
            yield self._rows(perm, k)

    def _groups(self):
        """``len(self)`` items of ``group`` consecutive batches each (crossing epochs where they fall)."""
        per_epoch, cached = self.per_epoch, (None, None)
        for _ in range(len(self)):
            parts = []
            for b in range(self.position, self.position + self.group):
                epoch, j = divmod(b, per_epoch)
                if cached[0] != epoch:
                    cached = (epoch, self.permutation(epoch))
                parts.append(self._rows(cached[1], j))
            self.position += self.group
            yield torch.cat(parts)

    def __len__(self) -> int:
        # with groups: about one epoch of batches per pass (the trainer counts steps, not passes)
        return self.per_epoch if self.group == 1 else max(1, self.per_epoch // self.group)


class SliceBatches(Sampler[slice]):
    """Consecutive slices ``[i, i + B)`` of n rows (evaluation order); under DDP, every W-th slice."""

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size = int(n), max(1, int(batch_size))

    def _mine(self) -> range:
        rank, world = process_rank()
        return range(rank, -(-self.n // self.batch_size), world)

    def __iter__(self):
        for j in self._mine():
            yield slice(j * self.batch_size, min(self.n, (j + 1) * self.batch_size))

    def __len__(self) -> int:
        return len(self._mine())


class TensorRows(Dataset):
    """Aligned tensors (examples along dim 0) read a batch at a time: ``rows[idx]`` is the tuple of
    ``t[idx]`` for an index tensor or a slice ``idx`` (one gather per tensor, no per-example collation).
    A tensor may be any object that supports ``len`` and that indexing (e.g. a memory-mapped split)."""

    def __init__(self, *tensors):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"TensorRows needs tensors of equal length, got {[len(t) for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, idx):
        return tuple(t[idx] for t in self.tensors)


def _whole_batch(batch):
    """The DataLoader's collate function: the dataset already returned the whole batch."""
    return batch


def batch_loader(rows: TensorRows, batches: Sampler, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``rows`` that fetches each item of ``batches`` (an index tensor or a slice) with
    one ``rows[item]`` call."""
    # its own generator: creating a loader's iterator otherwise draws a seed from (and shifts) the global RNG
    return DataLoader(rows, sampler=batches, batch_size=None, collate_fn=_whole_batch, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(0))
