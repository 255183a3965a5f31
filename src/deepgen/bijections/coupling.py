"""Affine coupling (NICE / RealNVP) with binary masks.

With a binary mask m (1 = passed through, 0 = transformed) and a conditioner
network NN that sees only the passed-through part,

    s, t = NN(m * x, context),     s <- bound * tanh(s / bound)
    y    = m * x + (1 - m) * (x * exp(s) + t)
    log|det dy/dx| = sum_i (1 - m_i) s_i

The Jacobian is triangular, so its determinant is the product of the diagonal.
The soft clamp keeps scales bounded (|s| < bound); the conditioner's last layer
is zero-initialised, so a fresh coupling is the identity.  ``affine=False`` gives
NICE's additive coupling (s = 0, volume preserving).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections.fused_coupling import fused_coupling
from deepgen.bijections.base import Bijection
from deepgen.ops import sum_except_batch


class AffineCoupling(Bijection):
    """Masked affine coupling. ``conditioner`` maps (m*x, context) to 2*C outputs (s, t) along dim 1."""

    def __init__(self, mask: torch.Tensor, conditioner: nn.Module, scale_bound: float = 3.0, affine: bool = True):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.conditioner = conditioner
        self.scale_bound = float(scale_bound)
        self.affine = affine
        self.fused = True  # False: always the plain autograd path (e.g. to take gradients of gradients)

    def _scale_shift(self, x_masked, context):
        h = self.conditioner(x_masked, context)
        s, t = h.chunk(2, dim=1)
        if self.affine:
            s = self.scale_bound * torch.tanh(s / self.scale_bound)
        else:
            s = torch.zeros_like(s)
        free = 1.0 - self.mask
        return s * free, t * free

    def fused_spec(self):
        """("coupling", static arguments, tensors) for :mod:`~deepgen.bijections.fused_stack`, or None when this
        coupling does not run fused (not a kept-to-free ReLU MLP conditioner, or ``fused`` is False)."""
        if not self.fused or not isinstance(self.conditioner, KeptToFree):
            return None
        layers = self.conditioner.fused_layers()
        if layers is None:
            return None
        c, params = self.conditioner, []
        for layer in layers:  # (the parameter dicts directly: this runs for every coupling at every step)
            params += (layer._parameters["weight"], layer._parameters["bias"])
        return ("coupling", (c._buffers["kept"], c._buffers["free"], self.scale_bound, self.affine), params)

    def forward(self, x, context=None):
        if isinstance(self.conditioner, KeptToFree):  # the same map, computed on the free coordinates only
            layers = self.conditioner.fused_layers() if self.fused else None
            if layers is not None:  # one autograd node (deepgen.bijections.fused_coupling)
                return fused_coupling(x, context, self.conditioner.kept, self.conditioner.free, self.scale_bound,
                                      self.affine, layers)
            free = self.conditioner.free
            s, t = self.conditioner.scale_shift(x, context)
            if not self.affine:
                return x.index_copy(1, free, x.index_select(1, free) + t), x.new_zeros(len(x))
            s = self.scale_bound * torch.tanh(s / self.scale_bound)
            return x.index_copy(1, free, x.index_select(1, free) * torch.exp(s) + t), s.sum(1)
        s, t = self._scale_shift(x * self.mask, context)
        y = x * torch.exp(s) + t  # s = t = 0 where mask = 1
        return y, sum_except_batch(s)

    def inverse(self, y, context=None):
        if isinstance(self.conditioner, KeptToFree):
            free = self.conditioner.free
            s, t = self.conditioner.scale_shift(y, context)
            if not self.affine:
                return y.index_copy(1, free, y.index_select(1, free) - t), y.new_zeros(len(y))
            s = self.scale_bound * torch.tanh(s / self.scale_bound)
            return y.index_copy(1, free, (y.index_select(1, free) - t) * torch.exp(-s)), -s.sum(1)
        s, t = self._scale_shift(y * self.mask, context)
        x = (y - t) * torch.exp(-s)
        return x, -sum_except_batch(s)


class KeptToFree(nn.Module):
    """Vector conditioner that sees only the kept coordinates and predicts (s, t) only for the free ones.

    ``net`` maps (B, #kept) [, context] to (B, 2 * #free); the outputs are scattered into the
    (B, 2D) layout ``AffineCoupling`` expects (zeros on kept coordinates).  This is the classic
    RealNVP / nflows parameterization: no weights are spent on inputs that are always zero.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module):
        super().__init__()
        self.register_buffer("kept", mask.nonzero().squeeze(1))
        self.register_buffer("free", (mask == 0).nonzero().squeeze(1))
        self.dim = mask.numel()
        self.net = net

    def fused_layers(self):
        """The net's linear layers when the net is a ReLU MLP on (kept coordinates, context) whose outputs are
        (s, t) of the free coordinates (what :func:`~deepgen.bijections.fused_coupling.fused_coupling`
        computes: s and t are its two halves, or its whole output is t for an additive coupling), else None."""
        return getattr(self.net, "relu_layers", lambda: None)()

    def scale_shift(self, x, context=None):
        """(s, t) of the free coordinates, (B, #free) each (s before the coupling's bound)."""
        return self.net(x.index_select(1, self.kept), context).chunk(2, dim=1)

    def forward(self, x, context=None):
        s, t = self.scale_shift(x, context)
        out = x.new_zeros(x.shape[0], 2 * self.dim)
        out[:, self.free] = s
        out[:, self.dim + self.free] = t
        return out


def alternating_mask(dim: int, parity: int) -> torch.Tensor:
    """Vector mask 1,0,1,0,... (parity 0) or 0,1,0,1,... (parity 1)."""
    return ((torch.arange(dim) + parity) % 2 == 0).float()


def checkerboard_mask(shape: tuple[int, int, int], parity: int) -> torch.Tensor:
    """Image mask (C, H, W) with (i + j + parity) even = 1, the same in every channel."""
    c, h, w = shape
    ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
    return ((ij + parity) % 2 == 0).float().expand(c, h, w).clone()


def channel_mask(shape: tuple[int, int, int], parity: int) -> torch.Tensor:
    """Image mask (C, H, W): first half of channels = 1 (parity 0) or second half (parity 1)."""
    c, h, w = shape
    first = (torch.arange(c) < c // 2).float()
    m = first if parity == 0 else 1.0 - first
    return m[:, None, None].expand(c, h, w).clone()
