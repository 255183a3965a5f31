"""Pictures of a 2-D latent space: the codes of a split, and the decoder over the latent plane."""

from __future__ import annotations

import numpy as np
import torch

from deepgen.evaluation.plots import image_grid, save_figure, subplots


def latent_plane(loc: torch.Tensor, scale: torch.Tensor, steps: int = 15, span: float = 3.0) -> torch.Tensor:
    """A steps x steps grid of 2-D codes over loc +- span * scale, rows from top (high z_2) to bottom,
    columns left (low z_1) to right: (steps * steps, 2)."""
    t = torch.linspace(-span, span, steps)
    z1 = loc[0] + t * scale[0]
    z2 = loc[1] - t * scale[1]
    return torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], -1).reshape(-1, 2)


def plot_latent_map(codes: torch.Tensor, labels: torch.Tensor | None, classes, decoded: torch.Tensor,
                    extent, path, levels: int | None, title: str = "", steps: int = 15):
    """Left: the 2-D codes of a split, coloured by class label; right: the images decoded on a
    ``steps`` x ``steps`` grid over ``extent`` = (z1_min, z1_max, z2_min, z2_max) (see :func:`latent_plane`)."""
    fig, (left, right) = subplots(1, 2, figsize=(11, 5.2), layout="constrained")
    c = codes.detach().cpu().numpy()
    if labels is not None:
        lab = labels.cpu().numpy()
        for k in np.unique(lab):
            sel = lab == k
            name = classes[k] if classes and k < len(classes) else str(k)
            left.scatter(c[sel, 0], c[sel, 1], s=6, alpha=0.7, label=name)
        left.legend(fontsize=7, markerscale=2, loc="best", ncol=2)
    else:
        left.scatter(c[:, 0], c[:, 1], s=6, alpha=0.6)
    left.set_xlim(extent[0], extent[1])
    left.set_ylim(extent[2], extent[3])
    left.set_xlabel("z_1")
    left.set_ylabel("z_2")
    left.set_title("codes of the test split" + (", coloured by label" if labels is not None else ""), fontsize=9)
    arr = image_grid(decoded, levels, ncol=steps, pad=0)
    right.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, extent=extent, aspect="auto",
                 interpolation="nearest")
    right.set_xlabel("z_1")
    right.set_ylabel("z_2")
    right.set_title("decoded over the latent plane", fontsize=9)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig
