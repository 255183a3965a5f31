"""User-facing errors.

Anything a user can cause (a bad file, an unknown name, a wrong shape) raises
:class:`DeepgenError` with one line that names the file or field and what was
expected.  The CLI prints that line on stderr and exits non-zero, without a
traceback (``--debug`` shows it).
"""

from __future__ import annotations

import difflib
from typing import Iterable


class DeepgenError(Exception):
    """An error caused by the user's input, with a message fit to print as is."""


class DataError(DeepgenError, ValueError):
    """A data file or array is malformed, empty or of the wrong shape."""


class ConfigError(DeepgenError, ValueError):
    """A config field, model name or dataset name is wrong."""


class CheckpointError(DeepgenError):
    """A run directory or weights file is missing, corrupt or unsafe."""


class DensityError(DeepgenError, NotImplementedError):
    """A model was asked for a density it does not define (e.g. a GAN)."""


class TrainingError(DeepgenError):
    """Training cannot go on (e.g. the loss became NaN or infinite); the message says what to change."""


class TrainingInterrupted(DeepgenError):
    """Training was stopped by a signal (SIGINT, SIGTERM) after saving a checkpoint at the current step.

    ``exit_code`` is the shell convention 128 + signal number (130 for SIGINT, 143 for SIGTERM);
    the CLI exits with it.  The message says where the run is and how to resume it.
    """

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> ConfigError:
    """A ConfigError for an unknown ``name`` that suggests the closest choice."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown {kind} '{name}'{hint} (choices: {', '.join(choices)})")
