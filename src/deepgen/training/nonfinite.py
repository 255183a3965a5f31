"""Non-finite losses and gradients: skip the update, roll back after a run of them, stop when it persists.

Every optimizer update is checked before it is applied: if the loss or the norm of all gradients is
NaN or infinite (a gradient entry is, or the norm overflows), the gradients are dropped (set to None, so the optimizer leaves every parameter and its
moments as they were) and the step counts as *skipped*; the step counter, the learning-rate
schedule and the data order go on as usual, so a skipped step costs one batch.

``nan_patience`` = K skipped steps in a row roll the model and its optimizers back to the last
checkpoint (an in-memory copy of what was last saved, or the initial state before the first save)
with the learning rate halved:

    lr_base <- lr_base / 2          (the warm-up/cosine factor of the step still applies)

``max_rollbacks`` = R rollbacks later, the next run of K skipped steps stops training with one line
naming the step, the loss and what to try (:class:`~deepgen.errors.TrainingError`); with R = 0 the
first run of K stops it.  A non-finite value therefore never reaches a parameter, so never a saved
file; the run directory keeps its last checkpoint.

Decisions are agreed across DDP processes (one boolean reduction per update), so every process skips,
rolls back and stops together.  Each process keeps its own copy of the checkpoint state, taken at the
same steps (validations and ``--checkpoint-every``; wall-clock checkpoints are taken by single-process
runs only).  Under float16 mixed precision only the loss is checked: the gradient scaler already skips
updates whose scaled gradients overflow, which is how it calibrates its scale.
"""

from __future__ import annotations

import copy
import math

import torch

from deepgen.training.schedule import nonfinite_error, nonfinite_terms


def tensors_finite(tensors) -> bool:
    """True when every floating-point tensor in ``tensors`` is finite (one host synchronisation)."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if torch.is_tensor(t) and t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def total_norm(grads: list) -> torch.Tensor:
    """||(g_1, ..., g_n)||_2 = || (||g_1||, ..., ||g_n||) ||_2, the value ``torch.nn.utils.get_total_norm`` gives
    (NaN or inf if an entry is), computed without its per-tensor grouping when all are on one device."""
    try:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    except RuntimeError:  # several devices
        return torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)


def state_finite(module: torch.nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``module`` is finite."""
    return tensors_finite(module.state_dict().values())


class NonFiniteGuard:
    """The skip / rollback / stop policy of one training run (see the module docstring).

    The adapter calls :meth:`check_update` before each optimizer update and :meth:`end_step` after each
    training step; the run writer calls :meth:`remember` whenever it saves a checkpoint.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.patience = int(getattr(cfg, "nan_patience", 5))
        self.max_rollbacks = int(getattr(cfg, "max_rollbacks", 3))
        # float16 mixed precision: the gradient scaler skips steps whose scaled gradients overflow (that is how it
        # finds its scale), so only the loss is checked here
        self.check_grads = str(getattr(cfg, "precision", "32-true")) not in ("16-mixed", "16")
        self.skipped = 0  # steps skipped in all
        self.in_row = 0  # skipped steps since the last good one
        self.rollbacks = 0
        self.lr_scale = 1.0
        self._step_bad = False
        self.grad_norm = None  # the total gradient norm check_update computed for the update about to be applied
        self.grad_norm_value: float | None = None  # the same, as a float
        self._terms: dict = {}
        self._saved = None  # (step, model state, optimizer states)

    # --- the checkpoint copy ---------------------------------------------------------
    def remember(self, module, step) -> None:
        """Keep a copy of the model and optimizer states of checkpoint ``step`` (None: the initial state);
        weights holding a NaN or an infinity are never kept."""
        if not state_finite(module.model):
            return
        model_state = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
        opts = [copy.deepcopy(o.state_dict()) for o in _optimizers(module)]
        self._saved = (step, model_state, opts)

    @property
    def has_copy(self) -> bool:
        return self._saved is not None

    @property
    def saved_step(self):
        return None if self._saved is None else self._saved[0]

    # --- per update / per step ----------------------------------------------------------
    def check_update(self, module, optimizer, loss, terms: dict) -> bool:
        """Before an update: True (and the gradients dropped) when ``loss`` or a gradient of
        ``optimizer``'s parameters is not finite on any process; ``terms`` (the loss dict) name the
        culprits in the stop message."""
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.grad_norm = self.grad_norm_value = None
        watched = [loss.detach().float().reshape(())] if torch.is_tensor(loss) and loss.is_floating_point() else []
        if grads and self.check_grads:  # one fused norm over all gradients: NaN or inf if any entry is (or if it overflows)
            self.grad_norm = total_norm(grads)  # (clipping reuses it)
            watched.append(self.grad_norm.float().reshape(()).to(watched[0].device if watched else None))
        values = torch.stack(watched).tolist() if watched else []  # one host read for the loss and the norm
        if self.grad_norm is not None:
            self.grad_norm_value = values[-1]  # (clipping skips its multiply when the norm is within the bound)
        local = not all(math.isfinite(v) for v in values)
        trainer = module.trainer
        bad = trainer.strategy.reduce_boolean_decision(local, all=False) if trainer.world_size > 1 else local
        if bad:
            optimizer.zero_grad(set_to_none=True)
            self._step_bad = True
            if local and not self._terms:
                self._terms = nonfinite_terms(terms) or {"gradient": float("nan")}
        return bad

    def end_step(self, module) -> None:
        """After a training step: count it, roll back after ``patience`` skipped steps in a row, stop after
        ``max_rollbacks`` rollbacks."""
        if not self._step_bad:
            self.in_row = 0
            self._terms = {}
            return
        self._step_bad = False
        self.skipped += 1
        self.in_row += 1
        if self.in_row < self.patience:
            return
        step = module.absolute_step
        if self.rollbacks >= self.max_rollbacks:
            raise self._persistent_error(module, step)
        self.rollback(module)
        self.in_row = 0
        self._terms = {}

    def rollback(self, module) -> None:
        """Restore the remembered checkpoint's weights and optimizer states; halve the base learning rate."""
        if self._saved is None:
            raise RuntimeError("NonFiniteGuard.rollback before remember()")
        _, model_state, opt_states = self._saved
        module.model.load_state_dict(model_state)
        self.rollbacks += 1
        self.lr_scale *= 0.5
        schedulers = _schedulers(module)
        for j, (opt, state) in enumerate(zip(_optimizers(module), opt_states)):
            now = [(g["lr"], g.get("initial_lr", g["lr"])) for g in opt.param_groups]
            opt.load_state_dict(copy.deepcopy(state))
            sched = schedulers[j] if j < len(schedulers) else None
            for i, group in enumerate(opt.param_groups):
                group["lr"], group["initial_lr"] = now[i][0] * 0.5, now[i][1] * 0.5
                if sched is not None:
                    sched.base_lrs[i] = group["initial_lr"]

    def _persistent_error(self, module, step: int):
        """The one-line stop: which loss, after how many rollbacks, what to try."""
        err = nonfinite_error(step, self._terms, self.cfg, module.last_saved_step)
        lr_now = _optimizers(module)[0].param_groups[0]["lr"]
        head, _, tail = str(err).partition("; ")
        if self.rollbacks:
            how = (f"; {self.in_row} steps in a row after {self.rollbacks} rollback(s) to step "
                   f"{self.saved_step if self.saved_step is not None else 0}, each halving the learning rate "
                   f"(now {lr_now:.3g})")
        else:
            how = f"; {self.in_row} steps in a row (--nan-patience {self.patience}, --max-rollbacks 0)"
        return type(err)(f"{head}{how}; {tail}")

    def summary(self) -> dict:
        return {"skipped_steps": self.skipped, "rollbacks": self.rollbacks, "lr_scale": self.lr_scale}


def _optimizers(module) -> list:
    opts = module.optimizers(use_pl_optimizer=False)
    return opts if isinstance(opts, list) else [opts]


def _schedulers(module) -> list:
    scheds = module.lr_schedulers()
    if scheds is None:
        return []
    return scheds if isinstance(scheds, list) else [scheds]
