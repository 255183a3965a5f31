"""Flow posteriors for the VAE: q(z | x) = a flow of K steps applied to a diagonal Gaussian draw.

    z_0 ~ N(mu(x), diag sigma(x)^2),   z_k = f_k(z_{k-1}; h(x)),   z = z_K
    log q(z | x) = log N(z_0; mu, sigma) - sum_k log|det dz_k / dz_{k-1}|

The KL term of the ELBO then has no closed form and is estimated with the same draw:
KL ~ log q(z | x) - log p(z).

``planar`` (Rezende & Mohamed 2015): amortized planar steps z_k = z_{k-1} + u_hat tanh(w.z_{k-1} + b),
whose u, w, b (per example) are extra outputs of the encoder, with u_hat constrained so that
w.u_hat >= -1 (invertible); log|det| = log(1 + w.u_hat h').

``iaf`` (Kingma et al. 2016): inverse autoregressive steps z_k = (z_{k-1} - m_k) exp(-a_k), with
(m_k, a_k) from a MADE over z_{k-1} that also reads an encoder context h(x) (autoregressive in
z_{k-1}, so log|det| = -sum_i a_k,i: one pass per step); orderings reversed between steps, the
last layer of each MADE zero-initialised (a fresh IAF posterior is the Gaussian one).
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections import planar_map
from deepgen.models.flows.maf import autoregressive_layers

POSTERIORS = ("gaussian", "planar", "iaf")


class FlowPosterior(nn.Module):
    """K flow steps on the latent (B, d), driven by ``features`` extra encoder outputs per example."""

    def __init__(self, kind: str, latent: int, layers: int, hidden: int, seed: int = 0):
        super().__init__()
        self.kind, self.latent, self.layers = kind, latent, layers
        if kind == "planar":
            self.features = layers * (2 * latent + 1)  # u, w (d each) and b per step
        elif kind == "iaf":
            self.features = hidden  # the context h(x) every MADE reads
            self.steps = nn.ModuleList(autoregressive_layers(latent, layers, hidden, 1, "reversed", 3.0, seed, hidden))
        else:
            raise ValueError(f"unknown flow posterior {kind!r}")

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_K, sum_k log|det dz_k / dz_{k-1}|) from z_0 (B, d) and the encoder features h (B, features)."""
        log_det = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        if self.kind == "planar":
            d = self.latent
            for p in h.reshape(len(h), self.layers, 2 * d + 1).unbind(1):
                z, ld = planar_map(z, p[:, :d], p[:, d:2 * d], p[:, 2 * d])
                log_det = log_det + ld
            return z, log_det
        for step in self.steps:
            z, ld = step(z, h)
            log_det = log_det + ld
        return z, log_det
