"""DRAW's Gaussian-filterbank attention (Gregor et al. 2015, section 3).

An N x N grid of Gaussian filters is placed on a B x A image (B rows, A columns) by five
numbers that a network emits from a hidden state h:

    (g~_x, g~_y, log sigma^2, log delta~, log gamma) = W h + b

    g_x   = (A - 1) / 2 * (g~_x + 1)             grid centre, column (pixel coordinates 0..A-1)
    g_y   = (B - 1) / 2 * (g~_y + 1)             grid centre, row    (pixel coordinates 0..B-1)
    delta = (max(A, B) - 1) / (N - 1) * exp(log delta~)      stride between filters (N = 1: the scale alone)

Filter i (i = 0..N-1) is centred at

    mu_x^i = g_x + (i - (N - 1) / 2) delta,      mu_y^j = g_y + (j - (N - 1) / 2) delta

(the paper's g_x + (i - N/2 - 1/2) delta with 1-based i), with variance sigma^2, and the
filterbank matrices are, each row normalised to sum 1 over the image,

    F_X[i, a] = exp(-(a - mu_x^i)^2 / (2 sigma^2)) / Z_X^i,     Z_X^i = sum_a' exp(-(a' - mu_x^i)^2 / (2 sigma^2))
    F_Y[j, b] = exp(-(b - mu_y^j)^2 / (2 sigma^2)) / Z_Y^j

(computed as a softmax over a, which keeps it exact for tiny sigma).  Reading an N x N
patch from an image x (B x A) and writing an N x N patch w back onto the image are

    read(x)  = gamma F_Y x F_X^T                  (N x N)
    write(w) = 1 / gamma F_Y^T w F_X              (B x A)

so write is read's transpose up to gamma: <read(x), w> = gamma^2 <x, write(w)>.  With the grid
centred (g~ = 0), a stride of 1 on an N x N image and sigma -> 0, F_X = F_Y = I and read(x) = x.
A multi-channel image is read and written channel by channel with the same filterbank.
"""

from __future__ import annotations

import torch
from torch import nn


def filterbank(g_x: torch.Tensor, g_y: torch.Tensor, log_var: torch.Tensor, delta: torch.Tensor, n: int,
               height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_Y, F_X) of shapes (B, N, height) and (B, N, width) from per-example grid centres
    ``g_x``, ``g_y`` (pixel coordinates), ``log_var`` = log sigma^2 and stride ``delta``, each (B,)."""
    offsets = torch.arange(n, dtype=g_x.dtype, device=g_x.device) - (n - 1) / 2  # i - (N - 1)/2
    mu_x = g_x[:, None] + offsets * delta[:, None]  # (B, N)
    mu_y = g_y[:, None] + offsets * delta[:, None]
    inv_2var = 0.5 * torch.exp(-log_var)[:, None, None]
    a = torch.arange(width, dtype=g_x.dtype, device=g_x.device)
    b = torch.arange(height, dtype=g_x.dtype, device=g_x.device)
    f_x = torch.softmax(-(a - mu_x[..., None]) ** 2 * inv_2var, -1)  # (B, N, width), rows sum to 1
    f_y = torch.softmax(-(b - mu_y[..., None]) ** 2 * inv_2var, -1)  # (B, N, height)
    return f_y, f_x


def read_patch(x: torch.Tensor, f_y: torch.Tensor, f_x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """gamma F_Y x F_X^T on every channel: x (B, C, height, width) -> (B, C, N, N)."""
    return gamma[:, None, None, None] * torch.einsum("bjh,bchw,biw->bcji", f_y, x, f_x)


def write_patch(w: torch.Tensor, f_y: torch.Tensor, f_x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """1/gamma F_Y^T w F_X on every channel: w (B, C, N, N) -> (B, C, height, width)."""
    return torch.einsum("bjh,bcji,biw->bchw", f_y, w, f_x) / gamma[:, None, None, None]


class GaussianAttention(nn.Module):
    """The five attention numbers from a hidden state, and the N x N filterbank they define on a
    ``height`` x ``width`` image.  At initialisation (zero weights, zero bias) the grid is centred,
    spans the whole image (delta = (max(A, B) - 1) / (N - 1)), with sigma = 1 and gamma = 1."""

    def __init__(self, hidden: int, n: int, height: int, width: int):
        super().__init__()
        self.n, self.height, self.width = n, height, width
        self.params = nn.Linear(hidden, 5)
        nn.init.zeros_(self.params.weight)
        nn.init.zeros_(self.params.bias)

    def geometry(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """The grid from the raw five numbers (B, 5): {g_x, g_y, log_var, delta, gamma}, each (B,)."""
        gx, gy, log_var, log_delta, log_gamma = raw.unbind(-1)
        span = (max(self.height, self.width) - 1) / max(self.n - 1, 1)
        return {"g_x": (self.width - 1) / 2 * (gx + 1), "g_y": (self.height - 1) / 2 * (gy + 1),
                "log_var": log_var, "delta": span * torch.exp(log_delta), "gamma": torch.exp(log_gamma)}

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F_Y, F_X, gamma) for hidden states h (B, hidden)."""
        g = self.geometry(self.params(h))
        f_y, f_x = filterbank(g["g_x"], g["g_y"], g["log_var"], g["delta"], self.n, self.height, self.width)
        return f_y, f_x, g["gamma"]

    def read(self, h: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        """The N x N glimpse of each image (B, C, height, width) under the grid h sets, concatenated
        and flattened: (B, len(images) * C * N * N)."""
        f_y, f_x, gamma = self(h)
        return torch.cat([read_patch(x, f_y, f_x, gamma).flatten(1) for x in images], 1)

    def write(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Patch w (B, C, N, N) written onto the image under the grid h sets: (B, C, height, width)."""
        f_y, f_x, gamma = self(h)
        return write_patch(w, f_y, f_x, gamma)
