"""The process a run trains in: is it the one that writes files, the names of the stop signals, and
unbuffered notes on stderr (safe from a signal handler).  Imports no Lightning (the CLI reads it
before training starts)."""

from __future__ import annotations

import os
import signal
import sys


def is_rank_zero() -> bool:
    """True in the process that writes files (global rank 0), before and after DDP launch."""
    return all(int(os.environ.get(k, 0)) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def note(text: str) -> None:
    """A line on stderr from a signal handler: one unbuffered write, so it cannot collide with a
    write the interrupted code was making through ``sys.stderr`` (skipped if stderr has no file)."""
    try:
        os.write(sys.stderr.fileno(), (text + "\n").encode())
    except (AttributeError, OSError, ValueError):
        pass
