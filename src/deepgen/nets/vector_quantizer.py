"""Vector quantisation (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning"): a codebook of K vectors e_1..e_K in R^D, nearest-code assignment, the straight-through
estimator, EMA codebook updates and dead-code restarts.

Quantisation.  Every encoder output z (a D-vector at one position of the code grid) is replaced by
its nearest code,

    k(z) = argmin_k ||z - e_k||^2 = argmin_k ( ||e_k||^2 - 2 z . e_k ),     z_q = e_{k(z)}.

Straight-through.  argmin has no gradient, so the decoder is fed z + sg(z_q - z): the value z_q
going forward, the identity going back (d loss / d z := d loss / d z_q).  The encoder is held to
its codes by the commitment term ||z - sg(z_q)||^2, and (without EMA) the codebook is pulled to the
encoder outputs by the codebook term ||sg(z) - z_q||^2.

EMA updates (the paper's appendix, ``ema=True``).  Instead of the codebook term, after every
training batch with n_k outputs assigned to code k summing to s_k,

    N_k <- g N_k + (1 - g) n_k,      m_k <- g m_k + (1 - g) s_k,
    e_k  = m_k / N~_k,               N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j

(g = ``decay``; Laplace smoothing eps keeps an unused code's N~_k > 0).  With g = 0 and eps = 0 a
used code moves exactly to the mean of its assigned vectors; a code with N~_k = 0 is left as it is.

Dead-code restarts.  ``unused`` counts, per code, the consecutive updates in which it was assigned
nothing; a code unused for ``restart_after`` updates is re-initialised to a random encoder output of
the current (the most recent) batch, with N_k = 1 and m_k = e_k so the EMA continues from it.  The
counters start at ``restart_after``, so the codes the first training batch leaves unused are restarted
at once: the codebook starts on encoder outputs.

Usage.  :func:`code_counts` (a histogram of code indices) and :func:`perplexity`
(exp of the entropy of the usage distribution: K when every code is used equally, 1 for one code).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def code_counts(indices: torch.Tensor, codes: int) -> torch.Tensor:
    """How many times each of the ``codes`` codes occurs in ``indices`` (any shape): (codes,) float."""
    return torch.bincount(indices.reshape(-1).long(), minlength=codes).to(torch.float64)


def perplexity(counts: torch.Tensor) -> float:
    """exp(H(p)), p = counts / sum(counts), H in nats (0 log 0 := 0); 0.0 for no counts."""
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(entropy.exp())


class VectorQuantizer(nn.Module):
    """A codebook of ``codes`` vectors of size ``dim`` (see the module docstring).

    ``ema``: the codebook is a buffer updated by :meth:`ema_update` (else a parameter trained by the
    codebook term of :meth:`forward`).  ``restart_after`` > 0: :meth:`restart_dead` re-initialises codes
    unused for that many updates (0: never).  Grids are (B, D, h, w); flat vectors (N, D).
    """

    def __init__(self, codes: int, dim: int, ema: bool = True, decay: float = 0.99, restart_after: int = 0,
                 eps: float = 1e-5):
        super().__init__()
        self.codes, self.dim, self.ema = codes, dim, ema
        self.decay, self.restart_after, self.eps = float(decay), int(restart_after), float(eps)
        init = torch.empty(codes, dim).uniform_(-1.0 / codes, 1.0 / codes)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(codes))  # N_k
            self.register_buffer("ema_sum", init.clone())  # m_k = N_k e_k
        else:
            self.codebook = nn.Parameter(init)
        # updates since each code was last assigned; starting at restart_after, the codes the first batch
        # leaves unused are restarted at once (a data-dependent initialisation)
        self.register_buffer("unused", torch.full((codes,), max(self.restart_after, 0), dtype=torch.long))

    # --- assignment ------------------------------------------------------------------
    @staticmethod
    def flatten(grid: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B h w, D), positions in raster order within each example."""
        return grid.movedim(1, -1).reshape(-1, grid.shape[1])

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of ``z`` (N, D): (N,) long."""
        e = self.codebook.to(z.dtype)
        dist = (e * e).sum(1)[None, :] - 2 * z @ e.T  # ||z||^2 is the same for every code
        return dist.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``indices`` (B, h, w) as a grid (B, D, h, w)."""
        return F.embedding(indices, self.codebook).movedim(-1, 1)

    def quantize(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (B, h, w), z_q (B, D, h, w)) of the nearest codes of the encoder grid ``grid``."""
        b, _, h, w = grid.shape
        idx = self.nearest(self.flatten(grid)).reshape(b, h, w)
        return idx, self.lookup(idx).to(grid.dtype)

    def forward(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Quantise the encoder grid z_e (B, D, h, w).  Returns

        ``indices`` (B, h, w); ``z_q`` the codes (B, D, h, w); ``z_st`` = z_e + sg(z_q - z_e), the
        straight-through input of the decoder; ``commitment`` = ||z_e - sg(z_q)||^2 and ``codebook_loss``
        = ||sg(z_e) - z_q||^2 (zero with EMA), each summed per example: (B,).
        """
        idx, z_q = self.quantize(grid)
        z_st = grid + (z_q - grid).detach()
        commitment = (grid - z_q.detach()).pow(2).flatten(1).sum(1)
        if self.ema:
            codebook_loss = torch.zeros_like(commitment)
        else:
            codebook_loss = (grid.detach() - z_q).pow(2).flatten(1).sum(1)
        return {"indices": idx, "z_q": z_q, "z_st": z_st, "commitment": commitment, "codebook_loss": codebook_loss}

    # --- training-time updates (call under no_grad, after the loss is computed) ---------
    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """One EMA step from encoder outputs ``z`` (N, D) assigned to ``indices`` (N,) (module docstring)."""
        if not self.ema:
            return
        z = z.to(self.ema_sum.dtype)
        onehot = F.one_hot(indices.reshape(-1), self.codes).to(z.dtype)  # (N, K)
        n = onehot.sum(0)
        s = onehot.T @ z
        g = self.decay
        self.ema_count.mul_(g).add_(n, alpha=1 - g)
        self.ema_sum.mul_(g).add_(s, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.codes * self.eps) * total
        ok = smoothed > 0
        self.codebook[ok] = self.ema_sum[ok] / smoothed[ok, None]

    @torch.no_grad()
    def record_usage(self, indices: torch.Tensor) -> torch.Tensor:
        """Update the ``unused`` counters from one batch's ``indices``; returns the batch's counts (K,)."""
        counts = torch.bincount(indices.reshape(-1), minlength=self.codes)
        self.unused.add_(1)
        self.unused[counts > 0] = 0
        return counts

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor) -> int:
        """Re-initialise every code unused for ``restart_after`` updates to a random row of ``z`` (N, D)
        (the most recent encoder outputs); returns how many codes were restarted."""
        if self.restart_after <= 0:
            return 0
        dead = (self.unused >= self.restart_after).nonzero().flatten()
        if len(dead) == 0 or len(z) == 0:
            return 0
        pick = torch.randint(len(z), (len(dead),), device=z.device)
        new = z[pick].to(self.codebook.dtype)
        self.codebook.data[dead] = new
        if self.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = new
        self.unused[dead] = 0
        return len(dead)

    def extra_repr(self) -> str:
        return (f"codes={self.codes}, dim={self.dim}, ema={self.ema}, decay={self.decay}, "
                f"restart_after={self.restart_after}")
