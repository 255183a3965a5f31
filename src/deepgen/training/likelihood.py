"""Lightning adapter for likelihood objectives.

It knows nothing of model internals: it minimises ``model.loss(batch)["loss"]``
(minus the log-likelihood or minus a bound on it, nats per example) and
validates with ``model.log_prob``.  Validation draws its randomness from a fixed
seed and restores the training RNG of every device afterwards
(:mod:`deepgen.training.rng`), so validation never changes the training trajectory.

A loss or gradient that becomes NaN or infinite skips that update; a run of them rolls back to
the last checkpoint with the learning rate halved, and a persistent one stops training with a
one-line :class:`~deepgen.errors.TrainingError` naming the step, the non-finite terms of
``model.loss``, the learning rate and the last checkpoint (:mod:`deepgen.training.nonfinite`).

With ``cfg.compile`` (``--compile``) the training loss runs through ``torch.compile``
(:mod:`deepgen.training.compiled`); validation stays eager.

Optimization is manual: one call of ``training_step`` runs ``steps_per_call`` complete steps on the
consecutive batches its loader item holds (:mod:`deepgen.training.steps_per_call`), so Lightning's own
per-step work is paid once per call; with 1 it is Lightning's usual one step per batch.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from deepgen.models.base import unpack_batch
from deepgen.training.compiled import CompiledLoss
from deepgen.training.fast_adam import FastAdamStep
from deepgen.training.rng import get_rng_states, set_rng_states
from deepgen.training.nonfinite import NonFiniteGuard
from deepgen.training.schedule import make_optimizer


class LikelihoodModule(pl.LightningModule):
    """Adam + warm-up/cosine schedule on ``model.loss``; keeps the last step's terms as ``train_terms``
    (train/loss, ...: the run writer logs them every ``log_every`` steps) and logs val/nll_nats,
    val/bits_per_dim (val/loss for a model without a density, e.g. an autoencoder)."""

    supports_steps_per_call = True

    def __init__(self, model, cfg, step_offset: int = 0, optimizer_states: list | None = None):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.step_offset = step_offset
        self.optimizer_states = optimizer_states
        self._rng_states = None
        self._terms: dict = {}
        self.train_terms: dict = {}  # "train/<term>" -> the last step's value (a detached tensor)
        self.guard = NonFiniteGuard(cfg)
        # manual optimization: training_step runs ``steps_per_call`` steps (deepgen.training.steps_per_call; set
        # by the trainer's caller, with a loader whose batches hold that many steps' rows)
        self.automatic_optimization = False
        self.steps_per_call = 1
        self.first_row: tuple | None = None  # (terms, lr) of step 1 when a call runs several steps
        self.stop_pending = lambda: False  # the trainer's caller points it at its stop-signal flag
        self._fast_adam = None
        # --compile: model.loss through torch.compile (deepgen.training.compiled); else the model's own
        self.compiled = CompiledLoss(model) if getattr(cfg, "compile", False) else None
        # the step of the checkpoint the run directory holds (set by the caller that saves); None: none yet
        self.last_saved_step: int | None = None

    @property
    def absolute_step(self) -> int:
        return self.step_offset + self.global_step

    def configure_optimizers(self):
        opt, sched = make_optimizer(self.model.parameters(), self.cfg, self.step_offset,
                                    (self.optimizer_states or [None])[0])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch, batch_idx):
        """``steps_per_call`` complete optimizer steps, one per batch of the call (see
        :mod:`deepgen.training.steps_per_call`): forward, backward, the non-finite check and clipping
        (:meth:`on_before_optimizer_step`, after a float16 gradient scaler's unscaling), the update, the
        learning-rate schedule, the skip / rollback bookkeeping.  ``trainer.global_step`` counts the steps."""
        opt, sched = self.optimizers(), self.lr_schedulers()
        k = self.steps_per_call
        steps = k if self.trainer.max_steps < 0 else min(k, self.trainer.max_steps - self.global_step)
        size = len(batch[0]) // k
        direct = self._direct(opt)
        for i in range(steps):
            b = batch if k == 1 else tuple(t[i * size:(i + 1) * size] for t in batch)
            if direct:  # what zero_grad(set_to_none=True) does, without its profiler wrapper (~0.1 ms a step)
                for group in opt.optimizer.param_groups:
                    for p in group["params"]:
                        p.grad = None
                out = self.direct_loss(b)  # the gradients already in .grad, or None
                if out is None:
                    out = self.step_loss(b)
                    out["loss"].backward()
            else:
                out = self.step_loss(b)
                opt.zero_grad(set_to_none=True)
            self._terms = {key: v.detach() for key, v in out.items() if torch.is_tensor(v)}
            if direct:
                self.on_before_optimizer_step(opt.optimizer)
                opt._on_before_step()
                self._fast_step(opt.optimizer)
                opt._on_after_step()
            else:
                self.manual_backward(out["loss"])
                opt.step()
            sched.step()
            self.guard.end_step(self)
            if self.absolute_step == 1 and k > 1:  # the run writer's first metrics row is step 1's
                self.first_row = ({f"train/{key}": v for key, v in self._terms.items()},
                                  opt.optimizer.param_groups[0]["lr"])
            if self.stop_pending():  # a stop signal: end the call after this step (it stops before the next)
                break
        # read (and written to metrics.csv / TensorBoard) only every log_every steps: no per-step logging cost
        self.train_terms = {f"train/{key}": v for key, v in self._terms.items()}

    def _fast_step(self, optimizer) -> None:
        """``optimizer.step()``, through :class:`~deepgen.training.fast_adam.FastAdamStep` (the same update)."""
        if self._fast_adam is None or self._fast_adam.optimizer is not optimizer:
            self._fast_adam = FastAdamStep(optimizer)
        self._fast_adam.step()

    def step_loss(self, batch) -> dict:
        """The loss dict of one step's batch (``loss`` is minimised; the other tensors are logged)."""
        return self.compiled(batch) if self.compiled is not None else self.model.loss(batch)

    def direct_loss(self, batch) -> dict | None:
        """``model.loss_and_gradients(batch)`` (the loss with its gradients already accumulated, without autograd's
        graph) where the step loss is the model's own ``loss`` (not compiled, not a subclass's objective); else
        None."""
        if self.compiled is not None or type(self).step_loss is not LikelihoodModule.step_loss:
            return None
        return self.model.loss_and_gradients(batch)

    def _direct(self, opt) -> bool:
        """Take the step without Lightning's wrappers?  Yes in one process at 32-bit precision (no gradient
        scaler, no gradient synchronisation, and no callback of ours listens to the backward or optimizer
        hooks): ``loss.backward()``, this module's own pre-step hook, ``optimizer.step()`` between the two
        counters Lightning's manual loop installs (so ``global_step`` counts it).  About 0.1 ms a step."""
        return (self.trainer.precision in ("32-true", "32") and hasattr(opt, "_on_before_step")
                and type(self.trainer.strategy).__name__ == "SingleDeviceStrategy")

    def on_train_start(self):
        if not self.guard.has_copy:
            self.guard.remember(self, self.step_offset if self.optimizer_states else None)

    def on_before_optimizer_step(self, optimizer):
        self.guard.check_update(self, optimizer, self._terms.get("loss"), self._terms)
        if self.cfg.grad_clip and self.cfg.grad_clip > 0:
            self.clip_with_known_norm(optimizer, self.cfg.grad_clip)

    def clip_with_known_norm(self, optimizer, bound: float) -> None:
        """Norm clipping with the total norm the non-finite check already computed (one norm per step, not two);
        nothing to do when that norm is within the bound (the clip factor would be exactly 1)."""
        norm = self.guard.grad_norm
        if norm is None:
            self.clip_gradients(optimizer, gradient_clip_val=bound, gradient_clip_algorithm="norm")
            return
        if self.guard.grad_norm_value is not None and self.guard.grad_norm_value + 1e-6 < bound * (1 - 1e-6):
            return
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        if grads and all(g.device == norm.device for g in grads):
            # clip_grads_with_norm_'s own arithmetic (g <- g min(1, max_norm / (norm + 1e-6))) in one foreach
            # multiply, without its grouping of the gradients by device and dtype
            torch._foreach_mul_(grads, torch.clamp(float(bound) / (norm + 1e-6), max=1.0))
        else:
            torch.nn.utils.clip_grads_with_norm_(params, bound, norm)

    def on_validation_epoch_start(self):
        self._rng_states = get_rng_states()
        torch.manual_seed(self.cfg.seed)

    def validation_step(self, batch, batch_idx):
        x, context = unpack_batch(batch)
        if self.model.density == "none":  # an autoencoder: no likelihood, validate its training loss
            self.log("val/loss", self.model.loss(batch)["loss"], prog_bar=True, batch_size=len(x), sync_dist=True)
            return
        nll = -self.model.log_prob(x, context).mean()
        self.log("val/nll_nats", nll, prog_bar=True, batch_size=len(x), sync_dist=True)
        self.log("val/bits_per_dim", self.model.spec.bits_per_dim(nll), batch_size=len(x), sync_dist=True)

    def on_validation_epoch_end(self):
        if self._rng_states is not None:
            set_rng_states(self._rng_states)
            self._rng_states = None
