"""Invertible 1x1 convolution with the LU parameterisation (Glow, Kingma & Dhariwal 2018).

A C x C matrix W mixes the channels at every position (a learned generalisation of a
channel permutation):

    W = P L (U + diag(sign(s) exp(log|s|)))
    z[:, :, i, j] = W x[:, :, i, j],        log|det dz/dx| = H W sum_c log|s_c|

P is a fixed permutation, L unit lower triangular, U strictly upper triangular (only
the strict triangles of the ``lower`` / ``upper`` parameters are used), sign(s) fixed.
W starts as a random rotation (P, L, U, s from the LU factorisation of a random
orthogonal matrix), so log|det| starts at 0.  The inverse uses two triangular solves.
Works on images (B, C, H, W) and on vectors (B, C) (then H W = 1: a linear layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijections.base import Bijection


class InvertibleConv1x1(Bijection):
    """1x1 convolution W = P L (U + diag(sign s exp(log|s|))) over ``num_features`` channels."""

    def __init__(self, num_features: int, generator: torch.Generator | None = None):
        super().__init__()
        c = int(num_features)
        q, _ = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())
        self.num_features = c

    def _factors(self):
        eye = torch.eye(self.num_features, dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> torch.Tensor:
        """W = P L U' (C, C)."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def inverse_weight(self) -> torch.Tensor:
        """W^{-1} = U'^{-1} L^{-1} P^T by triangular solves."""
        lower, upper = self._factors()
        eye = torch.eye(self.num_features, dtype=lower.dtype, device=lower.device)
        l_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        u_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        return u_inv @ l_inv @ self.perm.T

    @staticmethod
    def _mix(x, w):
        if x.dim() == 2:
            return x @ w.T
        return F.conv2d(x, w[:, :, None, None])

    def _logdet(self, x):
        positions = x[0, 0].numel()
        return (positions * self.log_s.sum()).expand(x.shape[0])

    def forward(self, x, context=None):
        return self._mix(x, self.weight()), self._logdet(x)

    def inverse(self, z, context=None):
        return self._mix(z, self.inverse_weight()), -self._logdet(z)
