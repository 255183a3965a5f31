"""Stopping a run between two steps on SIGINT / SIGTERM (every DDP process at the same step)."""

from __future__ import annotations

import contextlib
import signal
import threading

import lightning.pytorch as pl
import torch

from deepgen.training.process import SIGNAL_NAMES, is_rank_zero, note


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
                note(f"deepgen: {SIGNAL_NAMES.get(signum, signum)} received: saving a checkpoint at the end of "
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
