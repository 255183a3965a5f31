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


class MADEStepper:
    """A :class:`MaskedMLP` evaluated one ordering position at a time, for sampling: n rows, row r under mask set
    ``which[r]``, costing about one forward pass in all instead of one per position.

    A hidden unit of degree v depends only on the inputs of degree <= v (the context, degree -1, and the dims at
    positions 0..v of its ordering), so it is computed once, right after x at position v is known; the K outputs
    of the dim at position t need only the last stream's units of degree <= t-1, the inputs at positions < t,
    and the K rows of the output (and direct) weights that belong to that dim.

    Every stream (the inputs, then each hidden layer after its ReLU) is held per mask set with its units sorted
    by degree (the inputs: context, then the dims in the ordering), so "degree <= v" is a prefix and a step reads
    only that prefix's columns of the weights.  A stream starts at zero and a unit is written only when its
    degree comes, so at any moment its nonzero entries are exactly those that a unit computed now may connect
    to: the weights need no mask, a masked-out connection meeting an exact zero, and the conditionals equal a
    full masked pass's up to rounding.  The rows of each mask set in use are padded to one batch and every step
    is a batched matrix product over the mask sets; the weights are read at each step, so they are the current.

    Use, for t = 0..D-1 in turn: ``params(t)`` (n, K) for the dims ``orders[which, t]`` (may be skipped), then
    ``feed(t, values)`` with the network inputs (n,) of those dims.  It writes into its buffers in place, so it
    is for drawing samples without gradients (under ``torch.no_grad()``), not for a differentiable inverse.
    """

    def __init__(self, net: MaskedMLP, which: torch.Tensor, context: torch.Tensor | None, dtype: torch.dtype):
        device = net.orders.device
        which = which.to(device)
        self.net, self.d, self.c, self.k = net, net.d, net.context_features, net.k
        masks, group = torch.unique(which, return_inverse=True)  # the mask sets in use, each row's group
        g = len(masks)
        counts = torch.bincount(group, minlength=g)
        rows = int(counts.max())
        by_group = torch.argsort(group, stable=True)
        rank = torch.empty_like(group)  # each row's place within its group
        rank[by_group] = torch.arange(len(which), device=device) - (torch.cumsum(counts, 0) - counts)[group[by_group]]
        self.slot = group * rows + rank  # row r's place in the padded (g * rows) layout
        self.dims = net.orders[masks]  # (g, D): the dim of each group at each step
        # stream 0, the inputs: context first (degree -1), then the dims in each group's ordering; streams are
        # held transposed, (g, units, rows), and ``cols[i]`` (g, width) gives the network's unit of each place
        ctx_units = torch.arange(self.d, self.d + self.c, device=device).expand(g, -1)
        self.cols = [torch.cat([ctx_units, self.dims], 1)]
        self.ends = [[self.c + v + 1 for v in range(-1, self.d)]]  # places of degree <= v, v = -1..D-1
        self.streams = [torch.zeros(g, self.c + self.d, rows, device=device, dtype=dtype)]
        if self.c:
            self.streams[0][group, :self.c, rank] = context.to(dtype)
        self.feed_at = (group * (self.c + self.d) + self.c) * rows + rank  # row r's input at position 0, flat
        self.rows = rows
        self.blocks = []  # per hidden layer: units (g, V, S) of each degree, their places (g, V, S), sizes S_v
        for layer in range(net.hidden_degrees.shape[1]):
            self._add_stream(net.hidden_degrees[masks, layer], rows, dtype)
        self.advance(-1)  # units of degree -1 see the context only

    def _add_stream(self, deg: torch.Tensor, rows: int, dtype) -> None:
        """A hidden layer's stream (g, H + 1, rows), its units sorted by degree (place H: a dump for padding),
        and for each degree v = -1..D-1 its units per group, padded to the largest group, with their places."""
        g, hidden = deg.shape
        sorted_deg, order = torch.sort(deg, dim=1, stable=True)
        values = torch.arange(-1, self.d, device=deg.device).expand(g, -1).contiguous()
        first = torch.searchsorted(sorted_deg, values)
        last = torch.searchsorted(sorted_deg, values, right=True)
        widest = max(int((last - first).max()), 1)
        place = first[:, :, None] + torch.arange(widest, device=deg.device)
        units = order.gather(1, place.clamp(max=hidden - 1).view(g, -1)).view(g, -1, widest)
        place = torch.where(place < last[:, :, None], place, torch.full_like(place, hidden))
        place = place + (hidden + 1) * torch.arange(g, device=deg.device)[:, None, None]  # in the flat (g * (H+1))
        self.blocks.append((units, place, (last - first).amax(0).tolist()))
        self.cols.append(order)
        self.ends.append(last.amax(0).tolist())
        self.streams.append(torch.zeros(g, hidden + 1, rows, device=deg.device, dtype=dtype))

    def _product(self, weight_rows: torch.Tensor, bias_rows, src: int, width: int) -> torch.Tensor:
        """(g, R, rows): bias + weight_rows (g, R, in) restricted to the first ``width`` places of stream ``src``
        times those places."""
        block = weight_rows.gather(2, self.cols[src][:, None, :width].expand(-1, weight_rows.shape[1], -1))
        stream = self.streams[src][:, :width]
        if bias_rows is None:
            return torch.bmm(block, stream)
        return torch.baddbmm(bias_rows[:, :, None], block, stream)

    def advance(self, v: int) -> None:
        """Compute the hidden units of degree v in every layer (their inputs, of degree <= v, are all known)."""
        for i, (units, places, sizes) in enumerate(self.blocks):
            size = sizes[v + 1]
            if size == 0:
                continue
            layer, rows_v = self.net.layers[i], units[:, v + 1, :size].reshape(-1)
            weight = layer.weight.index_select(0, rows_v).view(len(units), size, -1)
            out = self._product(weight, layer.bias.index_select(0, rows_v).view(len(units), size), i,
                                self.ends[i][v + 1])
            stream = self.streams[i + 1]
            stream.view(-1, self.rows).index_copy_(0, places[:, v + 1, :size].reshape(-1),
                                                    out.relu_().view(-1, self.rows))

    def params(self, t: int) -> torch.Tensor:
        """(n, K): the parameters of p(x_d | x_<d) for d = orders[which[r], t], row r (the MaskedMLP's output)."""
        net, d, k = self.net, self.d, self.k
        dims, last, top = self.dims[:, t], net.layers[-1], len(self.streams) - 1
        g = len(dims)
        out = self._product(last.weight.view(d, -1).index_select(0, dims).view(g, k, -1),
                            last.bias.view(d, k).index_select(0, dims), top, self.ends[top][t])
        if net.direct is not None:
            out = out + self._product(net.direct.weight.view(d, -1).index_select(0, dims).view(g, k, -1), None, 0,
                                      self.c + t)
        return out.transpose(1, 2).reshape(-1, k).index_select(0, self.slot)

    def feed(self, t: int, values: torch.Tensor) -> None:
        """Set the network inputs (n,) at position t (row r: dim orders[which[r], t]), then compute the hidden
        units of degree t."""
        inputs = self.streams[0]
        inputs.view(-1).index_copy_(0, self.feed_at + t * self.rows, values.to(inputs.dtype))
        self.advance(t)
