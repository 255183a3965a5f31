"""Figures and pictures of a model fitted to an unnormalised target exp(-U) / Z (variational inference).

With N seeded samples z_i ~ q and log-weights log w_i = -U(z_i) - log q(z_i):

    ELBO       = mean_i log w_i                          <= log Z   (a bound: Jensen)
    log Z_IS   = log mean_i w_i                          (importance sampling; <= log Z in expectation)
    KL(q||p)   = log Z - ELBO                            (log Z from quadrature, see deepgen.data.energy)
    ESS / N    = (sum w)^2 / (N sum w^2)                 (1: q equals p)
    KL(p||q)   = sum_grid p (log p - log q) dA           (quadrature: large when q misses a mode)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepgen.errors import ConfigError
from deepgen.evaluation.plots import save_figure, subplots

SCORE_SAMPLES = 20000
GRID = 301


def check_can_fit_target(model, target) -> None:
    """A model fits a target only if it can draw samples with their log-density."""
    if not model.can("sample_log_prob"):
        raise ConfigError(f"model '{model.name}' cannot fit the unnormalised target '{target.name}': variational "
                          "inference needs differentiable samples with their log-density (sample_and_log_prob); "
                          "flows have it (e.g. planar, radial, realnvp, iaf, nsf)")
    if model.is_conditional:
        raise ConfigError(f"target '{target.name}' has no labels: train an unconditional model on it")


@torch.no_grad()
def log_weights(model, target, n: int = SCORE_SAMPLES, seed: int = 0, batch_size: int = 4096):
    """(z, log w) for n seeded samples z ~ q, log w = -U(z) - log q(z); the caller's RNG is untouched."""
    zs, lws = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            z, log_q = model.sample_and_log_prob(min(batch_size, n - start))
            zs.append(z.cpu())
            lws.append((-target.energy(z) - log_q).double().cpu())
    return torch.cat(zs), torch.cat(lws)


@torch.no_grad()
def grid_log_q(model, target, resolution: int = GRID):
    """(points, log q, log p, cell area) on a resolution^2 grid over the target's box; log p normalised."""
    pts, area = target.grid(resolution)
    log_p = -target.energy(pts)
    log_p = log_p - (torch.logsumexp(log_p, 0) + math.log(area))
    device = model.device
    log_q = torch.cat([model.log_prob(c.float().to(device)).double().cpu() for c in pts.split(8192)])
    return pts, log_q, log_p, area


def score_target(model, target, n: int = SCORE_SAMPLES, seed: int = 0) -> dict:
    """The figures of ``model`` as a variational approximation of ``target`` (see the module docstring)."""
    was = model.training
    model.eval()
    try:
        _, lw = log_weights(model, target, n, seed)
        finite = torch.isfinite(lw)
        log_z = target.log_z()
        elbo = float(lw.mean())
        log_z_is = float(torch.logsumexp(lw, 0) - math.log(len(lw)))
        w = torch.exp(lw - lw.max())
        ess = float(w.sum() ** 2 / (len(w) * (w**2).sum()))
        _, log_q, log_p, area = grid_log_q(model, target)
        p = torch.exp(log_p)
        forward_kl = float((p * (log_p - log_q)).sum() * area)
        q_mass = float(torch.exp(log_q).sum() * area)
    finally:
        model.train(was)
    return {
        "model": model.name, "data": target.name, "objective": "variational inference: minimise KL(q || p)",
        "density": model.density, "n_samples": n,
        "elbo_nats": elbo, "elbo_stderr": float(lw.std() / math.sqrt(len(lw))) if bool(finite.all()) else math.inf,
        "log_z_is": log_z_is, "log_z_true": log_z, "kl_nats": log_z - elbo, "log_z_gap_is": log_z - log_z_is,
        "ess_fraction": ess, "forward_kl_nats": forward_kl, "q_mass_in_box": q_mass,
        "units": "nats; Z = integral of exp(-U) over the plane (log_z_true: quadrature on a 1001^2 grid)",
    }


@torch.no_grad()
def plot_target_fit(model, target, path, title: str = "", seed: int = 0, n: int = 3000) -> None:
    """Three panels over the target's box: the target density exp(-U)/Z, the fitted density q,
    and samples of q over the target's contours."""
    was = model.training
    model.eval()
    try:
        pts, log_q, log_p, _ = grid_log_q(model, target, 201)
        z, _ = log_weights(model, target, n, seed)
    finally:
        model.train(was)
    lo, hi = target.box
    extent = (lo, hi, lo, hi)
    fig, axes = subplots(1, 3, figsize=(12, 4.3), squeeze=False, layout="constrained")
    axes = axes[0]
    p_img = torch.exp(log_p).reshape(201, 201).numpy()
    q_img = torch.exp(log_q).reshape(201, 201).numpy()
    vmax = float(max(p_img.max(), np.nan_to_num(q_img).max()))
    axes[0].imshow(p_img, origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=vmax)
    axes[0].set_title("target exp(-U) / Z")
    axes[1].imshow(np.nan_to_num(q_img), origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=vmax)
    axes[1].set_title(f"{model.name}: fitted q (same colour scale)")
    xs = np.linspace(lo, hi, 201)
    axes[2].contour(xs, xs, p_img, levels=6, colors="k", linewidths=0.6)
    s = z.numpy()
    axes[2].scatter(s[:, 0], s[:, 1], s=1.5, alpha=0.4, color="tab:red")
    axes[2].set_title(f"{len(s)} samples of q over the target's contours")
    for ax in axes:
        ax.set_xlim(*target.view)
        ax.set_ylim(*target.view)
        ax.set_aspect("equal", adjustable="box")
    fig.suptitle(title or f"{model.name} fitted to {target.name}")
    save_figure(fig, path)
