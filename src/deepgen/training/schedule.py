"""Learning-rate schedule shared by every training adapter."""

from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Linear warm-up over ``warmup`` steps, then constant or cosine decay to 0 at ``total``.

        warm-up:  f = (step + 1) / warmup
        cosine:   f = 1/2 (1 + cos(pi * (step - warmup) / (total - warmup)))
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine" and total > warmup:
        t = min(1.0, (step - warmup) / (total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * t))
    return 1.0
