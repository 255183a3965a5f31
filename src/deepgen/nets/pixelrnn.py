"""The networks of PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): masked convolutions with
channel groups, the Row LSTM and the Diagonal BiLSTM layers.

Channel groups.  An image with C channels is generated in raster order with the channels inside a
pixel (R before G before B).  Every feature map splits its channels into C groups; group g at pixel
(i, j) may see every earlier pixel and the data channels c < g of pixel (i, j).  A masked convolution
keeps the weight from input channel a (group g_a) to output channel b (group g_b) at kernel offset
(di, dj) iff the offset is above the centre row, or left of the centre in the centre row, or at the
centre with

    mask A:  g_a <  g_b        (the data -> features input layer: a pixel never sees itself)
    mask B:  g_a <= g_b        (features -> features, and features -> the outputs of data channel g_b)

Row LSTM (one layer on an input map x with h features, rows r processed top to bottom):

    [o, f, i, g]_r = K_is (*) x_r + K_ss (*) h_{r-1} + b          K_is: 1 x 3 mask B, K_ss: 1 x 3 (full)
    c_r = sigmoid(f) c_{r-1} + sigmoid(i) tanh(g),    h_r = sigmoid(o) tanh(c_r)

(K_is (*) x is computed for every row in one convolution; h_{-1} = c_{-1} = 0).  Pixel (i, j) sees
a triangle above it, and its row only through the input-to-state convolution: a blind spot.

Diagonal BiLSTM.  The map is skewed, row r shifted right by r, (H, W) -> (H, W + H - 1), so that the
diagonals become columns; the LSTM runs over the columns left to right with

    [o, f, i, g]_col = K_is (*) x_col + K_ss (*) h_{col-1} + b     K_is: 1x1 mask B, K_ss: 2x1 over rows
    (row r of the previous column: the pixel to the left; row r - 1: the pixel above)

and is unskewed.  A second LSTM runs on the mirrored map (right to left), and its output is shifted
down one row so that pixel (i, j) reads the state of (i-1, j), which saw row i-1 right of j and the
rows above: the sum of the two directions sees every earlier pixel (no blind spot, for kernel >= 3).

Both layers add their input back (a residual connection), and a class-conditional model adds a
learned bias W c to the gates (c a one-hot label).

Maps are channel-last, (B, H, W, features), and every convolution is one matrix product over the
taps its mask can keep (on CPU several times faster than masked ``conv2d`` for these small maps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(channels: int, groups: int) -> torch.Tensor:
    """(channels,) group of each channel: contiguous blocks, as even as possible."""
    return torch.arange(channels) * groups // channels


def conv_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kh: int, kw: int, kind: str) -> torch.Tensor:
    """(out, in, kh, kw) bool mask of a causal convolution (see the module docstring), centre (kh//2, kw//2)."""
    ci, cj = kh // 2, kw // 2
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw, dtype=torch.bool)
    mask[:, :, :ci] = True
    mask[:, :, ci, :cj] = True
    if kind == "A":
        mask[:, :, ci, cj] = in_groups[None, :] < out_groups[:, None]
    else:
        mask[:, :, ci, cj] = in_groups[None, :] <= out_groups[:, None]
    return mask


def _uniform(shape, fan_in: int) -> nn.Parameter:
    bound = 1 / math.sqrt(max(fan_in, 1))
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class CausalConv(nn.Module):
    """A 'same'-padded kh x kw masked convolution (:func:`conv_mask`) on channel-last maps (B, H, W, in)
    -> (B, H, W, out): the taps with any kept weight (rows above the centre, the centre row up to the
    centre) are gathered and multiplied by one masked matrix, so masked weights get no gradient.  The
    mask is rebuilt from the constructor's arguments (not saved)."""

    def __init__(self, out_groups: torch.Tensor, in_groups: torch.Tensor, kernel: tuple[int, int], kind: str):
        super().__init__()
        kh, kw = kernel
        self.centre = (kh // 2, kw // 2)
        full = conv_mask(out_groups, in_groups, kh, kw, kind)
        self.taps = [(a, b) for a in range(kh) for b in range(kw) if full[:, :, a, b].any()]
        mask = torch.cat([full[:, :, a, b] for a, b in self.taps], 1) if self.taps \
            else torch.zeros(len(out_groups), 0, dtype=torch.bool)
        self.register_buffer("mask", mask, persistent=False)
        self.weight = _uniform(mask.shape, mask.shape[1])
        self.bias = _uniform(len(out_groups), mask.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        if not self.taps:
            return self.bias.expand(b, h, w, -1)
        ci, cj = self.centre
        padded = F.pad(x, (0, 0, cj, cj, ci, 0))  # rows below the centre are never read
        cols = torch.cat([padded[:, a:a + h, b_:b_ + w] for a, b_ in self.taps], -1)
        return F.linear(cols, self.weight * self.mask, self.bias)


def lstm_cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) from the 4h gate pre-activations (o, f, i, g along the last dim) and the previous cell c:
    c' = sigmoid(f) c + sigmoid(i) tanh(g),  h = sigmoid(o) tanh(c')."""
    h = gates.shape[-1] // 4
    ofi, g = gates.split([3 * h, h], -1)  # (split, not slicing: its backward is one cat, no zero-filled grads)
    o, f, i = torch.sigmoid(ofi).chunk(3, -1)
    cell = f * cell + i * torch.tanh(g)
    return o * torch.tanh(cell), cell


def _gate_groups(groups: torch.Tensor) -> torch.Tensor:
    """Groups of the 4h gate channels (o, f, i, g blocks of h): each gate follows its hidden unit."""
    return groups.repeat(4)


def _init_forget_bias(bias: torch.Tensor, hidden: int) -> None:
    with torch.no_grad():
        bias.view(-1, 4 * hidden).zero_()
        bias.view(-1, 4 * hidden)[:, hidden:2 * hidden] = 1.0  # remember by default


class RowLSTM(nn.Module):
    """One Row LSTM layer on (B, H, W, h) maps, with a residual connection (see the module docstring)."""

    def __init__(self, groups: torch.Tensor, row_kernel: int = 3, context_features: int = 0):
        super().__init__()
        h = len(groups)
        self.hidden, self.row_kernel = h, row_kernel
        self.input_to_state = CausalConv(_gate_groups(groups), groups, (1, row_kernel), "B")
        self.state_to_state = nn.Linear(row_kernel * h, 4 * h, bias=False)  # a 1 x k conv of the row above
        self.context = nn.Linear(context_features, 4 * h, bias=False) if context_features else None
        _init_forget_bias(self.input_to_state.bias, h)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, rows, width, h = x.shape
        gates_in = self.input_to_state(x)  # (B, H, W, 4h): every row at once
        if self.context is not None and context is not None:
            gates_in = gates_in + self.context(context.to(x.dtype))[:, None, None]
        k = self.row_kernel
        state = cell = x.new_zeros(b, width, h)
        out = []
        for r, gates in enumerate(gates_in.unbind(1)):  # (unbind: one backward stack, not H zero-filled grads)
            if r:
                padded = F.pad(state, (0, 0, k // 2, k // 2))
                gates = gates + self.state_to_state(torch.cat([padded[:, j:j + width] for j in range(k)], -1))
            state, cell = lstm_cell(gates, cell)
            out.append(state)
        return x + torch.stack(out, 1)


def skew(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W, C) -> (..., H, W + H - 1, C): row r shifted right by r (zeros elsewhere); by padding each
    row with H zeros, flattening and reading the result back W + H - 1 wide."""
    *lead, rows, width, c = x.shape
    flat = F.pad(x, (0, 0, 0, rows)).reshape(*lead, rows * (width + rows), c)
    return flat.split([rows * (width + rows - 1), rows], -2)[0].reshape(*lead, rows, width + rows - 1, c)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: (..., H, W + H - 1, C) -> (..., H, W, C)."""
    *lead, rows, skewed, c = x.shape
    flat = F.pad(x.reshape(*lead, rows * skewed, c), (0, 0, 0, rows))
    return flat.reshape(*lead, rows, skewed + 1, c).split([width, skewed + 1 - width], -2)[0]


class DiagonalBiLSTM(nn.Module):
    """The two diagonal LSTMs (left to right, and right to left shifted down one row), summed, plus the
    input (residual); both directions run in one loop over the skewed columns (a batched matmul).

    The right-to-left direction reads the data itself (``data``, C channels) beside the features, through
    an unmasked 1x1 conv: its output is shifted down a row, so row i - 1 is all in the past.  (In the
    paper's version it reads only the mask-A/B features, which never hold a pixel's own value at its own
    place, and the last pixel of row i - 1 is then unseen from the start of row i for every depth.)"""

    def __init__(self, groups: torch.Tensor, data_channels: int, context_features: int = 0):
        super().__init__()
        h = len(groups)
        self.hidden = h
        self.forward_input = CausalConv(_gate_groups(groups), groups, (1, 1), "B")
        self.backward_input = nn.Linear(h + data_channels, 4 * h)
        # 2x1 over the rows of the previous column, per direction: [from row r | from row r - 1] -> gates of row r
        self.state_to_state = _uniform((2, h, 8 * h), 2 * h)
        self.context = nn.Linear(context_features, 8 * h, bias=False) if context_features else None
        _init_forget_bias(self.forward_input.bias, h)
        _init_forget_bias(self.backward_input.bias, h)

    def forward(self, x: torch.Tensor, data: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, rows, width, h = x.shape
        right_in = self.backward_input(torch.cat([x, data], -1)).flip(2)  # mirrored: right to left
        gates_in = skew(torch.stack([self.forward_input(x), right_in]))  # (2, B, H, W + H - 1, 4h)
        if self.context is not None and context is not None:
            bias = self.context(context.to(x.dtype)).view(b, 2, 4 * h).transpose(0, 1)
            gates_in = gates_in + bias[:, :, None, None]
        state = cell = x.new_zeros(2, b, rows, h)
        out = []
        for col, gates in enumerate(gates_in.unbind(3)):
            if col:
                same, below = torch.bmm(state.reshape(2, b * rows, h), self.state_to_state).view(
                    2, b, rows, 8 * h).chunk(2, -1)  # row r's state feeds row r and row r + 1
                below = below.split([rows - 1, 1], 2)[0] if rows > 1 else below[:, :, :0]
                gates = gates + same + torch.cat([torch.zeros_like(gates[:, :, :1]), below], 2)
            state, cell = lstm_cell(gates, cell)
            out.append(state)
        left, right = unskew(torch.stack(out, 3), width)
        right = F.pad(right.flip(2), (0, 0, 0, 0, 1, 0))[:, :-1]  # row i reads row i - 1 (nothing right of (i, j))
        return x + left + right


class PixelRNNNet(nn.Module):
    """Image (B, C, H, W) in [-1, 1] -> (B, C, H, W, K) output parameters (K per data entry):

        mask-A kernel x kernel conv -> ``layers`` x (Row LSTM | Diagonal BiLSTM) -> ReLU -> 1x1 mask-B conv
        -> ReLU -> 1x1 mask-B conv to C K channels (channel c K + k: parameter k of data channel c)

    ``dropout`` acts on the last LSTM layer's output and the hidden 1x1 layer (training only).
    """

    def __init__(self, channels: int, out_per_channel: int, hidden: int, layers: int, kernel: int,
                 variant: str = "row", context_features: int = 0, dropout: float = 0.0):
        super().__init__()
        self.k = out_per_channel
        data_groups = torch.arange(channels)
        groups = channel_groups(hidden, channels)
        self.input = CausalConv(groups, data_groups, (kernel, kernel), "A")
        if variant == "row":
            self.layers = nn.ModuleList(RowLSTM(groups, 3, context_features) for _ in range(layers))
        else:
            self.layers = nn.ModuleList(DiagonalBiLSTM(groups, channels, context_features) for _ in range(layers))
        self.hidden = CausalConv(groups, groups, (1, 1), "B")
        self.out = CausalConv(data_groups.repeat_interleave(out_per_channel), groups, (1, 1), "B")
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            self.out.weight.mul_(0.1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        data = x.permute(0, 2, 3, 1)  # channel-last
        h = self.input(data)
        for layer in self.layers:
            h = layer(h, context) if isinstance(layer, RowLSTM) else layer(h, data, context)
        h = self.hidden(self.dropout(F.relu(h)))
        out = self.out(self.dropout(F.relu(h)))  # (B, H, W, C K)
        b, rows, width, _ = out.shape
        return out.view(b, rows, width, -1, self.k).permute(0, 3, 1, 2, 4)
