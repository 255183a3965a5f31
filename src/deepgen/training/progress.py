"""Training progress on stderr, counted in *steps* (Lightning's default bar counts epochs).

On a terminal (stderr is a tty): one tqdm bar from the first to the last step, showing the
loss and the latest validation figure.  Anywhere else (a log file, a batch job, a pipe): plain
lines, no carriage returns, one at the start, one every ``LOG_INTERVAL_S`` seconds and one at
the end::

    step 0/3000 (0%)  start
    step 1200/3000 (40%)  loss 2.345  val/nll_nats 2.4  12.3 steps/s  ETA 2m26s
    step 3000/3000 (100%)  loss 2.301  val/nll_nats 2.38  12.4 steps/s  done in 4m02s

Only global rank 0 prints.
"""

from __future__ import annotations

import sys
import time

import lightning.pytorch as pl

# Seconds between two log lines when stderr is not a terminal (tests lower it).
LOG_INTERVAL_S = 10.0
# Seconds between two redraws of the bar on a terminal (a redraw reads the loss: a host sync on a GPU).
BAR_INTERVAL_S = 0.2


def format_duration(seconds: float) -> str:
    """``45s``, ``2m26s``, ``1h02m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class StepProgress(pl.Callback):
    """Progress over training steps: a tqdm bar on a terminal, log lines otherwise.

    ``total``: the run's last step; ``initial``: the step training starts from (a resume);
    ``interval``: seconds between log lines (default :data:`LOG_INTERVAL_S`); ``stream``:
    where to write (default ``sys.stderr`` when training starts); ``bar``: force the bar (True)
    or the log lines (False) instead of asking the stream whether it is a terminal.
    """

    def __init__(self, total: int, initial: int = 0, interval: float | None = None, stream=None,
                 bar: bool | None = None):
        self.total, self.initial = total, initial
        self.interval, self._stream, self._want_bar = interval, stream, bar
        self.stream = None
        self.bar = None
        self.lines = False
        self.step = initial
        self.losses: dict[str, str] = {}  # shown name -> formatted value
        self.validation: dict[str, str] = {}
        self.t0 = self.t_last = 0.0

    # --- what is shown ----------------------------------------------------------
    def _update_losses(self, module) -> None:
        terms = getattr(module, "train_terms", None) or {}  # train/loss, or every player's train/<name>_loss
        shown = {k: v for k, v in terms.items() if k == "train/loss" or (k.startswith("train/") and k.endswith("_loss"))}
        for key, value in shown.items():
            self.losses[key[len("train/"):]] = f"{float(value):.4g}"

    def _update_validation(self, trainer) -> None:
        shown = trainer.progress_bar_metrics  # the figures logged with prog_bar=True
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/") and (key in shown or not shown):
                self.validation[key] = f"{float(value):.4g}"

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self.t0
        return (self.step - self.initial) / elapsed if elapsed > 0 else 0.0

    def line(self, tail: str = "") -> str:
        """One progress line: step, share done, figures, speed and ``tail`` (or the ETA)."""
        pct = 100.0 * self.step / self.total if self.total else 100.0
        parts = [f"step {self.step}/{self.total} ({pct:.0f}%)"]
        parts += [f"{k} {v}" for k, v in {**self.losses, **self.validation}.items()]
        rate = self._rate()
        if self.step > self.initial:
            parts.append(f"{rate:.3g} steps/s" if rate < 1000 else f"{rate:.0f} steps/s")
        if tail:
            parts.append(tail)
        elif rate > 0:
            parts.append(f"ETA {format_duration((self.total - self.step) / rate)}")
        return "  ".join(parts)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # --- hooks --------------------------------------------------------------------
    def on_train_start(self, trainer, module):
        if not trainer.is_global_zero:
            return
        self.stream = self._stream if self._stream is not None else sys.stderr
        self.step = self.initial
        self.t0 = self.t_last = time.perf_counter()
        use_bar = _isatty(self.stream) if self._want_bar is None else self._want_bar
        if use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, desc="train", unit="step",
                            dynamic_ncols=True, file=self.stream, leave=True)
        else:
            self.lines = True
            self._print(self.line("resume" if self.initial else "start"))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.bar is None and not self.lines:
            return
        self.step = module.absolute_step
        now = time.perf_counter()
        if self.bar is not None:  # redrawn at most every BAR_INTERVAL_S (and at the last step)
            if now - self.t_last >= BAR_INTERVAL_S or self.step >= self.total:
                self.t_last = now
                self._update_losses(module)
                self.bar.n = self.step
                self.bar.set_postfix({**self.losses, **self.validation}, refresh=False)
                self.bar.refresh()
            return
        interval = LOG_INTERVAL_S if self.interval is None else self.interval
        if now - self.t_last >= interval and self.step < self.total:
            self.t_last = now
            self._update_losses(module)
            self._print(self.line())

    def on_validation_end(self, trainer, module):
        if (self.bar is None and not self.lines) or trainer.sanity_checking:
            return
        self._update_validation(trainer)

    def on_train_end(self, trainer, module):
        self._update_losses(module)
        if self.bar is not None:
            self.bar.n = self.step
            self.bar.set_postfix({**self.losses, **self.validation}, refresh=False)
            self.bar.close()
            self.bar = None
        elif self.lines:
            elapsed = format_duration(time.perf_counter() - self.t0)
            self._print(self.line(f"done in {elapsed}" if self.step >= self.total else f"stopped after {elapsed}"))
            self.lines = False

    def on_exception(self, trainer, module, exception):
        """Training stopped early (a signal, a non-finite loss): close the bar, or a last line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            self._print(self.line(f"stopped after {format_duration(time.perf_counter() - self.t0)}"))
            self.lines = False


# The name this callback had when it only drew the bar.
StepProgressBar = StepProgress
