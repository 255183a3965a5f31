"""Plots written next to the numbers: 2-D density maps, pair plots, image grids, training curves.

Matplotlib is used through its object-oriented API (``Figure``), never pyplot, so
importing this module changes no global state.  Every plot function returns the
``Figure`` it wrote; the file's format is its path's suffix (:data:`PICTURE_FORMATS`)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullLocator

from deepgen.errors import ConfigError
from deepgen.io import atomic_path

PICTURE_FORMATS = (".png", ".pdf", ".svg")
MAX_PAIR_FEATURES = 16  # a pair plot of D features has D x D panels
DATA_COLOUR, SAMPLE_COLOUR = "k", "tab:red"


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """(figure, axes) without pyplot: no global backend or figure registry is touched."""
    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "layout") if k in kwargs}
    fig = Figure(**fig_kw)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def picture_format(path) -> str:
    """The format of a picture file from its suffix: "png", "pdf" or "svg" (else a ConfigError)."""
    suffix = Path(path).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise ConfigError(f"{path}: cannot write a picture with suffix '{suffix}'; expected one of "
                          + ", ".join(PICTURE_FORMATS))
    return suffix[1:]


def save_figure(fig, path) -> None:
    """Write ``fig`` atomically, as PNG, PDF or SVG by the suffix of ``path``."""
    fmt = picture_format(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)


MAX_RANGE_ROWS = 100_000  # plot ranges are read from at most ~2x this many rows


def range_rows(data):
    """Every k-th row of ``data`` (a tensor or a memory-mapped split), at most ~2 x MAX_RANGE_ROWS of them:
    quantiles for a plot's axes need no more, and a 10^7-row split is never gathered whole."""
    return data[:: max(1, len(data) // MAX_RANGE_ROWS)]


def feature_ranges(data: torch.Tensor, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per feature of (N, D) ``data``: its 0.1% and 99.9% quantiles widened by ``margin``
    of their span on each side (a constant feature gets +-0.5); read from :func:`range_rows`."""
    data = range_rows(data)
    x = data.detach().cpu().double().reshape(len(data), -1)
    lo, hi = torch.quantile(x, 0.001, dim=0), torch.quantile(x, 0.999, dim=0)
    pad = torch.where(hi > lo, (hi - lo) * margin, torch.full_like(lo, 0.5))
    return (lo - pad).numpy(), (hi + pad).numpy()


def plot_bounds(data: torch.Tensor, margin: float = 0.1) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the view of 2-D ``data`` (see :func:`feature_ranges`)."""
    lo, hi = feature_ranges(range_rows(data)[:, :2], margin)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


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


def plot_2d(model, data: torch.Tensor | None, samples: torch.Tensor, path, title: str = "", labels=None,
            label_context=None) -> Figure:
    """Left: data (the samples, titled so, when ``data`` is None).  Right: model density p(x) as a heat map (if it has one, with a colour bar
    in probability per unit area of the data's units) with samples on top.

    For a conditional model the map is the marginal density sum_y p(x | y) p(y), and samples
    are coloured by their label."""
    left_title = "data" if data is not None else "model samples (no data)"
    data = data if data is not None else samples
    bounds = plot_bounds(data)
    aspect = (bounds[3] - bounds[2]) / max(bounds[1] - bounds[0], 1e-9)
    fig, axes = subplots(1, 2, figsize=(10, 0.6 + 5 * min(max(aspect, 0.4), 1.5)), layout="constrained")
    d = data[:5000].cpu().numpy()
    axes[0].scatter(d[:, 0], d[:, 1], s=2, alpha=0.4, c="k")
    axes[0].set_title(f"{left_title} (n={len(d)})")
    ax = axes[1]
    if model.density != "none":
        lp = density_grid(model, bounds, label_context=label_context)
        im = ax.imshow(np.exp(lp), origin="lower", extent=bounds, cmap="viridis", aspect="auto")
        fig.colorbar(im, ax=ax, shrink=0.85, label="p(x)  [probability per unit area]")
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
    return fig


def plot_pairs(data: torch.Tensor | None, samples: torch.Tensor, path, title: str = "",
               names=None, max_points: int = 2000) -> Figure:
    """Pair plot of D-feature vectors (1 <= D <= :data:`MAX_PAIR_FEATURES`), data against samples.

    Panel (i, j), i != j: feature j (x axis) against feature i (y axis), a scatter of the data
    (black) and of the samples (red), at most ``max_points`` of each.  Diagonal panel (i, i):
    histograms of feature i, data and samples overlaid, each normalised to unit area (on a
    twin y axis without ticks, so that the left column's ticks are the rows' features).  The axes
    show the data's 0.1-99.9% range (the samples' without data); ``names`` label the features
    (default x0 .. x{D-1}).  ``data`` may be None (samples only)."""
    s = samples.detach().cpu().double().reshape(len(samples), -1)
    d = None if data is None else range_rows(data).detach().cpu().double().flatten(1)
    dim = s.shape[1]
    if not 1 <= dim <= MAX_PAIR_FEATURES:
        raise ConfigError(f"a pair plot shows 1 to {MAX_PAIR_FEATURES} features, got {dim}")
    names = list(names) if names is not None else [f"x{i}" for i in range(dim)]
    lo, hi = feature_ranges(d if d is not None else s)
    s_np = s[:max_points].numpy()
    d_np = None if d is None else d[:max_points].numpy()
    size = max(1.1, min(3.2, 11.0 / dim))
    fig, axes = subplots(dim, dim, figsize=(size * dim + 0.4, size * dim + 0.9), squeeze=False)
    dot = max(0.5, 6.0 / dim)
    for i in range(dim):
        for j in range(dim):
            ax = axes[i, j]
            if i == j:  # the histograms get their own y axis; the panel's own keeps row i's scale
                hist_ax = ax.twinx() if dim > 1 else ax
                for x, colour, kind in ((d_np, DATA_COLOUR, "stepfilled"), (s_np, SAMPLE_COLOUR, "step")):
                    if x is not None:
                        hist_ax.hist(x[:, i], bins=30, range=(lo[i], hi[i]), density=True, histtype=kind,
                                     color=colour, alpha=0.35 if kind == "stepfilled" else 1.0, lw=1.2)
                if dim > 1:
                    hist_ax.set_yticks([])
            else:  # samples under the data, so that the data stay visible
                for x, colour in ((s_np, SAMPLE_COLOUR), (d_np, DATA_COLOUR)):
                    if x is not None:
                        ax.scatter(x[:, j], x[:, i], s=dot, alpha=0.4, c=colour, lw=0, rasterized=True)
            if dim > 1:
                ax.set_ylim(lo[i], hi[i])
            ax.set_xlim(lo[j], hi[j])
            ax.tick_params(labelsize=7)
            if i < dim - 1:
                ax.tick_params(labelbottom=False)
            else:
                ax.set_xlabel(names[j])
            if j > 0:
                ax.tick_params(labelleft=False)
            else:
                ax.set_ylabel(names[i] if dim > 1 else "density")
            if dim > 4:  # many small panels: ticks only on the outer ones (ticks are slow to draw)
                ax.xaxis.set_major_locator(MaxNLocator(3) if i == dim - 1 else NullLocator())
                ax.yaxis.set_major_locator(MaxNLocator(3) if j == 0 else NullLocator())
    handles = [Line2D([], [], color=SAMPLE_COLOUR, marker="o", ls="", label=f"samples (n={len(s_np)})")]
    if d_np is not None:
        handles.insert(0, Line2D([], [], color=DATA_COLOUR, marker="o", ls="", label=f"data (n={len(d_np)})"))
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.6 / fig.get_figwidth() + 0.04, bottom=0.5 / fig.get_figheight() + 0.04,
                        right=0.98, top=1 - 0.75 / fig.get_figheight(), wspace=0.08, hspace=0.08)
    if title:
        fig.suptitle(title, x=0.02, ha="left")
    save_figure(fig, path)
    return fig


MISSING_COLOUR = (0.9, 0.2, 0.2)


def image_grid(images: torch.Tensor, levels: int | None, ncol: int | None = None, pad: int = 1,
               missing: torch.Tensor | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows*H, cols*W[, C]) array in [0, 1]; ``missing`` (bool, the images'
    shape): pixels with any missing channel drawn in :data:`MISSING_COLOUR` (the grid is then RGB)."""
    x = images.detach().cpu().float()
    if missing is not None:
        x = torch.where(missing.cpu(), torch.zeros_like(x), x)  # NaN-free before scaling
    if levels is not None:
        x = x / (levels - 1)
    else:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo + 1e-8)
    x = x.clamp(0, 1)
    if missing is not None:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        hole = missing.cpu().any(1, keepdim=True).expand_as(x)
        colour = torch.tensor(MISSING_COLOUR).view(1, 3, 1, 1).expand_as(x)
        x = torch.where(hole, colour, x)
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def plot_image_grid(images: torch.Tensor, path, levels: int | None, title: str = "",
                    ncol: int | None = None) -> Figure:
    """One grid of images (see :func:`image_grid`) with a title."""
    arr = image_grid(images, levels, ncol)
    fig, ax = subplots(figsize=(6, 6 * arr.shape[0] / arr.shape[1] + 0.4))
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return fig


# What each logged metric is, by name (first match wins): (regex, panel title, y-axis label).
# Likelihood models log nats per example; a GAN's players log their own losses.
CURVE_PANELS = (
    (r"train/(loss|nll)|val/nll(_nats)?|val/loss", "loss (train) and NLL (validation)", "nats/example"),
    (r".*bits_per_dim", "bits/dim", "bits/dim"),
    (r"train/elbo|val/elbo_nats", "ELBO", "nats/example"),
    (r"train/kl", "KL(q(z|x) || p(z))", "nats/example"),
    (r"val/kl_nats", "KL(q || p) = log Z - ELBO (fit to a target)", "nats"),
    (r"train/rec", "reconstruction log p(x|z)", "nats/example"),
    (r"train/\w+_loss", "player losses", "loss"),
    (r"train/\w+_d_(real|fake)", "discriminator outputs", "mean D(x) (probability)"),
    (r".*energy_distance", "energy distance to validation data", "data units"),
    (r".*modes_covered", "modes covered", "modes"),
    (r".*high_quality_pct", "high-quality samples", "% of samples"),
    (r"lr", "learning rate", "learning rate"),
)
_NOT_CURVES = ("step", "epoch", "time_s")


def curve_panels(table) -> list[tuple[str, str, list[tuple[str, list[int], list[float]]]]]:
    """The panels of :func:`plot_training_curves`: (title, y label, [(legend label, steps, values)]).

    Columns are grouped by :data:`CURVE_PANELS`, in its order (a column it does not know gets a
    panel of its own, before the learning rate).  A column equal to an earlier one, or to its
    negation (same steps, same or negated values: a flow's ``train/nll`` is its ``train/loss``, a
    VAE's ``train/elbo`` is minus its loss when beta = 1), is not drawn again but named in that
    series' legend label, and a panel left without series is dropped."""
    panels: dict[str, tuple[float, str, str, list]] = {}
    seen: dict[tuple, tuple[list, str]] = {}
    for name in table.columns():
        if name in _NOT_CURVES:
            continue
        steps, values = table.column(name)
        if not steps:
            continue
        key = (tuple(steps), tuple(values))
        if key in seen:
            series, sign = seen[key]
            series[0] += f" = {sign}{name}"
            continue
        rule = next((i for i, (pattern, _, _) in enumerate(CURVE_PANELS) if re.fullmatch(pattern, name)), None)
        if rule is None:
            order, title, ylabel = len(CURVE_PANELS) - 1.5, name.split("/")[-1], name.split("/")[-1]
        else:
            order, (_, title, ylabel) = rule, CURVE_PANELS[rule]
        series = [name, steps, values]
        seen[key] = (series, "")
        seen.setdefault((tuple(steps), tuple(-v for v in values)), (series, "-"))
        panels.setdefault(title, (order, title, ylabel, []))[3].append(series)
    out = []
    for _, t, y, series in sorted(panels.values(), key=lambda p: p[0]):
        if t == CURVE_PANELS[0][1] and not any(s[0].startswith("val/nll") for s in series):
            t = "training loss"  # e.g. variational inference: no validation NLL
        out.append((t, y, [tuple(s) for s in series]))
    return out


def plot_training_curves(table, path, title: str = "", max_cols: int = 3) -> Figure | None:
    """Every logged metric of a MetricsTable against the step, on a grid of at most ``max_cols``
    columns, one panel per quantity with its unit on the y axis (see :func:`curve_panels`).
    Writes nothing and returns None when the table has no series."""
    panels = curve_panels(table)
    if not panels:
        return None
    ncols = min(max_cols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows + 0.5), squeeze=False,
                         layout="constrained")
    for ax, (panel, ylabel, series) in zip(axes.flat, panels):
        for label, steps, values in series:
            ax.plot(steps, values, label=label, marker="o" if label.startswith("val") else None, ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


def plot_image_rows(rows: list[tuple], path, levels: int | None, ncol: int, title: str = "") -> Figure:
    """Labelled rows of image grids, e.g. data / reconstructions, or one interpolation path per row: each row
    (label, images) or (label, images, missing) with missing pixels coloured (see :func:`image_grid`)."""
    fig, axes = subplots(len(rows), 1, figsize=(ncol * 0.55, 0.75 * sum(math.ceil(len(r[1]) / ncol)
                                                                          for r in rows) + 0.5 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax, (label, imgs, *missing) in zip(axes[:, 0], rows):
        arr = image_grid(imgs, levels, ncol, missing=missing[0] if missing else None)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


def plot_truncation_curve(points: list[dict], path, title: str = "") -> Figure:
    """The truncation trade-off: precision and recall against the threshold t (left; "none" = no
    truncation, drawn at the right end) and precision against recall, each point labelled by t (right)."""
    labels = ["none" if p["truncation"] is None else f"{p['truncation']:g}" for p in points]
    prec = [p["precision"] for p in points]
    rec = [p["recall"] for p in points]
    fig, (a, b) = subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
    xs = list(range(len(points)))
    a.plot(xs, prec, marker="o", label="precision (fidelity)")
    a.plot(xs, rec, marker="s", label="recall (diversity)")
    a.set_xticks(xs, labels)
    a.set_xlabel("truncation threshold t (|z_i| <= t)")
    a.set_ylim(-0.02, 1.02)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    b.plot(rec, prec, marker="o")
    for r, p, label in zip(rec, prec, labels):
        b.annotate(f"t={label}", (r, p), textcoords="offset points", xytext=(4, 4), fontsize=7)
    b.set_xlabel("recall (diversity)")
    b.set_ylabel("precision (fidelity)")
    b.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig
