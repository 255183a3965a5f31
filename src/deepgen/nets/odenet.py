"""Dynamics networks f(t, z [, c]) for continuous normalizing flows (FFJORD's concat-squash layers).

A concat-squash layer conditions every layer on the time t (and an optional context c)
through a gate and a bias computed from u = [t, c]:

    h_out = (W h + b) * sigmoid(G u + g) + H u

:class:`ODENet` stacks them into an MLP on vectors (B, D); :class:`ConvODENet` uses 3x3
convolutions on images (B, C, H, W), with the gate and bias broadcast over the pixels.
Smooth activations (tanh, softplus) keep the dynamics smooth, which adaptive solvers need.
``zero_init`` zeroes the last layer's weights and biases (W, b, H), so f = 0 at init and the
flow starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

ODE_ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "swish": nn.SiLU}


def _time_context(t: torch.Tensor, h: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """u = [t, c] per example: (B, 1 + c)."""
    u = t.to(h).reshape(1, 1).expand(h.shape[0], 1)
    return u if context is None else torch.cat([u, context.to(h)], 1)


class ConcatSquashLinear(nn.Module):
    """(W h + b) * sigmoid(G u + g) + H u with u = [t, c]; h (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, context_features: int = 0):
        super().__init__()
        self.layer = nn.Linear(in_features, out_features)
        self.hyper_gate = nn.Linear(1 + context_features, out_features)
        self.hyper_bias = nn.Linear(1 + context_features, out_features, bias=False)

    def forward(self, t, h, context=None):
        u = _time_context(t, h, context)
        return self.layer(h) * torch.sigmoid(self.hyper_gate(u)) + self.hyper_bias(u)

    def zero_(self) -> None:
        """Make the layer output 0 (the gate stays, so gradients still reach W and b)."""
        nn.init.zeros_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)
        nn.init.zeros_(self.hyper_bias.weight)


class ConcatSquashConv2d(nn.Module):
    """conv3x3(h) * sigmoid(G u + g) + H u with u = [t, c] broadcast over pixels; (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, context_features: int = 0):
        super().__init__()
        self.layer = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.hyper_gate = nn.Linear(1 + context_features, out_channels)
        self.hyper_bias = nn.Linear(1 + context_features, out_channels, bias=False)

    def forward(self, t, h, context=None):
        u = _time_context(t, h, context)
        gate = torch.sigmoid(self.hyper_gate(u))[:, :, None, None]
        return self.layer(h) * gate + self.hyper_bias(u)[:, :, None, None]

    def zero_(self) -> None:
        nn.init.zeros_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)
        nn.init.zeros_(self.hyper_bias.weight)


class _ConcatSquashStack(nn.Module):
    """layer_0 -> act -> ... -> layer_depth: every layer sees (t, c)."""

    def __init__(self, layers: list[nn.Module], activation: str, zero_init: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.act = ODE_ACTIVATIONS[activation]()
        if zero_init:
            self.layers[-1].zero_()

    def forward(self, t: torch.Tensor, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = z
        for i, layer in enumerate(self.layers):
            h = layer(t, h, context)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h


class ODENet(_ConcatSquashStack):
    """dz/dt = f(t, z [, c]) on vectors: (B, D) -> (B, D), ``depth`` hidden concat-squash layers of width ``hidden``."""

    def __init__(self, features: int, hidden: int = 64, depth: int = 3, context_features: int = 0,
                 activation: str = "tanh", zero_init: bool = True):
        widths = [features] + [hidden] * depth + [features]
        layers = [ConcatSquashLinear(a, b, context_features) for a, b in zip(widths[:-1], widths[1:])]
        super().__init__(layers, activation, zero_init)


class ConvODENet(_ConcatSquashStack):
    """dz/dt = f(t, z [, c]) on images: (B, C, H, W) -> (B, C, H, W), ``depth`` hidden 3x3 concat-squash
    conv layers of ``hidden`` channels."""

    def __init__(self, channels: int, hidden: int = 32, depth: int = 3, context_features: int = 0,
                 activation: str = "softplus", zero_init: bool = True):
        widths = [channels] + [hidden] * depth + [channels]
        layers = [ConcatSquashConv2d(a, b, context_features) for a, b in zip(widths[:-1], widths[1:])]
        super().__init__(layers, activation, zero_init)
