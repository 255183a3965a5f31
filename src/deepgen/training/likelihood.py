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
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from deepgen.models.base import unpack_batch
from deepgen.training.compiled import CompiledLoss
from deepgen.training.rng import get_rng_states, set_rng_states
from deepgen.training.nonfinite import NonFiniteGuard
from deepgen.training.schedule import make_optimizer


class LikelihoodModule(pl.LightningModule):
    """Adam + warm-up/cosine schedule on ``model.loss``; keeps the last step's terms as ``train_terms``
    (train/loss, ...: the run writer logs them every ``log_every`` steps) and logs val/nll_nats,
    val/bits_per_dim (val/loss for a model without a density, e.g. an autoencoder)."""

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
        out = self.compiled(batch) if self.compiled is not None else self.model.loss(batch)
        self._terms = {k: v.detach() for k, v in out.items() if torch.is_tensor(v)}
        # read (and written to metrics.csv / TensorBoard) only every log_every steps: no per-step logging cost
        self.train_terms = {f"train/{k}": v for k, v in self._terms.items()}
        return out["loss"]

    def on_train_start(self):
        if not self.guard.has_copy:
            self.guard.remember(self, self.step_offset if self.optimizer_states else None)

    def on_before_optimizer_step(self, optimizer):
        self.guard.check_update(self, optimizer, self._terms.get("loss"), self._terms)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Norm clipping with the total norm the non-finite check already computed (one norm per step, not two);
        nothing to do when that norm is within the bound (the clip factor would be exactly 1)."""
        norm = self.guard.grad_norm
        if gradient_clip_val and gradient_clip_algorithm in (None, "norm") and norm is not None:
            if self.guard.grad_norm_value is not None and self.guard.grad_norm_value + 1e-6 < gradient_clip_val * (1 - 1e-6):
                return
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, norm)
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                            gradient_clip_algorithm=gradient_clip_algorithm)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.guard.end_step(self)

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
