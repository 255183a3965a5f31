"""Optimizer and learning-rate schedule shared by every training adapter."""

from __future__ import annotations

import math

import torch


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


def make_optimizer(params, cfg, step_offset: int = 0, state: dict | None = None, lr: float | None = None,
                   kind: str = "adam", betas=None, weight_decay: float | None = None):
    """An optimizer (Adam by default; RMSprop or SGD) and its warm-up/decay LambdaLR, resumed at ``step_offset``.

    ``lr``, ``betas``, ``weight_decay`` default to the config's values.  ``state`` is a
    saved optimizer state_dict (on resume).  The schedule is a function of the absolute
    step, so a resumed run continues the same curve.
    """
    lr = lr or cfg.lr
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    if kind == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=tuple(betas or cfg.betas), weight_decay=wd)
    elif kind == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    elif kind == "sgd":
        opt = torch.optim.SGD(params, lr=lr, weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {kind!r}")
    if state is not None:
        opt.load_state_dict(state)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s + step_offset, cfg.warmup_steps, cfg.steps, cfg.lr_schedule)
    )
    return opt, sched
