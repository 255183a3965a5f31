"""Fit a model into a run directory through PyTorch Lightning.

A run directory holds ``config.yaml`` (model config + training config),
``model.safetensors``, ``training_state.safetensors`` (to resume),
``metrics.csv``, TensorBoard events under ``tensorboard/``, ``scores.json`` and
PNG plots.  Every file is replaced atomically.  With ``devices > 1`` and
``strategy: ddp`` the same run trains data-parallel; only global rank 0 writes.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data import load_data
from deepgen.data.context import LabelContext
from deepgen.data.source import canonical_labels, canonical_source, source_sha256
from deepgen.errors import CheckpointError, ConfigError
from deepgen.io import read_yaml, write_yaml
from deepgen.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, load_weights, save_model
from deepgen.models.registry import build_model
from deepgen.training.adapters import adapter_for
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import METRICS_FILE, MetricsTable
from deepgen.training.progress import StepProgressBar
from deepgen.training.state import STATE_FILE, load_training_state, save_training_state
from deepgen.workflows.report import SCORES_FILE, write_run_report, write_samples_plot


def is_rank_zero() -> bool:
    """True in the process that writes files (global rank 0), before and after DDP launch."""
    return all(int(os.environ.get(k, 0)) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


class RunWriter(pl.Callback):
    """Writes metrics.csv, weights and training state at every validation and at the end (rank 0 only)."""

    def __init__(self, out: Path, table: MetricsTable, cfg: TrainConfig, splits, run_extra: dict):
        self.out, self.table, self.cfg, self.log_every, self.splits = out, table, cfg, cfg.log_every, splits
        self.run_extra = run_extra
        self.label_context = (LabelContext.from_dict(run_extra["context"]) if "context" in run_extra else None)
        self.t0 = time.perf_counter()

    def _row(self, trainer, prefix):
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = module.absolute_step
        if step % self.log_every == 0 or step == 1:
            row = self._row(trainer, "train/")
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            row["time_s"] = round(time.perf_counter() - self.t0, 3)
            self.table.update(step, row)

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.table.update(module.absolute_step, self._row(trainer, "val/"))
        self.checkpoint(trainer, module)
        # samples as training goes: samples.png is refreshed at every validation
        was = module.model.training
        module.model.eval()
        write_samples_plot(module.model, self.splits, self.out / "samples.png", seed=self.cfg.seed,
                           title_suffix=f", step {module.absolute_step}", label_context=self.label_context)
        module.model.train(was)

    def checkpoint(self, trainer, module):
        save_model(module.model, self.out, extra=self.run_extra)
        save_training_state(self.out / STATE_FILE, trainer.optimizers, module.absolute_step)
        self.table.write(self.out / METRICS_FILE)


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if not is_rank_zero():
        return
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    has_run = (out / CONFIG_FILE).exists()
    if resume:
        if not has_run:
            raise CheckpointError(f"{out}: nothing to resume (no {CONFIG_FILE})")
    elif has_run and not overwrite:
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or --overwrite to replace it")
    elif has_run and overwrite:
        for name in (WEIGHTS_FILE, STATE_FILE, METRICS_FILE, SCORES_FILE, CONFIG_FILE):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def label_setup(cfg: TrainConfig, splits) -> tuple[LabelContext | None, dict]:
    """The label context of a ``context: label`` run and the model parameters it implies."""
    params = dict(cfg.model_params)
    if cfg.context != "label":
        return None, params
    label_context = LabelContext.from_splits(splits)
    k = label_context.num_classes
    if params.get("context_features", k) != k:
        raise ConfigError(f"context: label gives {k} context features (one-hot over {k} classes); "
                          f"remove model parameter context_features={params['context_features']}")
    params["context_features"] = k
    return label_context, params


def make_loaders(cfg: TrainConfig, splits, label_context: LabelContext | None):
    """Training loader (shuffled) and validation loader; batches are x or (x, one-hot label)."""
    def dataset(split):
        x = splits.split(split)
        if label_context is None:
            return TensorDataset(x)
        return TensorDataset(x, label_context.one_hot(splits.split_labels(split)))

    n_train = len(splits.train)
    batch = min(cfg.batch_size, n_train)
    loader = DataLoader(dataset("train"), batch_size=batch, shuffle=True, drop_last=n_train > batch)
    # its own generator: creating a loader iterator otherwise draws from (and shifts) the training RNG
    val_loader = DataLoader(dataset("val"), batch_size=cfg.eval_batch_size,
                            generator=torch.Generator().manual_seed(cfg.seed))
    return loader, val_loader


# Fields a resumed run may change; any other field given on resume must equal the saved one.
RESUMABLE = ("steps", "devices", "accelerator", "strategy", "num_nodes", "precision", "progress", "eval_every")


def resume_config(out: Path, overrides: dict, params: dict | None = None) -> TrainConfig:
    """The saved training config of run ``out`` with the fields a resume may change.

    A field that would change what is trained (model, data, context, labels, batch size, lr,
    schedule, seed, model parameters, ...) and differs from the saved value is refused with one
    line naming it: a resume continues the same run.
    """
    saved = read_yaml(out / CONFIG_FILE).get("train")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{out / CONFIG_FILE}: no 'train' block to resume from")
    for key, value in overrides.items():
        if key in RESUMABLE:
            continue
        mine = canonical_source(value) if key == "data" else value
        if mine != saved.get(key):
            raise ConfigError(f"--resume {out}: the run was trained with {key}={saved.get(key)!r}, not {value!r}; "
                              f"a resume continues the same run (only {', '.join(RESUMABLE)} may change)")
    for key, value in (params or {}).items():
        if (saved.get("model_params") or {}).get(key) != value:
            raise ConfigError(f"--resume {out}: the run was trained with model parameter "
                              f"{key}={(saved.get('model_params') or {}).get(key)!r}, not {value!r}; "
                              "model parameters cannot change on resume")
    saved.update({k: v for k, v in overrides.items() if k in RESUMABLE})
    return TrainConfig.from_dict(saved, source=str(out / CONFIG_FILE))


def quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*is deprecated.*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def train(cfg: TrainConfig, out, resume: bool = False, overwrite: bool = False, verbose: bool = True) -> dict:
    """Train ``cfg.model`` on ``cfg.data`` into run directory ``out``; returns the scores dict.

    The final test figure is computed by :func:`deepgen.evaluation.scoring.score_model`,
    the same function ``deepgen score`` uses, so the two agree exactly.
    """
    quiet_lightning()
    out = Path(out)
    cfg.check()
    cfg.data = canonical_source(cfg.data)  # a run remembers its data exactly (absolute path, format, key)
    cfg.labels = canonical_labels(cfg.labels) or ""
    prepare_run_dir(out, resume, overwrite)
    splits = load_data(cfg.data, labels=cfg.labels or None)
    label_context, params = label_setup(cfg, splits)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, splits.spec, params, strict=not resume)
    cfg.model_params = dict(model.params)
    run_extra = {"train": cfg.to_dict()}
    digest = source_sha256(cfg.data)
    if digest is not None:
        run_extra["data_sha256"] = digest
    if label_context is not None:
        run_extra["context"] = label_context.to_dict()

    table, step_offset, optimizer_states = MetricsTable(), 0, None
    if resume:
        load_weights(model, out / WEIGHTS_FILE)
        optimizer_states, step_offset, rng = load_training_state(out / STATE_FILE)
        if rng is not None:
            torch.set_rng_state(rng)
        table = MetricsTable.read(out / METRICS_FILE)
        if step_offset >= cfg.steps:
            raise ConfigError(f"{out}: run already has {step_offset} steps; pass --steps larger than that")
    if is_rank_zero():  # written first, so an interrupted run still says what it was
        write_yaml(out / CONFIG_FILE, {"model_config": model.config(), **run_extra})

    module = adapter_for(model, cfg, step_offset, optimizer_states)
    loader, val_loader = make_loaders(cfg, splits, label_context)
    writer = RunWriter(out, table, cfg, splits, run_extra)
    remaining = cfg.steps - step_offset
    trainer = pl.Trainer(
        max_steps=remaining, max_epochs=-1,
        val_check_interval=min(cfg.eval_every, remaining), check_val_every_n_epoch=None,
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=cfg.precision, deterministic=True,
        # adapters with manual optimization (GANs) clip their own gradients
        gradient_clip_val=(cfg.grad_clip or None) if module.automatic_optimization else None,
        logger=pl.loggers.TensorBoardLogger(str(out), name="", version="tensorboard", default_hp_metric=False),
        callbacks=[writer] + ([StepProgressBar(cfg.steps, step_offset)] if cfg.progress else []),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=cfg.log_every, num_sanity_val_steps=0,
        use_distributed_sampler=True,
    )
    t0 = time.perf_counter()
    trainer.fit(module, loader, val_loader)
    train_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {}
    model = module.model.cpu().eval()
    writer.checkpoint(trainer, module)
    return write_run_report(model, splits, out, cfg, table, steps_per_s=remaining / train_seconds,
                            world_size=trainer.world_size, verbose=verbose, label_context=label_context)
