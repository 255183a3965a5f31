"""The bijection contract and composition.

A bijection f maps x to y = f(x) and reports the log-determinant of its
Jacobian per example:

    y, log|det df/dx| = f.forward(x, context)
    x, log|det df^-1/dy| = f.inverse(y, context)

so that the change of variables reads log p_X(x) = log p_Y(f(x)) + log|det df/dx|.
``context`` is an optional conditioning tensor threaded through every bijection.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from deepgen.bijections.fused_stack import fused_specs, plan_of, run_fused, run_fused_normal_log_prob


class Bijection(nn.Module):
    """Base class: subclasses implement ``forward`` and ``inverse``, each returning (output, logabsdet)."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None):  # pragma: no cover - abstract
        raise NotImplementedError


class Compose(Bijection):
    """f = f_n o ... o f_1; log|det| adds up along the chain."""

    def __init__(self, bijections: Iterable[Bijection]):
        super().__init__()
        self.bijections = nn.ModuleList(bijections)

    def forward(self, x, context=None):
        """Runs of two or more consecutive fusable layers go through one autograd node
        (:mod:`deepgen.bijections.fused_stack`); the others are called one by one."""
        return self._forward(x, context, fused_specs(self.bijections))

    def _forward(self, x, context, specs: list):
        total = None  # a fused run's log|det| is a fresh (B,) tensor: the first one starts the sum as it is
        i, n = 0, len(specs)
        while i < n:
            j = i
            while j < n and specs[j] is not None:
                j += 1
            if j - i >= 2:
                x, ld = run_fused(specs[i:j], x, context)
                i = j
            else:
                x, ld = self.bijections[i](x, context)
                i += 1
                if total is None:  # (any other layer's may be a scalar, or shared: add it to zeros)
                    total = x.new_zeros(x.shape[0])
            total = ld if total is None else total + ld
        return x, x.new_zeros(x.shape[0]) if total is None else total

    def _specs(self) -> tuple[list, bool]:
        """The layers' fused specs, and whether the whole chain is one run of two or more fusable layers."""
        specs = fused_specs(self.bijections)
        return specs, len(specs) >= 2 and all(spec is not None for spec in specs)

    def normal_log_prob(self, x, context=None):
        """log N(f(x); 0, I) + log|det df/dx| as one autograd node when the whole chain is one run of two or
        more fusable layers (:class:`~deepgen.bijections.fused_stack.FusedNormalLogProb`); else None."""
        specs, whole = self._specs()
        return run_fused_normal_log_prob(specs, x, context) if whole else None

    def fused_plan(self) -> tuple[tuple, list] | None:
        """(plan, tensors) of the whole chain as one fused run (for
        :func:`~deepgen.bijections.fused_stack.normal_log_prob_and_grads`), or None when it is not one."""
        specs, whole = self._specs()
        return plan_of(specs) if whole else None

    def normal_log_prob_or_forward(self, x, context=None):
        """(:meth:`normal_log_prob`, None) when the whole chain fuses, else (None, ``forward(x, context)``): what a
        flow with a N(0, I) base needs, the layers' specs built once either way."""
        specs, whole = self._specs()
        if whole:
            return run_fused_normal_log_prob(specs, x, context), None
        return None, self._forward(x, context, specs)

    def inverse(self, y, context=None):
        total = y.new_zeros(y.shape[0])
        for b in reversed(self.bijections):
            y, ld = b.inverse(y, context)
            total = total + ld
        return y, total


class Inverse(Bijection):
    """The inverse bijection: swaps ``forward`` and ``inverse`` (e.g. IAF = Inverse(MAF))."""

    def __init__(self, bijection: Bijection):
        super().__init__()
        self.bijection = bijection

    def forward(self, x, context=None):
        return self.bijection.inverse(x, context)

    def inverse(self, y, context=None):
        return self.bijection(y, context)
