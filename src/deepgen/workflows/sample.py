"""``deepgen sample``: draw from a trained run and write a picture or the raw arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepgen.data import list_datasets, load_data
from deepgen.errors import ConfigError
from deepgen.evaluation.plots import plot_2d, plot_image_grid
from deepgen.io import atomic_path
from deepgen.models.pretrained import load_model
from deepgen.workflows.report import draw_samples
from deepgen.workflows.runs import run_label_context


def sample_run(run, n: int, out, temperature: float = 1.0, seed: int = 0, label: str | None = None,
               npy: bool = False) -> list[str]:
    """Draw ``n`` samples of run ``run`` (of class ``label`` for a class-conditional run; otherwise
    labels drawn from the training frequencies) and write ``out``: a picture, or ``.npy`` arrays on
    the data's own scale (``npy`` writes both).  Returns the paths written."""
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    if temperature <= 0:
        raise ConfigError(f"--temperature must be > 0, got {temperature}")
    model = load_model(run)
    label_context = run_label_context(run)
    labels = None
    if label is not None:
        if label_context is None:
            raise ConfigError(f"--label: run '{run}' is not class-conditional (train with --context label)")
        labels = torch.full((n,), label_context.index(label), dtype=torch.long)
    samples, labels = draw_samples(model, n, temperature, seed, label_context, labels)
    out = Path(out)
    spec = model.spec
    written = []
    if npy or out.suffix == ".npy":
        path = out if out.suffix == ".npy" else out.with_suffix(".npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, samples.cpu().numpy())
        written.append(str(path))
        if out.suffix == ".npy":
            return written
    title = f"{model.name}: {n} samples, T={temperature:g}" + (f", class {label}" if label is not None else "")
    if spec.shape == (2,):
        reference = load_data(spec.name).train if spec.name in list_datasets() else samples
        plot_2d(model, reference, samples, out, title, labels=None if label is not None else labels,
                label_context=label_context)
    elif spec.is_image:
        plot_image_grid(samples[: min(n, 400)], out, spec.levels, title)
    elif written:
        return written
    else:
        raise ConfigError(f"cannot draw {spec.dim}-dim vectors as a picture; use --npy to write the raw samples")
    written.append(str(out))
    return written
