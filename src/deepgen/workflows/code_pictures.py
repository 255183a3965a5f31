"""Pictures of what a model's latent codes control (InfoGAN's categorical and continuous codes).

For a model with codes (``categories`` K > 0 and/or ``continuous`` J > 0, and ``sample_codes(z,
categorical, continuous, context)``), next to the run:

* ``codes_categorical.png``: images: one row per category k, columns = 10 noise vectors z (the
  same z in every row, continuous codes 0); 2-D data: samples coloured by their category.
* ``codes_continuous.png``: images: for each continuous code j, rows with c_j swept from -2 to 2
  (9 values; the code's prior is U(-1, 1), so the ends extrapolate), everything else fixed: one z,
  other continuous codes 0, one row per category for the first up-to-5 categories (one row when
  K = 0); 2-D data: one panel per code, samples coloured by c_j.

Other data (vectors of more than 2 features) get no pictures.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepgen.evaluation.plots import plot_bounds, plot_image_rows, save_figure, subplots

SWEEP = torch.linspace(-2.0, 2.0, 9)
COLUMNS = 10
SWEEP_CATEGORIES = 5
POINTS_2D = 2000


def has_codes(model) -> bool:
    """True for a model with latent codes to picture (InfoGAN-like: ``categories`` / ``continuous``)."""
    return model.can("codes") and (int(model.categories) + int(model.continuous)) > 0


@torch.no_grad()
def write_code_pictures(model, splits, out, seed: int = 0, label_context=None) -> list[str]:
    """Write ``codes_categorical.png`` / ``codes_continuous.png`` into ``out`` (see the module docstring);
    returns the names of the files written ([] for a model without codes, data that are neither images
    nor 2-D, or a conditional model without ``label_context``: its pictures then use class 0)."""
    spec = splits.spec
    if not has_codes(model) or not (spec.is_image or spec.shape == (2,)):
        return []
    if model.is_conditional and label_context is None:
        return []
    out = Path(out)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if spec.is_image:
                return _image_pictures(model, out, label_context)
            return _scatter_pictures(model, splits, out, label_context)
    finally:
        model.train(was_training)


def _context(model, label_context, n):
    if not model.is_conditional:
        return None
    return label_context.one_hot(torch.zeros(n, dtype=torch.long)).to(model.device)


def _image_pictures(model, out: Path, label_context) -> list[str]:
    spec, k, j = model.spec, model.categories, model.continuous
    written = []
    if k:
        z = model.noise(COLUMNS)
        cont = torch.zeros(COLUMNS, j, device=model.device) if j else None
        rows = [(f"category {c}", model.sample_codes(z, torch.full((COLUMNS,), c, device=model.device), cont,
                                                    _context(model, label_context, COLUMNS)).cpu())
                for c in range(k)]
        plot_image_rows(rows, out / "codes_categorical.png", spec.levels, ncol=COLUMNS,
                        title=f"{model.name}: one row per category\n(columns: noise z, the same in every row)")
        written.append("codes_categorical.png")
    if j:
        n = len(SWEEP)
        z = model.noise(1).expand(n, -1)
        cats = list(range(min(k, SWEEP_CATEGORIES))) if k else [None]
        rows = []
        for code in range(j):
            cont = torch.zeros(n, j, device=model.device)
            cont[:, code] = SWEEP.to(model.device)
            for c in cats:
                cat = None if c is None else torch.full((n,), c, device=model.device)
                label = f"c_cont{code + 1}" + ("" if c is None else f", category {c}")
                rows.append((label, model.sample_codes(z, cat, cont, _context(model, label_context, n)).cpu()))
        plot_image_rows(rows, out / "codes_continuous.png", spec.levels, ncol=n,
                        title=f"{model.name}: continuous codes swept -2 .. 2\n(one z, other codes fixed)")
        written.append("codes_continuous.png")
    return written


def _scatter_pictures(model, splits, out: Path, label_context) -> list[str]:
    k, j, n = model.categories, model.continuous, POINTS_2D
    z = model.noise(n)
    cat, cont = model.random_codes(n)
    x = model.sample_codes(z, cat, cont, _context(model, label_context, n)).cpu()
    data = splits.train[:5000].cpu()
    bounds = plot_bounds(data)
    written = []

    def panel(ax, colours, cmap, title):
        ax.scatter(data[:, 0], data[:, 1], s=2, alpha=0.15, c="0.6")
        pts = ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.7, c=colours, cmap=cmap)
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_ylim(bounds[2], bounds[3])
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(title, fontsize=9)
        return pts

    if k:
        fig, ax = subplots(1, 1, figsize=(5.5, 5.5), layout="constrained")
        panel(ax, cat.cpu().numpy(), "tab10" if k <= 10 else "tab20",
              f"{model.name}: samples coloured by category (K={k}); data grey")
        save_figure(fig, out / "codes_categorical.png")
        written.append("codes_categorical.png")
    if j:
        fig, axes = subplots(1, j, figsize=(4.5 * j, 4.8), layout="constrained", squeeze=False)
        for code, ax in enumerate(axes[0]):
            pts = panel(ax, cont[:, code].cpu().numpy(), "coolwarm", f"coloured by c_cont{code + 1} (-1 .. 1)")
            fig.colorbar(pts, ax=ax, shrink=0.8)
        fig.suptitle(f"{model.name}: samples coloured by each continuous code")
        save_figure(fig, out / "codes_continuous.png")
        written.append("codes_continuous.png")
    return written
