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
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data import load_data
from deepgen.data.subsets import exclude_classes
from deepgen.data.energy import load_target
from deepgen.data.context import LabelContext
from deepgen.data.source import canonical_labels, canonical_source, source_sha256
from deepgen.errors import CheckpointError, ConfigError, TrainingError, TrainingInterrupted
from deepgen.io import atomic_group, finish_commit, ignore_file_size_signal, read_yaml, write_error, write_yaml
from deepgen.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, load_weights, save_model
from deepgen.models.registry import build_model, get_model_class
from deepgen.training.adapters import adapter_for
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import METRICS_FILE, MetricsTable
from deepgen.training.nonfinite import state_finite
from deepgen.training.progress import StepProgress
from deepgen.training.sampler import StepBatches
from deepgen.training.schedule import schedule_lr
from deepgen.training.state import STATE_FILE, load_training_state, save_training_state
from deepgen.evaluation.variational import check_can_fit_target
from deepgen.training.variational import target_loaders
from deepgen.workflows.runlock import RunLock, acquire as acquire_run_lock
from deepgen.evaluation.translation import translation_grid
from deepgen.workflows.report import SCORES_FILE, TRANSLATIONS_FILE, write_run_report, write_samples_plot, write_target_fit, write_target_report


def is_rank_zero() -> bool:
    """True in the process that writes files (global rank 0), before and after DDP launch."""
    return all(int(os.environ.get(k, 0)) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def _note(text: str) -> None:
    """A line on stderr from a signal handler: one unbuffered write, so it cannot collide with a
    write the interrupted code was making through ``sys.stderr`` (skipped if stderr has no file)."""
    try:
        os.write(sys.stderr.fileno(), (text + "\n").encode())
    except (AttributeError, OSError, ValueError):
        pass


class StopOnSignal(pl.Callback):
    """SIGINT / SIGTERM ask training to stop at the end of the current step.

    :meth:`installed` puts the handlers in place (main thread only) and restores the previous
    ones on exit, also on error.  Lightning replaces the SIGTERM handler when ``fit`` starts
    (its own would end training with ``SIGTERMException``), so ``on_train_start`` puts ours back;
    Lightning restores ours when ``fit`` ends.  Before every step the request is agreed across
    DDP processes (one ``max`` reduction) and all of them raise :class:`StopRequested`.

    While :meth:`saving` is active, signals are only recorded, so a file pair being written
    (weights + training state) is never cut in half; a second signal outside it raises
    :class:`TrainingInterrupted` at once (``abort``).
    """

    def __init__(self):
        self.signum: int | None = None  # the first signal received
        self._saving = 0
        self._abort_pending = False
        self._previous: dict = {}
        self.abort = None  # callable(signum) -> TrainingInterrupted, for a second signal

    def __getstate__(self):  # picklable for ddp_spawn: no handlers, no callables
        state = self.__dict__.copy()
        state["_previous"], state["abort"] = {}, None
        return state

    # --- handlers -----------------------------------------------------------------
    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if is_rank_zero():
                _note(f"deepgen: {SIGNAL_NAMES.get(signum, signum)} received: saving a checkpoint at the end of "
                      "this step (send it again to stop without saving)")
            return
        if self._saving:
            self._abort_pending = True
            return
        if self.abort is not None:
            raise self.abort(signum)

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNAL_NAMES:
            current = signal.getsignal(signum)
            if current != self._handler:
                self._previous.setdefault(signum, current)
                signal.signal(signum, self._handler)

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    @contextlib.contextmanager
    def installed(self):
        self._install()
        try:
            yield self
        finally:
            self._restore()

    @contextlib.contextmanager
    def saving(self):
        """Defer signals while files are written; a second signal received meanwhile aborts afterwards."""
        self._saving += 1
        try:
            yield
        finally:
            self._saving -= 1
        if not self._saving and self._abort_pending and self.abort is not None:
            self._abort_pending = False
            raise self.abort(self.signum)

    # --- hooks ----------------------------------------------------------------------
    def on_train_start(self, trainer, module):
        self._install()  # over Lightning's SIGTERM handler (or, in a spawned process, for the first time)
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None and getattr(connector, "received_sigterm", False):
            connector.received_sigterm = False  # a SIGTERM it saw before this point is ours to handle

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        # Checked before a step, i.e. once the previous step is complete: its optimizer and schedule
        # updates, its finite-loss check and any validation due.  Raising (instead of setting
        # ``trainer.should_stop``, which would run an extra validation first) stops at once.
        requested = float(self.signum or 0)
        if trainer.world_size > 1:  # every process stops at the same step
            flag = torch.tensor(requested, device=trainer.strategy.root_device)
            requested = float(trainer.strategy.reduce(flag, reduce_op="max"))
        if requested:
            if self.signum is None:  # received by another process
                self.signum = int(requested)
            raise StopRequested(self.signum)


class StopRequested(Exception):
    """Raised inside ``trainer.fit`` between two steps when a stop signal was received."""


class RunWriter(pl.Callback):
    """Writes metrics.csv, weights and training state at every validation and at the end (rank 0 only)."""

    def __init__(self, out: Path, table: MetricsTable, cfg: TrainConfig, splits, run_extra: dict,
                 guard: StopOnSignal | None = None, target=None):
        self.out, self.table, self.cfg, self.log_every, self.splits = out, table, cfg, cfg.log_every, splits
        self.target = target  # an unnormalised target (variational inference) instead of data
        self.run_extra = run_extra
        self.label_context = (LabelContext.from_dict(run_extra["context"]) if "context" in run_extra else None)
        self.guard = guard
        self.t0 = time.perf_counter()
        self.last_checkpoint_time = time.monotonic()
        # keep: best -- the lowest validation NLL so far and its step; RUN/best/ holds those weights (a resumed
        # run starts from the record saved there)
        self.best_nll, self.best_step = math.inf, None
        record = (out / BEST_DIR / CONFIG_FILE)
        if cfg.keep == "best" and record.is_file():
            saved = read_yaml(record).get("best") or {}
            self.best_nll, self.best_step = float(saved.get("val_nll_nats", math.inf)), saved.get("step")

    def _row(self, trainer, prefix):
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}

    def on_train_start(self, trainer, module):
        # Validation (and its checkpoint) falls on the steps that are multiples of eval_every, counted from the
        # run's first step also after a resume: Lightning counts batches from the resumed fit's start, so its
        # batch counter starts where the run is.  TensorBoard's step axis continues too.
        loop = trainer.fit_loop.epoch_loop
        for counter in ("ready", "started", "processed", "completed"):
            setattr(loop.batch_progress.total, counter, module.step_offset)
        loop._batches_that_stepped = module.step_offset
        self.last_checkpoint_time = time.monotonic()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = module.absolute_step
        if step % self.log_every == 0 or step == 1:
            self.log_step(trainer, step)
        if self.checkpoint_due(trainer, step):
            module.guard.remember(module, step)
            if trainer.is_global_zero:
                self.log_step(trainer, step)
                self.checkpoint(trainer, module)

    def checkpoint_due(self, trainer, step: int) -> bool:
        """A step checkpoint (``--checkpoint-every``) or a wall-clock one (``--checkpoint-minutes``, one process
        only) is due after ``step``; validations checkpoint on their own."""
        every, minutes = self.cfg.checkpoint_every, self.cfg.checkpoint_minutes
        if step >= self.cfg.steps or step % self.cfg.eval_every == 0:
            return False  # the end and the validations save anyway
        if every and step % every == 0:
            return True
        return bool(minutes) and trainer.world_size == 1 and \
            time.monotonic() - self.last_checkpoint_time >= 60.0 * minutes

    def log_step(self, trainer, step: int) -> None:
        """The training row of ``step`` (the step just taken): losses, learning rate, time."""
        row = self._row(trainer, "train/")
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["time_s"] = round(time.perf_counter() - self.t0, 3)
        self.table.update(step, row)

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        module.last_saved_step = module.absolute_step  # rank 0 saves it now (for the non-finite loss message)
        module.guard.remember(module, module.absolute_step)  # every process: the state rollbacks return to
        if not trainer.is_global_zero:
            return
        row = self._row(trainer, "val/")
        self.table.update(module.absolute_step, row)
        self.checkpoint(trainer, module)
        if self.cfg.keep == "best":
            self.keep_if_best(module.model, row.get("val/nll_nats"), module.absolute_step)
        # samples as training goes: samples.png (target_fit.png) is refreshed at every validation
        was = module.model.training
        module.model.eval()
        suffix = f", step {module.absolute_step}"
        if self.target is not None:
            write_target_fit(module.model, self.target, self.out, seed=self.cfg.seed, title_suffix=suffix)
        elif module.model.can("translate"):
            translation_grid(module.model, self.splits, self.out / TRANSLATIONS_FILE, split="val", seed=self.cfg.seed)
        else:
            write_samples_plot(module.model, self.splits, self.out / "samples.png", seed=self.cfg.seed,
                               title_suffix=suffix, label_context=self.label_context)
        module.model.train(was)

    def keep_if_best(self, model, val_nll: float | None, step: int) -> bool:
        """Save ``model`` to RUN/best/ when ``val_nll`` is the lowest validation NLL so far (keep: best)."""
        if val_nll is None or not math.isfinite(val_nll) or val_nll >= self.best_nll:
            return False
        with self.guard.saving() if self.guard is not None else contextlib.nullcontext():
            save_model(model, self.out / BEST_DIR,
                       extra={**self.run_extra, "best": {"step": int(step), "val_nll_nats": float(val_nll)}})
        self.best_nll, self.best_step = float(val_nll), int(step)
        return True

    def checkpoint(self, trainer, module):
        """Weights, training state and metrics.csv of the current step; signals wait until all three are written.
        Weights with a NaN or an infinity are never written (the run keeps its last checkpoint)."""
        if not state_finite(module.model):
            _note(f"deepgen: warning: step {module.absolute_step}: the weights hold NaN or inf; not saved "
                  f"(the run keeps the checkpoint of step {module.last_saved_step})")
            return
        self.last_checkpoint_time = time.monotonic()
        # all three replace their old versions together, or (a full disk, a file-size limit) none does
        with self.guard.saving() if self.guard is not None else contextlib.nullcontext(), atomic_group():
            save_model(module.model, self.out, extra=self.run_extra)
            save_training_state(self.out / STATE_FILE, trainer.optimizers, module.absolute_step)
            self.table.write(self.out / METRICS_FILE)
            module.last_saved_step = module.absolute_step


BEST_DIR = "best"  # keep: best -- the weights of the lowest validation NLL so far (a loadable model directory)


def select_best(model, splits, label_context, cfg: TrainConfig, writer: RunWriter, step: int) -> dict:
    """keep: best -- score the final weights on the validation split like validation does (same batches, same
    seed), keep them if no earlier validation was lower, else load RUN/best/ into ``model`` and make them the
    run's weights (model.safetensors; the training state stays the last step's, so a resume continues from
    the kept weights).  Returns what was selected, for scores.json."""
    from deepgen.evaluation.likelihood import per_example_log_prob

    ctx = label_context.one_hot(splits.split_labels("val")) if label_context is not None else None
    final = -per_example_log_prob(model, splits.val, batch_size=cfg.eval_batch_size, seed=cfg.seed,
                                  context=ctx).mean().item()
    writer.keep_if_best(model, final, step)
    if writer.best_step != step:
        load_weights(model, writer.out / BEST_DIR / WEIGHTS_FILE)
        with writer.guard.saving() if writer.guard is not None else contextlib.nullcontext():
            save_model(model, writer.out, extra=writer.run_extra)
    return {"keep": "best", "selected_step": writer.best_step, "selected_val_nll_nats": writer.best_nll,
            "last_step_val_nll_nats": final}


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
                 sources: dict | None = None):
    """Training loader and validation loader; batches are x, (x, one-hot label) or, for a translator,
    (x_B, x_A) with ``sources`` the domain-A examples of each split.

    One process: the batch order is :class:`~deepgen.training.sampler.StepBatches` (a function of the
    step), started at ``step_offset``, so a resumed run sees the batches the uninterrupted one saw.
    Several processes: a shuffled loader that Lightning gives a distributed sampler."""
    def dataset(split):
        x = splits.split(split)
        if sources is not None:
            return TensorDataset(x, sources[split])
        if label_context is None:
            return TensorDataset(x)
        return TensorDataset(x, label_context.one_hot(splits.split_labels(split)))

    n_train = len(splits.train)
    batch = min(cfg.batch_size, n_train)
    # own generators: creating a loader iterator otherwise draws from (and shifts) the training RNG
    if cfg.devices * cfg.num_nodes == 1:
        order = StepBatches(n_train, batch, cfg.seed, start=step_offset)
        loader = DataLoader(dataset("train"), batch_sampler=order, generator=torch.Generator().manual_seed(cfg.seed))
    else:
        loader = DataLoader(dataset("train"), batch_size=batch, shuffle=True, drop_last=n_train > batch)
    val_loader = DataLoader(dataset("val"), batch_size=cfg.eval_batch_size,
                            generator=torch.Generator().manual_seed(cfg.seed))
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
             "checkpoint_every", "checkpoint_minutes", "nan_patience", "max_rollbacks")


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
          progress: bool | None = None) -> dict:
    """Train ``cfg.model`` on ``cfg.data`` into run directory ``out``; returns the scores dict.

    The final test figure is computed by :func:`deepgen.evaluation.scoring.score_model`,
    the same function ``deepgen score`` uses, so the two agree exactly.

    Quiet by default: ``progress`` (default ``cfg.progress``) shows training progress on stderr
    (:mod:`deepgen.training.progress`), ``verbose`` prints the final figures.  SIGINT / SIGTERM
    save the current step and raise :class:`~deepgen.errors.TrainingInterrupted`; a loss that
    becomes NaN or infinite raises :class:`~deepgen.errors.TrainingError` (the run keeps its
    last checkpoint).  On processes other than global rank 0 it returns ``{}``.
    """
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
    try:
        return _fit(cfg, out, resume, verbose, model, splits, label_context, target)
    finally:
        if lock is not None:
            lock.release()


def _fit(cfg: TrainConfig, out: Path, resume: bool, verbose: bool, model, splits, label_context, target) -> dict:
    """The part of :func:`train` that writes the run directory (under its lock)."""
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
    loader, val_loader = (target_loaders(cfg) if target is not None else
                          make_loaders(cfg, splits, label_context, step_offset, translation_setup(cfg, splits)))
    guard = StopOnSignal()
    guard.abort = lambda signum: TrainingInterrupted(
        interrupted_message(out, module.absolute_step, cfg, signum, saved=False, last_saved=module.last_saved_step),
        128 + int(signum))
    writer = RunWriter(out, table, cfg, splits, run_extra, guard=guard, target=target)
    remaining = cfg.steps - step_offset
    trainer = pl.Trainer(
        max_steps=remaining, max_epochs=-1,
        val_check_interval=min(cfg.eval_every, remaining), check_val_every_n_epoch=None,
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=cfg.precision, deterministic=True,
        # adapters with manual optimization (GANs) clip their own gradients
        gradient_clip_val=(cfg.grad_clip or None) if module.automatic_optimization else None,
        logger=pl.loggers.TensorBoardLogger(str(out), name="", version="tensorboard", default_hp_metric=False),
        callbacks=[guard, writer] + ([StepProgress(cfg.steps, step_offset)] if cfg.progress else []),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=cfg.log_every, num_sanity_val_steps=0,
        use_distributed_sampler=True,
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
                            extra_scores={**(selection or {}), "nonfinite_steps": module.guard.summary()})
