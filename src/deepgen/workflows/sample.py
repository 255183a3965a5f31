"""``deepgen sample``: draw from a trained run and write the samples as numbers or as a picture.

The format is ``--out``'s extension: ``.npy`` (the array), ``.npz`` (``samples``, and ``labels``
for a class-conditional run), ``.csv`` (one row per flattened sample) on the data's own scale,
or a ``.png`` / ``.pdf`` / ``.svg`` picture (see :func:`deepgen.workflows.report.samples_picture`).
Everything that can be refused is checked before sampling, so a refused call writes nothing.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import torch

from deepgen.data import load_data
from deepgen.data.files import max_data_bytes
from deepgen.data.energy import is_target
from deepgen.data.labels import NO_LABELS
from deepgen.errors import ConfigError, DeepgenError
from deepgen.evaluation.plots import MAX_PAIR_FEATURES, PICTURE_FORMATS
from deepgen.io import atomic_path
from deepgen.models.pretrained import load_model
from deepgen.workflows.report import draw_samples, plot_samples, samples_picture
from deepgen.workflows.runs import check_compatible, run_data_source, run_label_context

ARRAY_FORMATS = (".npy", ".npz", ".csv")
OUTPUT_FORMATS = ARRAY_FORMATS + PICTURE_FORMATS
MAX_PICTURE_IMAGES = 400


def output_format(out: Path) -> str:
    """The lower-case extension of ``--out`` if it is one of :data:`OUTPUT_FORMATS` (else a ConfigError)."""
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        what = "has no extension" if not suffix else f"has an unknown extension '{out.suffix}'"
        raise ConfigError(f"--out {out}: {what}; expected {', '.join(ARRAY_FORMATS)} (the samples as numbers) "
                          f"or {', '.join(PICTURE_FORMATS)} (a picture)")
    return suffix


def _check_writable(path: Path) -> None:
    """A file can be written at ``path``: it is not a directory (a ConfigError otherwise)."""
    if path.is_dir():
        raise ConfigError(f"--out {path}: is a directory; expected a file name with an extension")


def training_data(run, spec) -> torch.Tensor | None:
    """The training split of the data run ``run`` was trained on (drawn beside its samples), or
    None, with a warning on stderr, when it cannot be loaded or no longer fits the model (None
    without a warning for a run fitted to an unnormalised target, which has no data)."""
    try:
        source, _ = run_data_source(run)
        if is_target(source):  # a target exp(-U) (variational inference) has no data to draw
            return None
        splits = load_data(source, labels=NO_LABELS)
        check_compatible(spec, splits.spec, source)
        return splits.train
    except DeepgenError as exc:
        print(f"deepgen: warning: the picture shows samples only, without the training data ({exc})",
              file=sys.stderr)
        return None


def label_values(label_context, ids: torch.Tensor) -> np.ndarray:
    """The class labels of ``ids`` as in the training data: integers when every class name is
    one, else strings."""
    names = np.array(label_context.classes)[ids.cpu().numpy()]
    try:
        return names.astype(np.int64)
    except ValueError:
        return names


def write_csv(path: Path, samples: np.ndarray, names, labels: np.ndarray | None) -> None:
    """One row per sample (flattened), columns ``names``; a first column ``label`` when given."""
    cells = samples.reshape(len(samples), -1).astype(str)
    header = list(names)
    if labels is not None:
        cells = np.concatenate([labels.astype(str)[:, None], cells], axis=1)
        header = ["label", *header]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(cells.tolist())


def write_arrays(path: Path, fmt: str, samples: torch.Tensor, spec, labels: np.ndarray | None) -> None:
    """Write ``samples`` (on the data's scale; in a CSV, whole numbers of discrete data as integers) as ``fmt``."""
    arr = samples.detach().cpu().numpy()
    if fmt == ".csv":
        whole = spec.levels is not None and np.array_equal(arr, np.round(arr))
        write_csv(path, arr.astype(np.int64) if whole else arr, spec.feature_names, labels)
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if fmt == ".npy":
            np.save(f, arr)
        else:
            np.savez(f, samples=arr, **({} if labels is None else {"labels": labels}))


def sample_run(run, n: int, out, temperature: float = 1.0, seed: int = 0, label: str | None = None,
               npy: bool = False, truncation: float | None = None) -> list[str]:
    """Draw ``n`` samples of run ``run`` (of class ``label`` for a class-conditional run; otherwise
    labels drawn from the training frequencies) and write ``out`` in the format of its extension
    (see the module docstring); ``npy`` also writes the array as ``.npy`` beside it; ``truncation`` = t
    draws the latent z restricted to |z_i| <= t (the truncation trick; GANs).

    The extension, the label and whether the data can be pictured are checked before anything
    is sampled or written.  Returns the paths written."""
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    if temperature <= 0:
        raise ConfigError(f"--temperature must be > 0, got {temperature}")
    out = Path(out)
    fmt = output_format(out)
    extra_npy = out.with_suffix(".npy") if npy and fmt != ".npy" else None
    for path in (out, extra_npy):
        if path is not None:
            _check_writable(path)
    if truncation is not None and not (math.isfinite(truncation) and truncation > 0):
        raise ConfigError(f"--truncation must be a finite number > 0 (the bound t of |z_i| <= t), got {truncation}")
    model = load_model(run)
    spec = model.spec
    need = 4 * n * math.prod(spec.shape)
    if need > max_data_bytes():
        raise ConfigError(f"-n {n}: {n} samples of shape {tuple(spec.shape)} need {need / 1e9:.3g} GB; expected at "
                          f"most {max_data_bytes() / 1e9:.3g} GB (half this machine's memory)")
    if truncation is not None and not model.can("truncation"):
        raise ConfigError(f"--truncation: {model.name} (run '{run}') draws no Gaussian latent it could truncate; "
                          "the truncation trick applies to the GAN family (gan, wgan, wgan-gp, ...)")
    label_context = run_label_context(run)
    labels = None
    if label is not None:
        if label_context is None:
            raise ConfigError(f"--label: run '{run}' is not class-conditional (train with --context label)")
        labels = torch.full((n,), label_context.index(label), dtype=torch.long)
    picture = samples_picture(spec) if fmt in PICTURE_FORMATS else None
    if fmt in PICTURE_FORMATS and picture is None:
        raise ConfigError(f"--out {out}: cannot draw {spec.dim}-dim vectors as a picture (a pair plot shows at most "
                          f"{MAX_PAIR_FEATURES} features); write the samples as numbers instead, e.g. "
                          f"--out {out.with_suffix('.npy')} or --out {out.with_suffix('.csv')}")
    data = training_data(run, spec) if picture in ("density", "pairs") else None

    samples, labels = draw_samples(model, n, temperature, seed, label_context, labels, truncation)
    if fmt in PICTURE_FORMATS:
        title = (f"{model.name} on {spec.name}: {n} samples, T={temperature:g}"
                 + (f", truncation {truncation:g}" if truncation is not None else "")
                 + (f", class {label}" if label is not None else ""))
        plot_samples(model, data, samples[:MAX_PICTURE_IMAGES] if picture == "images" else samples, out, title,
                     labels=None if label is not None else labels, label_context=label_context)
    else:
        write_arrays(out, fmt, samples, spec, None if labels is None else label_values(label_context, labels))
    written = [str(out)]
    if extra_npy is not None:
        write_arrays(extra_npy, ".npy", samples, spec, None)
        written.append(str(extra_npy))
    return written
