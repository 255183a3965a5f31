"""Masked linear layers: the building block of MADE-style autoregressive networks.

A masked layer computes

    y = x (W * M_k)^T + b,

with ``*`` the element-wise product and ``M_k`` one of a stack of fixed binary
connectivity masks (shape ``(num_masks, out, in)``), chosen per call.  The mask
is applied by multiplication in ``forward``, never by zeroing the weights, so a
masked-out weight has zero gradient and can never leak information even if an
optimiser (e.g. with weight decay) touches it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed binary mask ``mask[index]``.

    ``masks``: a bool/0-1 tensor of shape ``(out, in)`` or a stack ``(K, out, in)``
    of ``K`` alternative connectivity patterns, held in the ``mask`` buffer.
    ``persistent=False`` leaves the buffer out of ``state_dict`` (for owners that
    rebuild the masks from smaller saved tensors, like :class:`~deepgen.nets.made.MaskedMLP`).
    """

    def __init__(self, in_features: int, out_features: int, masks: torch.Tensor, bias: bool = True,
                 persistent: bool = True):
        super().__init__(in_features, out_features, bias)
        # bool keeps the stack 4x smaller than float; ``weight * mask`` promotes to the weight's dtype.
        self.register_buffer("mask", self._checked(masks), persistent=persistent)
        self._float_masks: torch.Tensor | None = None  # the masks in the weight's dtype (built on first use)
        self._full_masks: tuple | None = None  # (mask buffer, dtype, device, each mask or None where all ones)

    def _checked(self, masks: torch.Tensor) -> torch.Tensor:
        masks = torch.as_tensor(masks).to(dtype=torch.bool)
        if masks.ndim == 2:
            masks = masks.unsqueeze(0)
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (self.out_features, self.in_features):
            raise ValueError(f"masks must have shape (out, in) = ({self.out_features}, {self.in_features}) "
                             f"or (K, out, in), got {tuple(masks.shape)}")
        return masks.clone()

    @property
    def num_masks(self) -> int:
        return self.mask.shape[0]

    def set_masks(self, masks: torch.Tensor) -> None:
        """Replace the mask stack (same layer shape; the number of masks may change)."""
        self.mask = self._checked(masks).to(self.weight.device)
        self._float_masks = None

    def float_mask(self, index: int = 0) -> torch.Tensor:
        """Mask ``index`` as 0/1 in the weight's dtype and device, kept between calls (a float weight times a bool
        mask would convert the mask on every call)."""
        cached = self._float_masks
        w = self.weight
        if cached is None or cached.dtype != w.dtype or cached.device != w.device or cached.shape != self.mask.shape:
            cached = self._float_masks = self.mask.to(device=w.device, dtype=w.dtype)
        return cached[index]

    def fused_mask(self, index: int = 0) -> torch.Tensor | None:
        """:meth:`float_mask`, or None when every connection of mask ``index`` is on (e.g. between the hidden
        layers of a MADE on 2-D data): a fused layer then skips ``W * M`` and ``g_W * M``.  Kept until the mask
        buffer is replaced (``set_masks``, ``.to()``) or the weight changes dtype or device: a fused flow asks
        for every layer's mask at every step."""
        w = self._parameters["weight"]
        kept = self._full_masks
        if kept is None or kept[0] is not self._buffers["mask"] or kept[1] != w.dtype or kept[2] != w.device:
            self.float_mask(0)
            kept = self._full_masks = (self._buffers["mask"], w.dtype, w.device,
                                       [None if bool(m.all()) else m for m in self._float_masks])
        return kept[3][index]

    def fused_triple(self, index: int = 0) -> tuple:
        """(weight, :meth:`fused_mask`, bias)."""
        return self._parameters["weight"], self.fused_mask(index), self._parameters["bias"]

    def forward(self, x: torch.Tensor, index: int = 0) -> torch.Tensor:
        return F.linear(x, self.weight * self.float_mask(index), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_masks={self.num_masks}"
