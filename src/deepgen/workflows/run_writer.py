"""What a run writes while it trains: metrics.csv and TensorBoard rows every ``log_every`` steps,
checkpoints (weights, training state, metrics) at validations and on a step or clock cadence, the
sample picture refreshed at validations, and with ``keep: best`` the best weights under RUN/best/.
Only global rank 0 writes."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from deepgen.data.context import LabelContext
from deepgen.evaluation.translation import translation_grid
from deepgen.io import atomic_group, read_yaml
from deepgen.models.pretrained import BEST_DIR, CONFIG_FILE, WEIGHTS_FILE, load_weights, save_model
from deepgen.training.config import TrainConfig
from deepgen.training.metrics import METRICS_FILE, MetricsTable
from deepgen.training.nonfinite import state_finite
from deepgen.training.process import note
from deepgen.training.state import STATE_FILE, save_training_state
from deepgen.training.stop import StopOnSignal
from deepgen.workflows.report import TRANSLATIONS_FILE, write_samples_plot, write_target_fit


# The most of the training time that refreshing the sample picture at validations may take.
PICTURE_SHARE = 0.02
PICTURE_GUESS_S = 0.25  # what a sample picture costs before one was timed (a matplotlib figure, written as PNG)


class RunWriter(pl.Callback):
    """Writes metrics.csv, weights and training state at every validation and at the end (rank 0 only)."""

    def __init__(self, out: Path, table: MetricsTable, cfg: TrainConfig, splits, run_extra: dict,
                 guard: StopOnSignal | None = None, target=None, started: float | None = None):
        self.out, self.table, self.cfg, self.log_every, self.splits = out, table, cfg, cfg.log_every, splits
        self.target = target  # an unnormalised target (variational inference) instead of data
        self.run_extra = run_extra
        self.label_context = (LabelContext.from_dict(run_extra["context"]) if "context" in run_extra else None)
        self.guard = guard
        self.t0 = time.perf_counter()
        self.last_checkpoint_time = time.monotonic()
        # what the run machinery costs (rows, checkpoints, validation, pictures), and when the first step ended
        self.started = started if started is not None else self.t0
        self.machinery_s = 0.0
        self.first_step_s: float | None = None
        self._first_batch_t0: float | None = None
        self.first_step_only_s: float | None = None  # the first call alone (with --compile: its compilation)
        self.first_call_steps = 1  # the steps that call ran (--steps-per-call)
        self.picture_s, self.last_picture_s = 0.0, PICTURE_GUESS_S
        self._validation_t0: float | None = None
        # keep: best -- the lowest validation NLL so far and its step; RUN/best/ holds those weights (a resumed
        # run starts from the record saved there)
        self.best_nll, self.best_step = math.inf, None
        record = (out / BEST_DIR / CONFIG_FILE)
        if cfg.keep == "best" and record.is_file():
            saved = read_yaml(record).get("best") or {}
            self.best_nll, self.best_step = float(saved.get("val_nll_nats", math.inf)), saved.get("step")

    def _row(self, trainer, prefix):
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}

    @staticmethod
    def train_row(module) -> dict:
        """The last step's training terms as floats (one host read, at the logging cadence only)."""
        return RunWriter.terms_row(getattr(module, "train_terms", None) or {})

    @staticmethod
    def terms_row(terms: dict) -> dict:
        if not terms:
            return {}
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).cpu().tolist()
        return dict(zip(terms, values))

    def on_train_start(self, trainer, module):
        # Validation (and its checkpoint) falls on the steps that are multiples of eval_every, counted from the
        # run's first step also after a resume: Lightning counts batches from the resumed fit's start, so its
        # batch counter starts where the run is.  TensorBoard's step axis continues too.
        # (A call of the training step may run several steps: Lightning's batch counter counts calls.)
        loop = trainer.fit_loop.epoch_loop
        for counter in ("ready", "started", "processed", "completed"):
            setattr(loop.batch_progress.total, counter, module.step_offset // self.per_call(module))
        loop._batches_that_stepped = module.step_offset
        self.last_checkpoint_time = time.monotonic()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self._first_batch_t0 is None:
            self._first_batch_t0 = time.perf_counter()

    @staticmethod
    def per_call(module) -> int:
        return int(getattr(module, "steps_per_call", 1) or 1)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        t = time.perf_counter()
        step = module.absolute_step
        if self.first_step_s is None:
            self.first_step_s = t - self.started
            self.first_step_only_s = t - (self._first_batch_t0 if self._first_batch_t0 is not None else t)
            self.first_call_steps = step - module.step_offset
        # TensorBoard's step of what Lightning logs next (validation): the step, also when a call runs several
        trainer.fit_loop.epoch_loop._batches_that_stepped = step - 1  # (Lightning adds 1 after validation)
        first_row = getattr(module, "first_row", None)
        if first_row is not None:  # step 1 ran inside a call of several steps
            module.first_row = None
            if step != 1:
                self.log_step(trainer, 1, *first_row)
        if step % self.log_every == 0 or step == 1:
            self.log_step(trainer, step)
        if self.checkpoint_due(trainer, step):
            module.guard.remember(module, step)
            if trainer.is_global_zero:
                self.log_step(trainer, step)
                self.checkpoint(trainer, module)
        self.machinery_s += time.perf_counter() - t

    def on_validation_start(self, trainer, module):
        self._validation_t0 = time.perf_counter()

    def timing(self, train_s: float, steps: int) -> dict:
        """scores.json's timing figures: seconds from the train() call to the end of the first step; the first
        step alone (``first_step_s``: with --compile, mostly its compilation) and the rate of the ``steps - 1``
        others (``steady_steps_per_s``); the share of the training loop's wall time spent in the run machinery
        (rows, checkpoints, validation, pictures)."""
        first, first_steps = self.first_step_only_s, self.first_call_steps
        rest = train_s - first if first is not None else 0.0
        steady = (steps - first_steps) / rest if steps > first_steps and rest > 0 else None
        lead = 0.0
        if first is not None and first_steps > 1 and steady:  # the first call ran several steps: its later
            lead = min(first, (first_steps - 1) / steady)     # steps at the steady rate are not the first step
        return {"time_to_first_step_s": round(self.first_step_s - lead, 3) if self.first_step_s is not None else None,
                "first_step_s": round(first - lead, 3) if first is not None else None,
                "steady_steps_per_s": round(steady, 2) if steady is not None else None,
                "machinery_s": round(self.machinery_s, 3),
                "machinery_share": round(self.machinery_s / train_s, 4) if train_s > 0 else None}

    def picture_due(self) -> bool:
        """Refresh the picture at this validation?  Yes while pictures have cost at most PICTURE_SHARE of the
        time trained so far, counting this one at the last one's cost (PICTURE_GUESS_S before the first);
        the final picture is written when training ends whatever the budget."""
        elapsed = time.perf_counter() - self.t0
        return self.picture_s + self.last_picture_s <= PICTURE_SHARE * elapsed

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

    def log_step(self, trainer, step: int, terms: dict | None = None, lr: float | None = None) -> None:
        """The training row of ``step`` (the step just taken; else the step whose ``terms`` and ``lr`` are given):
        losses, learning rate, time; into metrics.csv and TensorBoard."""
        row = self.train_row(trainer.lightning_module) if terms is None else self.terms_row(terms)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"] if lr is None else lr
        if trainer.logger is not None:
            trainer.logger.log_metrics(row, step=step)
        row["time_s"] = round(time.perf_counter() - self.t0, 3)
        self.table.update(step, row)

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        try:
            self._after_validation(trainer, module)
        finally:
            if self._validation_t0 is not None:
                self.machinery_s += time.perf_counter() - self._validation_t0
                self._validation_t0 = None

    def _after_validation(self, trainer, module):
        module.last_saved_step = module.absolute_step  # rank 0 saves it now (for the non-finite loss message)
        module.guard.remember(module, module.absolute_step)  # every process: the state rollbacks return to
        if not trainer.is_global_zero:
            return
        row = self._row(trainer, "val/")
        self.table.update(module.absolute_step, row)
        self.checkpoint(trainer, module)
        if self.cfg.keep == "best":
            self.keep_if_best(module.model, row.get("val/nll_nats"), module.absolute_step)
        # samples as training goes: samples.png (target_fit.png) is refreshed at validations, within a time budget;
        # not at the last step, whose picture the final report draws
        if module.absolute_step >= self.cfg.steps or not self.picture_due():
            return
        t = time.perf_counter()
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
        self.last_picture_s = time.perf_counter() - t
        self.picture_s += self.last_picture_s

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
            note(f"deepgen: warning: step {module.absolute_step}: the weights hold NaN or inf; not saved "
                  f"(the run keeps the checkpoint of step {module.last_saved_step})")
            return
        self.last_checkpoint_time = time.monotonic()
        # all three replace their old versions together, or (a full disk, a file-size limit) none does
        with self.guard.saving() if self.guard is not None else contextlib.nullcontext(), atomic_group():
            save_model(module.model, self.out, extra=self.run_extra)
            save_training_state(self.out / STATE_FILE, trainer.optimizers, module.absolute_step)
            self.table.write(self.out / METRICS_FILE)
            module.last_saved_step = module.absolute_step




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
