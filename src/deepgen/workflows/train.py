"""Fit a model into a run directory through PyTorch Lightning.

A run directory holds ``config.yaml`` (model config + training config),
``model.safetensors``, ``training_state.safetensors`` (to resume),
``metrics.csv``, TensorBoard events under ``tensorboard/``, ``scores.json`` and
PNG plots.  Every file is replaced atomically.  With ``devices > 1`` and
``strategy: ddp`` the same run trains data-parallel; only global rank 0 writes.

Interrupts.  SIGINT (Ctrl-C) or SIGTERM during training stops it at the end of the
current step (all DDP processes at the same step), saves a checkpoint of that step
(weights, training state, metrics.csv: exactly what ``--resume`` continues from) and raises
:class:`~deepgen.errors.TrainingInterrupted` (exit code 130 or 143) whose message says where
the run is and the command that resumes it.  A second signal while a checkpoint is being
written waits for it to finish; a second signal before the step ends aborts without saving
(the run keeps its last checkpoint).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

from deepgen.data import load_data
from deepgen.data.subsets import exclude_classes
from deepgen.data.energy import load_target
from deepgen.data.context import LabelContext
from deepgen.data.source import canonical_labels, canonical_source, source_sha256
from deepgen.errors import CheckpointError, ConfigError, TrainingError, TrainingInterrupted
from deepgen.io import finish_commit, ignore_file_size_signal, read_yaml, write_error, write_yaml
from deepgen.models.pretrained import BEST_DIR, CONFIG_FILE, WEIGHTS_FILE, load_weights
from deepgen.models.registry import build_model, get_model_class
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import METRICS_FILE, MetricsTable
from deepgen.training.nonfinite import state_finite
from deepgen.training.process import SIGNAL_NAMES, is_rank_zero
from deepgen.training.sampler import SliceBatches, StepBatches, TensorRows, batch_loader
from deepgen.training.schedule import schedule_lr
from deepgen.training.state import STATE_FILE, load_training_state
from deepgen.evaluation.variational import check_can_fit_target
from deepgen.workflows.runlock import RunLock, acquire as acquire_run_lock
from deepgen.workflows.report import SCORES_FILE, write_run_report, write_target_report

# Lightning (seconds to import) is imported only once the inputs are known to be good: in train(),
# after the data are read and the model is built (deepgen.training.stop, .adapters, .progress and
# deepgen.workflows.run_writer import it).


def _check_run_dir(out: Path, resume: bool, overwrite: bool) -> bool:
    """Refuse a run directory that cannot be (re)used as asked; True when it holds a run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    has_run = (out / CONFIG_FILE).exists()
    if resume and not has_run:
        raise CheckpointError(f"{out}: nothing to resume (no {CONFIG_FILE})")
    if not resume and has_run and not overwrite:
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or --overwrite to replace it")
    return has_run


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> RunLock | None:
    """Check and create the run directory and take its lock (:mod:`deepgen.workflows.runlock`), which the
    caller releases; the checks run again under the lock, before ``--overwrite`` deletes anything.
    Returns None on processes other than global rank 0 (they write nothing)."""
    if not is_rank_zero():
        return None
    _check_run_dir(out, resume, overwrite)  # refused before anything is created
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from None
    lock = acquire_run_lock(out)
    try:
        finish_commit(out)  # a checkpoint a killed process left half replaced: complete it
        if _check_run_dir(out, resume, overwrite) and overwrite and not resume:
            for name in (WEIGHTS_FILE, STATE_FILE, METRICS_FILE, SCORES_FILE, CONFIG_FILE):
                (out / name).unlink(missing_ok=True)
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                (out / BEST_DIR / name).unlink(missing_ok=True)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return lock


def label_setup(cfg: TrainConfig, splits) -> tuple[LabelContext | None, dict]:
    """The label context of a ``context: label`` run and the model parameters it implies."""
    params = dict(cfg.model_params)
    if cfg.context != "label":
        return None, params
    if "conditional" not in get_model_class(cfg.model).capabilities:
        raise ConfigError(f"--context label: model '{cfg.model}' is not conditional (it takes no context); "
                          "drop --context or pick a conditional model (deepgen list shows them)")
    label_context = LabelContext.from_splits(splits)
    k = label_context.num_classes
    if params.get("context_features", k) != k:
        raise ConfigError(f"context: label gives {k} context features (one-hot over {k} classes); "
                          f"remove model parameter context_features={params['context_features']}")
    params["context_features"] = k
    return label_context, params


def make_loaders(cfg: TrainConfig, splits, label_context: LabelContext | None, step_offset: int = 0,
                 sources: dict | None = None, steps_per_call: int = 1):
    """Training loader and validation loader; batches are (x,), (x, one-hot label) or, for a translator,
    (x_B, x_A) with ``sources`` the domain-A examples of each split.

    Each batch is one gather per tensor (:class:`~deepgen.training.sampler.TensorRows`), in the order of
    :class:`~deepgen.training.sampler.StepBatches` (a function of the step, also under DDP, where each
    process takes its share of every global batch), started at ``step_offset``, so a resumed run sees
    the batches the uninterrupted one saw.  With ``steps_per_call`` = K > 1 each training item holds K
    consecutive batches (one gather), for K steps in one call.  Validation reads consecutive slices."""
    def rows(split):
        x = splits.split(split)
        if sources is not None:
            return TensorRows(x, sources[split])
        if label_context is None:
            return TensorRows(x)
        return TensorRows(x, label_context.one_hot(splits.split_labels(split)))

    pin = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())
    train_rows = rows("train")
    order = StepBatches(len(train_rows), min(cfg.batch_size, len(train_rows)), cfg.seed, start=step_offset,
                        group=steps_per_call)
    loader = batch_loader(train_rows, order, pin_memory=pin)
    val_rows = rows("val")
    val_loader = batch_loader(val_rows, SliceBatches(len(val_rows), cfg.eval_batch_size), pin_memory=pin)
    return loader, val_loader


def translation_setup(cfg: TrainConfig, splits) -> dict | None:
    """The domain-A examples a translator trains on (None for other models); refuses a translator without a
    translation dataset and a label context on translation data."""
    translator = "translate" in get_model_class(cfg.model).capabilities
    translation = getattr(splits, "translation", None)
    if not translator:
        return None
    if translation is None:
        raise ConfigError(f"--model {cfg.model} translates between two domains; --data {cfg.data} is not a "
                          "translation dataset (built-in: edges2digits, lowres2digits, digits2thick, mixtures; "
                          "yours: aligned:PATH or a folder with trainA/ and trainB/; see README 'Translation')")
    if cfg.context:
        raise ConfigError(f"--context {cfg.context}: a translator's context is its domain-A input; drop --context")
    if getattr(get_model_class(cfg.model), "needs_pairs", False) and not translation.paired:
        raise ConfigError(f"--model {cfg.model} trains on paired data (row i of A is the partner of row i of B); "
                          f"--data {cfg.data} is unpaired: use cyclegan")
    return translation.source


# Fields a resumed run may change; any other field given on resume must equal the saved one.
RESUMABLE = ("steps", "devices", "accelerator", "strategy", "num_nodes", "precision", "progress", "eval_every",
             "checkpoint_every", "checkpoint_minutes", "nan_patience", "max_rollbacks", "threads")


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


def compile_scores(module) -> dict:
    """scores.json's ``compiled`` (whether the loss ran compiled to the end) and ``compile_failure``, for
    --compile runs only."""
    compiled = getattr(module, "compiled", None)
    if compiled is None:
        return {}
    return {"compiled": compiled.active, **({"compile_failure": compiled.failure} if compiled.failure else {})}


def training_threads(cfg: TrainConfig, spec) -> int:
    """torch's intra-op threads for this run: ``cfg.threads`` if > 0; else (auto) OMP_NUM_THREADS if the
    environment sets it, 1 for vector data on a CPU (ops on a few thousand numbers, where waking a second
    thread costs more than it saves: equal steps/s on an idle 2-core machine, 4x more on a busy one), and
    torch's current setting otherwise (images: convolutions gain from threads)."""
    if cfg.threads > 0:
        return cfg.threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    on_cpu = cfg.accelerator == "cpu" or (cfg.accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and len(spec.shape) == 1:
        return 1
    return torch.get_num_threads()


def resume_note(out: Path, cfg: TrainConfig, step_offset: int, saved_total, optimizer_states) -> str:
    """One line on how a resumed run's learning rate continues.

    The schedule is a function of the absolute step and the run's total: resuming with a
    different ``--steps`` recomputes the cosine decay over the new total (from the warm-up end
    to 0 at the new last step), so the lr jumps from its value on the saved schedule to its
    value on the new one at the resumed step.
    """
    base = cfg.lr
    if optimizer_states:
        groups = optimizer_states[0].get("param_groups") or [{}]
        base = float(groups[0].get("initial_lr", base))
    now = schedule_lr(base, step_offset, cfg)
    if not isinstance(saved_total, int) or saved_total == cfg.steps:
        return f"resume: {out} from step {step_offset} of {cfg.steps} (lr {now:.1e})"
    if cfg.lr_schedule != "cosine":
        return f"resume: {saved_total} -> {cfg.steps} steps from step {step_offset} ({cfg.lr_schedule} lr {now:.1e})"
    before = schedule_lr(base, step_offset, cfg, total=saved_total)
    return (f"resume: {saved_total} -> {cfg.steps} steps; the cosine schedule now decays to 0 at step {cfg.steps} "
            f"(lr at step {step_offset}: {before:.1e} on the saved schedule -> {now:.1e} now)")


def interrupted_message(out: Path, step: int, cfg: TrainConfig, signum: int, saved: bool,
                        last_saved: int | None = None) -> str:
    name = SIGNAL_NAMES.get(signum, f"signal {signum}")
    where = shlex.quote(str(out))
    if saved:
        head = (f"interrupted at step {step} of {cfg.steps} ({name}); saved {out} "
                f"({WEIGHTS_FILE}, {STATE_FILE}, {METRICS_FILE})")
    else:
        kept = (f"{out} holds the checkpoint of step {last_saved}" if last_saved is not None
                else f"{out} holds no checkpoint yet")
        head = f"aborted at step {step} of {cfg.steps} (second {name}) without saving; {kept}"
        if last_saved is None:
            return f"{head}\nstart again with --overwrite"
    if saved and step >= cfg.steps:
        return f"{head}\ntraining had finished; the test scores were not written: deepgen score {where}"
    return f"{head}\nresume with: deepgen train --resume {where} --steps {cfg.steps}"


def train(cfg: TrainConfig, out, resume: bool = False, overwrite: bool = False, verbose: bool = False,
          progress: bool | None = None, started: float | None = None) -> dict:
    """Train ``cfg.model`` on ``cfg.data`` into run directory ``out``; returns the scores dict.

    ``started`` (a ``time.perf_counter()`` value; default: this call) is when the command began:
    scores.json's ``time_to_first_step_s`` counts from it.

    The final test figure is computed by :func:`deepgen.evaluation.scoring.score_model`,
    the same function ``deepgen score`` uses, so the two agree exactly.

    Quiet by default: ``progress`` (default ``cfg.progress``) shows training progress on stderr
    (:mod:`deepgen.training.progress`), ``verbose`` prints the final figures.  SIGINT / SIGTERM
    save the current step and raise :class:`~deepgen.errors.TrainingInterrupted`; a loss that
    becomes NaN or infinite raises :class:`~deepgen.errors.TrainingError` (the run keeps its
    last checkpoint).  On processes other than global rank 0 it returns ``{}``.
    """
    started = time.perf_counter() if started is None else started
    quiet_lightning()
    out = Path(out)
    if progress is not None:
        cfg.progress = bool(progress)
    cfg.check()
    cfg.data = canonical_source(cfg.data)  # a run remembers its data exactly (absolute path, format, key)
    cfg.labels = canonical_labels(cfg.labels) or ""
    target = load_target(cfg.data)  # an unnormalised target exp(-U): variational inference, no data
    if target is not None:
        if cfg.context or cfg.labels:
            raise ConfigError(f"--data {cfg.data}: a target exp(-U) has no labels; drop --context / --labels")
        splits, label_context, params = None, None, dict(cfg.model_params)
    else:
        splits = exclude_classes(load_data(cfg.data, labels=cfg.labels or None), cfg.exclude_classes)
        label_context, params = label_setup(cfg, splits)
        translation_setup(cfg, splits)

    import lightning.pytorch as pl

    quiet_lightning()  # after its import, which sets its loggers to INFO
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, splits.spec if target is None else target.spec, params, strict=not resume)
    if target is not None:
        check_can_fit_target(model, target)
    elif not resume:  # on resume the statistics come with the weights
        model.fit_preprocessing(splits.train)
        if model.can("fit_data"):  # e.g. mixtures fitted by EM, then refined by the gradient steps
            model.fit_data(splits)
    cfg.model_params = dict(model.params)
    ignore_file_size_signal()  # past `ulimit -f` a write fails with EFBIG (a one-line WriteError), not SIGXFSZ
    # only now, when data and model are known to be good: a refused run leaves no directory behind
    lock = prepare_run_dir(out, resume, overwrite)  # held until training ends, also on an error or Ctrl-C
    previous_threads = torch.get_num_threads()  # the caller's setting, put back however training ends
    flush = False
    try:
        torch.set_num_threads(training_threads(cfg, model.spec))
        flush = cfg.flush_denormal and torch.set_flush_denormal(True)  # (False: this CPU cannot)
        return _fit(cfg, out, resume, verbose, model, splits, label_context, target, started)
    finally:
        torch.set_num_threads(previous_threads)
        if flush:
            torch.set_flush_denormal(False)  # torch's default (it has no getter for the caller's setting)
        if lock is not None:
            lock.release()


def _fit(cfg: TrainConfig, out: Path, resume: bool, verbose: bool, model, splits, label_context, target,
         started: float) -> dict:
    """The part of :func:`train` that writes the run directory (under its lock)."""
    import lightning.pytorch as pl

    from deepgen.training.adapters import adapter_for
    from deepgen.training.progress import StepProgress
    from deepgen.training.steps_per_call import choose_steps_per_call
    from deepgen.training.stop import StopOnSignal, StopRequested
    from deepgen.training.variational import target_loaders
    from deepgen.workflows.run_writer import RunWriter, select_best

    run_extra = {"train": cfg.to_dict()}
    digest = source_sha256(cfg.data)
    if digest is not None:
        run_extra["data_sha256"] = digest
    if label_context is not None:
        run_extra["context"] = label_context.to_dict()

    table, step_offset, optimizer_states = MetricsTable(), 0, None
    if resume:
        saved_total = (read_yaml(out / CONFIG_FILE).get("train") or {}).get("steps")
        load_weights(model, out / WEIGHTS_FILE)
        optimizer_states, step_offset, rng = load_training_state(out / STATE_FILE)
        if rng is not None:
            torch.set_rng_state(rng)
        table = MetricsTable.read(out / METRICS_FILE)
        if step_offset >= cfg.steps:
            raise ConfigError(f"{out}: run already has {step_offset} steps; pass --steps larger than that")
        if (verbose or cfg.progress) and is_rank_zero():
            print(resume_note(out, cfg, step_offset, saved_total, optimizer_states), file=sys.stderr, flush=True)
    if is_rank_zero():  # written first, so an interrupted run still says what it was
        write_yaml(out / CONFIG_FILE, {"model_config": model.config(), **run_extra})

    module = adapter_for(model, cfg, step_offset, optimizer_states, target=target)
    module.last_saved_step = step_offset if resume else None
    per_call = module.steps_per_call = choose_steps_per_call(cfg, module, model.spec, step_offset, target)
    loader, val_loader = (target_loaders(cfg) if target is not None else
                          make_loaders(cfg, splits, label_context, step_offset, translation_setup(cfg, splits),
                                       steps_per_call=per_call))
    guard = StopOnSignal()
    module.stop_pending = lambda: guard.signum is not None  # a call of several steps ends at the signal's step
    guard.abort = lambda signum: TrainingInterrupted(
        interrupted_message(out, module.absolute_step, cfg, signum, saved=False, last_saved=module.last_saved_step),
        128 + int(signum))
    writer = RunWriter(out, table, cfg, splits, run_extra, guard=guard, target=target, started=started)
    remaining = cfg.steps - step_offset
    trainer = pl.Trainer(
        max_steps=remaining, max_epochs=-1,
        # in calls of Lightning's training step (each runs per_call steps; per_call divides eval_every)
        val_check_interval=-(-min(cfg.eval_every, remaining) // per_call), check_val_every_n_epoch=None,
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=cfg.precision, deterministic=True,
        # adapters with manual optimization (GANs) clip their own gradients
        gradient_clip_val=(cfg.grad_clip or None) if module.automatic_optimization else None,
        logger=pl.loggers.TensorBoardLogger(str(out), name="", version="tensorboard", default_hp_metric=False),
        callbacks=[guard, writer] + ([StepProgress(cfg.steps, step_offset)] if cfg.progress else []),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=cfg.log_every, num_sanity_val_steps=0,
        use_distributed_sampler=False,  # StepBatches and SliceBatches shard themselves
    )
    with guard.installed():
        t0 = time.perf_counter()
        try:
            trainer.fit(module, loader, val_loader)
        except StopRequested:
            pass
        except SystemExit:  # Lightning's SIGTERMException, should its handler have seen the signal first
            if guard.signum is None:
                raise
        except (TrainingError, TrainingInterrupted):
            if trainer.is_global_zero:
                raise
            return {}  # every DDP process stops together; the message is rank 0's to give
        train_seconds = time.perf_counter() - t0
        selection = None
        guard.abort = None  # from here on, signals only wait for the checkpoint below
        if not state_finite(module.model):
            raise TrainingError(f"step {module.absolute_step}: the weights hold NaN or inf at the end of training "
                                f"(not saved); the run keeps the checkpoint of step {module.last_saved_step}; lower "
                                f"--lr (now {cfg.lr:g}) or set --grad-clip, or check the data for extreme values")
        if trainer.is_global_zero:
            module.model.cpu().eval()
            if guard.signum is not None:  # metrics.csv gets the row of the step it stopped at
                writer.log_step(trainer, module.absolute_step)
            writer.checkpoint(trainer, module)
            if cfg.keep == "best" and target is None and guard.signum is None:
                selection = select_best(module.model, splits, label_context, cfg, writer, module.absolute_step)
    if guard.signum is not None:
        if not trainer.is_global_zero:
            return {}
        raise TrainingInterrupted(interrupted_message(out, module.absolute_step, cfg, guard.signum, saved=True),
                                  128 + int(guard.signum))
    if not trainer.is_global_zero:
        return {}
    model = module.model
    if target is not None:
        return write_target_report(model, target, out, cfg, table, steps_per_s=remaining / train_seconds,
                                   world_size=trainer.world_size, verbose=verbose)
    return write_run_report(model, splits, out, cfg, table, steps_per_s=remaining / train_seconds,
                            world_size=trainer.world_size, verbose=verbose, label_context=label_context,
                            extra_scores={**(selection or {}), "nonfinite_steps": module.guard.summary(),
                                          **writer.timing(train_seconds, remaining), **compile_scores(module),
                                          "threads": torch.get_num_threads()})
