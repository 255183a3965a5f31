"""PNG plots written next to the numbers: 2-D density maps, image grids, training curves.

Matplotlib is used through its object-oriented API (``Figure``), never pyplot, so
importing this module changes no global state."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from deepgen.io import atomic_path


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """(figure, axes) without pyplot: no global backend or figure registry is touched."""
    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "layout") if k in kwargs}
    fig = Figure(**fig_kw)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path) -> None:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_bounds(data: torch.Tensor, margin: float = 0.1) -> tuple[float, float, float, float]:
    lo = torch.quantile(data, 0.001, dim=0)
    hi = torch.quantile(data, 0.999, dim=0)
    pad = (hi - lo) * margin
    return (lo[0] - pad[0]).item(), (hi[0] + pad[0]).item(), (lo[1] - pad[1]).item(), (hi[1] + pad[1]).item()


@torch.no_grad()
def density_grid(model, bounds, resolution: int = 160, label_context=None) -> np.ndarray:
    """log p on a resolution x resolution grid over ``bounds`` (x0, x1, y0, y1); rows are y.

    A conditional model gives the marginal log sum_y p(x | y) p(y) (``label_context`` needed)."""
    x0, x1, y0, y1 = bounds
    xs, ys = torch.linspace(x0, x1, resolution), torch.linspace(y0, y1, resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(model.device)
    was = model.training
    model.eval()

    def log_p(chunk):
        if not model.is_conditional:
            return model.log_prob(chunk).cpu().double()
        cols = [model.log_prob(chunk, label_context.one_hot(torch.full((len(chunk),), y)).to(chunk.device)).cpu()
                for y in range(label_context.num_classes)]
        return torch.logsumexp(torch.stack(cols, 1).double() + label_context.log_prior(), 1)

    lp = torch.cat([log_p(pts[i : i + 8192]) for i in range(0, len(pts), 8192)])
    model.train(was)
    return lp.reshape(resolution, resolution).numpy()


def plot_2d(model, data: torch.Tensor, samples: torch.Tensor, path, title: str = "", labels=None,
            label_context=None) -> None:
    """Left: data.  Right: model density p(x) as a heat map (if it has one) with samples on top.

    For a conditional model the map is the marginal density sum_y p(x | y) p(y), and samples
    are coloured by their label."""
    bounds = plot_bounds(data)
    aspect = (bounds[3] - bounds[2]) / max(bounds[1] - bounds[0], 1e-9)
    fig, axes = subplots(1, 2, figsize=(10, 0.6 + 5 * min(max(aspect, 0.4), 1.5)), layout="constrained")
    d = data[:5000].cpu().numpy()
    axes[0].scatter(d[:, 0], d[:, 1], s=2, alpha=0.4, c="k")
    axes[0].set_title(f"data (n={len(d)})")
    ax = axes[1]
    if model.density != "none":
        lp = density_grid(model, bounds, label_context=label_context)
        ax.imshow(np.exp(lp), origin="lower", extent=bounds, cmap="viridis", aspect="auto")
        ax.set_title("model density p(x) with samples")
    else:
        ax.set_title("model samples (implicit model: no density)")
    s = samples[:5000].cpu().numpy()
    if labels is not None:
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.6, c=labels[:5000].numpy(), cmap="tab10")
    else:
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.5, c="w" if model.density != "none" else "tab:red")
    for a in axes:
        a.set_xlim(bounds[0], bounds[1])
        a.set_ylim(bounds[2], bounds[3])
        a.set_aspect("equal", adjustable="box")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def image_grid(images: torch.Tensor, levels: int | None, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows*H, cols*W[, C]) array in [0, 1]."""
    x = images.detach().cpu().float()
    if levels is not None:
        x = x / (levels - 1)
    else:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo + 1e-8)
    x = x.clamp(0, 1)
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def plot_image_grid(images: torch.Tensor, path, levels: int | None, title: str = "", ncol: int | None = None) -> None:
    arr = image_grid(images, levels, ncol)
    fig, ax = subplots(figsize=(6, 6 * arr.shape[0] / arr.shape[1] + 0.4))
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    save_figure(fig, path)


def plot_training_curves(table, path, title: str = "") -> None:
    """Every numeric column of a MetricsTable against the step, one panel per group of names."""
    names = [c for c in table.columns() if c not in ("step", "epoch", "lr", "time_s")]
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.split("/")[-1], []).append(n)
    panels = [g for g in groups.values() if any(table.column(n)[0] for n in g)]
    if not panels:
        return
    fig, axes = subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, group in zip(axes[0], panels):
        for n in group:
            steps, vals = table.column(n)
            ax.plot(steps, vals, label=n, marker="o" if n.startswith("val") else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(group[0].split("/")[-1])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_image_rows(rows: list[tuple[str, torch.Tensor]], path, levels: int | None, ncol: int, title: str = "") -> None:
    """Labelled rows of image grids, e.g. data / reconstructions, or one interpolation path per row."""
    fig, axes = subplots(len(rows), 1, figsize=(ncol * 0.55, 0.75 * sum(math.ceil(len(r[1]) / ncol)
                                                                          for r in rows) + 0.5 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax, (label, imgs) in zip(axes[:, 0], rows):
        arr = image_grid(imgs, levels, ncol)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
