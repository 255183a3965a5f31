"""``--compile``: the training loss through ``torch.compile`` (TorchInductor).

What is compiled is ``model.loss`` (the forward pass; AOTAutograd derives and compiles its backward):
the same function, traced once and turned into fused kernels (C++ on a CPU, Triton on a GPU).  The
update itself (guard, clipping, fused Adam, schedule) and everything else of the run (validation,
scoring, sampling) stay eager, so a compiled run writes the same kind of files as an eager one.

* The hand-fused autograd nodes of the coupling and MAF layers
  (:mod:`deepgen.bijections.fused_coupling`, :mod:`deepgen.bijections.fused_autoregressive`) are
  switched off in a compiled model: the compiler fuses the plain autograd graph itself, and it cannot
  see inside a hand-written backward.
* The first step pays for compilation (seconds to tens of seconds on a CPU; TorchInductor caches
  the result on disk, so the next run of the same model and shapes starts faster).  scores.json keeps
  it apart: ``first_step_s`` (the first step alone) and ``steady_steps_per_s`` (the other steps).
* A model the compiler cannot handle trains eagerly: the first failure is reported in one line on
  stderr and the run goes on without compilation (``compiled: false`` in scores.json).
* The random draws inside the loss (dequantization noise, reparameterised samples) come from the
  compiler's own generator, so a compiled run follows a different (equally valid) random path than
  an eager run of the same seed; two compiled runs of the same seed agree.
"""

from __future__ import annotations

import sys

import torch


def unfuse(model: torch.nn.Module) -> int:
    """Switch off every hand-fused autograd node in ``model`` (layers with a ``fused`` flag); returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(getattr(module, "fused", None), bool):
            module.fused = False
            count += 1
    return count


class CompiledLoss:
    """``model.loss`` compiled with ``torch.compile`` (static shapes), falling back to eager on a compiler error.

    Calls return what ``model.loss(batch)`` returns.  ``active`` says whether the compiled function is still
    in use; ``failure`` holds the compiler's one-line complaint after a fallback.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        unfuse(model)
        self._compiled = None  # made at the first call, when the model is on its device
        self.active = True
        self.failure: str | None = None

    def _compile(self):
        """``torch.compile(model.loss)``; on a CPU with TorchInductor's C++ wrapper (the generated kernels are called
        from C++, not Python: 5-8 % more steps/s on the small flows, a few seconds more to compile)."""
        param = next(self.model.parameters(), None)
        on_cpu = param is None or param.device.type == "cpu"
        return torch.compile(self.model.loss, dynamic=False, options={"cpp_wrapper": True} if on_cpu else None)

    def __call__(self, batch):
        if self.active:
            try:
                if self._compiled is None:
                    self._compiled = self._compile()
                return self._compiled(batch)
            except Exception as exc:  # noqa: BLE001 -- any compiler failure: train eagerly (a real error re-raises below)
                self.active = False
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.failure = f"{type(exc).__name__}: {first}"[:300]
                print(f"deepgen: --compile: torch.compile failed on model '{getattr(self.model, 'name', '?')}' "
                      f"({self.failure}); training without compilation", file=sys.stderr, flush=True)
        return self.model.loss(batch)
