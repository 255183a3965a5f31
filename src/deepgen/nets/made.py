"""MADE's masked MLP (Germain, Gregor, Murray & Larochelle 2015): all D autoregressive
conditionals in one pass, reusable by MADE, MAF and IAF.

Every unit gets a *degree*: input dim d has degree pos(d) in 0..D-1 (its place
in the ordering), hidden units draw degrees in [min degree of the layer below,
D-2], and

    hidden mask:  M[j, i] = 1  iff  deg(j) >= deg(i)
    output mask:  M[d, j] = 1  iff  pos(d) >  deg(j)     (strict: no self-dependence)

so every path from input i to output d has deg increasing weakly then strictly,
i.e. pos(i) < pos(d).  Context features (if any) get degree -1 and reach every unit; with a
context, hidden degrees start at -1, so some units see the context alone and the first
dimension of the ordering depends on the context non-linearly (not only through the direct
connections).

The network holds ``num_masks`` orderings/degree sets (connectivity-agnostic
training picks one per step).  Orderings and degrees are buffers (saved with the
weights); the binary masks are derived from them and rebuilt after loading.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepgen.nets.masked import MaskedLinear


def made_connectivity(d: int, hidden: int, depth: int, num_masks: int, order: str, seed: int,
                      context: bool = False):
    """Orderings (M, D) and hidden degrees (M, depth, hidden), deterministic in ``seed``.

    ``order="natural"``: every ordering is 0..D-1 (mask sets differ only in hidden degrees);
    ``"random"``: the first natural, the others random permutations; ``"reversed"``: D-1..0.
    """
    g = torch.Generator().manual_seed(seed)
    orders, degrees = [], []
    for m in range(num_masks):
        if order == "reversed":
            orders.append(torch.arange(d - 1, -1, -1))
        else:
            natural = order == "natural" or m == 0
            orders.append(torch.arange(d) if natural else torch.randperm(d, generator=g))
        layers, low = [], -1 if context else 0
        for _ in range(depth):
            # Degrees in [low, D-2]: a unit of degree D-1 could feed no output.  low = the smallest
            # degree below, so no unit is cut off from every input.
            deg = torch.randint(low, max(d - 1, low + 1), (hidden,), generator=g)
            layers.append(deg)
            low = int(deg.min())
        degrees.append(torch.stack(layers) if layers else torch.zeros(0, hidden, dtype=torch.long))
    return torch.stack(orders), torch.stack(degrees)


def _rebuild_masks(module, _incompatible_keys) -> None:
    """After ``load_state_dict``: re-derive the masks from the loaded orderings and degrees."""
    module.install_masks()


class MaskedMLP(nn.Module):
    """x (B, D) [, context (B, c)] -> (B, D, K): K parameters of p(x_d | x_<d) for every dim d.

    ``hidden`` units in each of ``depth`` ReLU layers; ``direct`` adds masked input-to-output
    connections (a linear autoregressive term; with depth 0 the MLP is that already).
    Outputs are in the data's flattened order; ``orders[m]`` gives ordering m.
    """

    def __init__(self, d: int, k: int, hidden: int = 512, depth: int = 2, num_masks: int = 1,
                 order: str = "natural", direct: bool = True, seed: int = 0, context_features: int = 0):
        super().__init__()
        self.d, self.k, self.context_features = d, k, context_features
        orders, degrees = made_connectivity(d, hidden, depth, num_masks, order, seed, context_features > 0)
        self.register_buffer("orders", orders)           # (M, D): orders[m, t] = dim at position t
        self.register_buffer("hidden_degrees", degrees)  # (M, depth, hidden)
        sizes = [d + context_features] + [hidden] * depth + [d * k]
        masks = self.masks()
        # Masks are derived from the two buffers above, so they stay out of the saved weights.
        self.layers = nn.ModuleList(
            MaskedLinear(i, o, mask, persistent=False) for i, o, mask in zip(sizes[:-1], sizes[1:], masks[:-1])
        )
        self.direct = (MaskedLinear(sizes[0], sizes[-1], masks[-1], bias=False, persistent=False)
                       if direct and depth > 0 else None)
        self.register_load_state_dict_post_hook(_rebuild_masks)

    @property
    def num_masks(self) -> int:
        return self.orders.shape[0]

    def positions(self) -> torch.Tensor:
        """(M, D): positions[m, d] = place of dim d in ordering m (its input degree)."""
        return torch.argsort(self.orders, dim=1)

    def masks(self) -> list[torch.Tensor]:
        """(M, out, in) bool masks implied by the orderings and degrees: one per layer, then the direct one."""
        pos = self.positions()
        ctx = self.context_features
        inputs = torch.cat([pos, torch.full((len(pos), ctx), -1, dtype=pos.dtype, device=pos.device)], 1)
        out = pos.repeat_interleave(self.k, dim=1)  # output unit d*K + j belongs to dim d
        masks, prev = [], inputs
        for layer in range(self.hidden_degrees.shape[1]):
            deg = self.hidden_degrees[:, layer]
            masks.append(deg[:, :, None] >= prev[:, None, :])
            prev = deg
        masks.append(out[:, :, None] > prev[:, None, :])
        masks.append(out[:, :, None] > inputs[:, None, :])
        return masks

    def install_masks(self) -> None:
        masks = self.masks()
        for layer, mask in zip(self.layers, masks):
            layer.set_masks(mask)
        if self.direct is not None:
            self.direct.set_masks(masks[-1])

    def forward(self, h: torch.Tensor, mask_index: int = 0, context: torch.Tensor | None = None) -> torch.Tensor:
        """Conditional parameters (B, D, K) of inputs h (B, D) under mask set ``mask_index``."""
        b = len(h)
        if context is not None:
            h = torch.cat([h, context.to(h.dtype)], 1)
        out = h
        for i, layer in enumerate(self.layers):
            out = layer(F.relu(out) if i else out, mask_index)
        if self.direct is not None:
            out = out + self.direct(h, mask_index)
        return out.view(b, -1, self.k)
