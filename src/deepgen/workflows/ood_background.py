"""The background model of the likelihood-ratio OOD score (Ren et al. 2019): the run's own model and
training config, trained on perturbed copies of its training split.

    x~_i = u_i ~ Uniform{0, ..., L-1}   with probability mu,   x~_i = x_i otherwise   (each value alone)

A model of x~ learns the background statistics (how many pixels are on, their overall level) but
not the semantics the perturbation destroys; log p(x) - log p_bg(x) cancels the first and keeps the
second.  Ren et al. add L2 regularisation to the background model: ``weight_decay``.

Files: the background run, RUN/ood/background/ by default (a run directory; ``deepgen ood`` finds it
there), which also holds ``perturbed-train.npy`` (the perturbed training split as integer levels, read
back by the .npy loader on the same shape and levels) and ``background.json`` (mu, seed, the source
run).  The .npy file
is a user data file to the training workflow, so it is split 80/10/10 again: the background model
trains on 80% of the perturbed training split and validates on 10%.

This is a workflow (it trains), so it lives here and not in :mod:`deepgen.ood`, which is a sibling
of the workflows and imports none of them; the detector takes the trained run as ``background=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepgen.data import load_data
from deepgen.errors import ConfigError, DataError
from deepgen.io import atomic_path, read_yaml, write_json
from deepgen.data.spec import DataSpec
from deepgen.data.subsets import exclude_classes
from deepgen.models.pretrained import CONFIG_FILE, model_config
from deepgen.models.registry import get_model_class
from deepgen.training.config import TrainConfig
from deepgen.workflows.runs import run_data_source
from deepgen.workflows.train import train

BACKGROUND_DIR = Path("ood") / "background"
DATA_FILE = "perturbed-train.npy"
RECORD_FILE = "background.json"


def perturb(x: torch.Tensor, levels: int, mu: float, generator: torch.Generator) -> torch.Tensor:
    """Each value of ``x`` replaced, with probability ``mu``, by a uniform level in 0..L-1."""
    if not 0 <= mu <= 1:
        raise ConfigError(f"mu {mu!r}: expected a probability in [0, 1]")
    replace = torch.rand(x.shape, generator=generator) < mu
    noise = torch.randint(levels, x.shape, generator=generator).to(x.dtype)
    return torch.where(replace, noise, x)


def train_background(run, mu: float = 0.2, steps: int | None = None, out=None, weight_decay: float | None = None,
                     seed: int | None = None, overwrite: bool = False, verbose: bool = False) -> Path:
    """Train the background model of run ``run`` (see the module docstring) into ``out`` (default
    RUN/ood/background) with the run's training config, ``steps`` (default: 15 % of the run's, at least
    100) and ``weight_decay`` (default: 1e-4) changed; returns the background run's directory.

    The defaults keep the background short and regularised: one trained as long as the model learns the
    digits' semantics too, and the ratio loses them (realnvp on digits, 2000 steps: mean AUROC over the
    built-in sets 0.971 with a 300-step background at weight decay 1e-4, 0.720 with a 2000-step one).

    Discrete data only (the perturbation draws levels).  A conditional run gets an unconditional
    background model; a run trained with ``train.exclude_classes`` is perturbed on the classes it
    was trained on."""
    run = Path(run)
    where = run / CONFIG_FILE
    cfg_all = read_yaml(where)
    saved = dict(cfg_all.get("train") or {})
    if not saved.get("model"):
        raise ConfigError(f"{where}: no training config (train.model); train_background needs a run trained "
                          "with deepgen train")
    spec_block = model_config(run)["data"]
    levels = spec_block.get("levels")
    if not levels:
        raise ConfigError(f"{run}: likelihood-ratio backgrounds perturb discrete levels; data "
                          f"'{spec_block.get('name')}' are continuous")
    data_name, labels = run_data_source(run)
    splits = exclude_classes(load_data(data_name, labels=labels), saved.get("exclude_classes") or [],
                             "train.exclude_classes")
    x = splits.train
    out = Path(out) if out is not None else run / BACKGROUND_DIR
    if (out / CONFIG_FILE).exists() and not overwrite:
        raise ConfigError(f"{out}: already holds a run; pass overwrite=True to replace it")
    seed = int(saved.get("seed", 0) if seed is None else seed)
    noisy = perturb(x, int(levels), float(mu), torch.Generator().manual_seed(seed))
    data_file = out / DATA_FILE
    with atomic_path(data_file) as tmp, open(tmp, "wb") as f:
        np.save(f, noisy.numpy().astype(np.int16 if levels <= 2 ** 15 else np.int64))
    check = load_data(str(data_file), labels="none").spec
    if tuple(check.shape) != tuple(splits.spec.shape) or check.levels != levels:
        raise DataError(f"{data_file}: reads back as shape {tuple(check.shape)} with {check.levels} levels, the run's "
                        f"data have {tuple(splits.spec.shape)} with {levels} (too few perturbed values: raise mu)")

    # a run records every parameter; those its data's shape does not use would be refused on a fresh build
    unused = get_model_class(saved["model"]).unused_params(DataSpec.from_dict(spec_block)) | {"context_features"}
    params = {k: v for k, v in (saved.get("model_params") or {}).items() if k not in unused}
    overrides = {"data": str(data_file), "labels": "", "context": "", "model_params": params, "seed": seed,
                 "progress": False}
    overrides["exclude_classes"] = []  # the perturbed file has no labels; its examples are of the kept classes
    overrides["steps"] = int(steps) if steps is not None else max(100, int(0.15 * int(saved.get("steps", 2000))))
    overrides["weight_decay"] = float(weight_decay) if weight_decay is not None else 1e-4
    cfg = TrainConfig.from_dict({**saved, **overrides}, source=str(where))
    train(cfg, out, overwrite=overwrite, verbose=verbose)
    write_json(out / RECORD_FILE, {"run": str(run.resolve()), "background": str(out.resolve()), "mu": float(mu),
                                   "seed": seed, "steps": cfg.steps, "weight_decay": cfg.weight_decay,
                                   "n_train_perturbed": len(noisy)})
    return out
