"""Lightning adapter for adversarial objectives (GANs).

It knows only this much of the model: ``discriminator_parameters()``,
``generator_parameters()``, ``discriminator_loss(batch)``,
``generator_loss(batch)`` (dicts with "loss" and diagnostics) and ``d_steps``.

One ``training_step`` is one *generator* step, preceded by ``model.d_steps``
discriminator steps (manual optimization, two Adam optimizers: index 0 is D,
index 1 is G, as saved in the training state).

Real data for the discriminator.  The first D step uses the batch Lightning
hands to ``training_step``; every further D step draws the next batch from a
second iterator over the same training DataLoader (restarted when exhausted).
Each D step thus sees a fresh, full-size batch — splitting one batch in
``d_steps`` parts would shrink D's batches, to 1/5 of the batch for WGAN's
usual d_steps = 5.  The second iterator shares the loader's sampler, so under
DDP it stays within this rank's shard.

Step counting.  With manual optimization Lightning's ``trainer.global_step``
counts *every* ``LightningOptimizer.step()`` call, over all optimizers (Lightning
2.6, ``_ManualOptimization`` hooks each optimizer's step), so a plain GAN would
reach ``Trainer(max_steps=N)`` after N/2 generator steps.  The D updates are
therefore applied through ``trainer.strategy.optimizer_step`` — the same path
``LightningOptimizer.step`` takes (precision plugin, gradient scaling, the
``on_before_optimizer_step`` hook) minus the step counter — so ``global_step``,
``max_steps`` and ``absolute_step`` count generator steps, one per batch, which
is also what ``val_check_interval`` and ``log_every_n_steps`` count.

Gradient clipping: ``Trainer(gradient_clip_val=...)`` is refused by Lightning
under manual optimization; this module clips each network's gradient norm to
``cfg.grad_clip`` (if > 0) in ``on_before_optimizer_step``, i.e. after AMP
unscaling, via ``self.clip_gradients``.

Validation computes sample metrics only (a GAN has no likelihood): the energy
distance between samples and the validation split (``val/energy_distance``) and,
for data with known modes, ``val/modes_covered`` and ``val/high_quality_pct``
(:mod:`deepgen.evaluation.modes`).  Samples are drawn in eval mode with the RNG
forked and seeded with ``cfg.seed``; the training RNG is snapshotted after every
training step and restored at the end of validation (before callbacks' ``on_validation_end``,
so a checkpoint written there holds the training RNG), so validation never changes
the training trajectory.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from deepgen.errors import CheckpointError
from deepgen.evaluation.modes import PROTOCOL_SAMPLES, mode_metrics_for
from deepgen.evaluation.sample_metrics import sample_distance
from deepgen.models.base import unpack_batch
from deepgen.training.schedule import make_optimizer


class AdversarialModule(pl.LightningModule):
    """Alternating D/G updates with Adam + schedule; logs train/d_loss, train/g_loss, train/d_real, train/d_fake."""

    def __init__(self, model, cfg, step_offset: int = 0, optimizer_states: list | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.cfg = cfg
        self.step_offset = step_offset
        self.optimizer_states = optimizer_states
        self._extra_batches = None
        self._rng_state = None
        self._val_x: list = []
        self._val_context: list = []

    @property
    def absolute_step(self) -> int:
        """Generator steps taken in this run, counting those before a resume."""
        return self.step_offset + self.global_step

    def configure_optimizers(self):
        states = list(self.optimizer_states or [None, None])
        if len(states) != 2:
            raise CheckpointError(f"training state holds {len(states)} optimizer(s); a GAN run needs 2 (D, G)")
        groups = (self.model.discriminator_parameters(), self.model.generator_parameters())
        pairs = [make_optimizer(params, self.cfg, self.step_offset, state) for params, state in zip(groups, states)]
        return [opt for opt, _ in pairs], [sched for _, sched in pairs]

    # --- training -----------------------------------------------------------------
    def _next_real_batch(self):
        """The next batch of a second iterator over the training loader, on this module's device."""
        loader = self.trainer.train_dataloader
        if self._extra_batches is None:
            self._extra_batches = iter(loader)
        try:
            batch = next(self._extra_batches)
        except StopIteration:
            self._extra_batches = iter(loader)
            batch = next(self._extra_batches)
        return self.trainer.strategy.batch_to_device(batch)

    def training_step(self, batch, batch_idx):
        opt_d, opt_g = self.optimizers()
        n = len(unpack_batch(batch)[0])

        # k discriminator steps; G's parameters frozen (toggle), fakes drawn without gradient.
        self.toggle_optimizer(opt_d)
        for k in range(self.model.d_steps):
            d_out = self.model.discriminator_loss(batch if k == 0 else self._next_real_batch())
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_out["loss"])
            # Not opt_d.step(): that would count in trainer.global_step (see the module docstring).
            self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=_no_closure)
        self.untoggle_optimizer(opt_d)

        # One generator step; D's parameters frozen so they get no gradient.
        self.toggle_optimizer(opt_g)
        g_out = self.model.generator_loss(batch)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_out["loss"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        # Both schedules follow the generator step, the unit of cfg.steps.
        for sched in self.lr_schedulers():
            sched.step()

        self.log("train/d_loss", d_out["loss"].detach(), prog_bar=True, batch_size=n)
        self.log("train/g_loss", g_out["loss"].detach(), prog_bar=True, batch_size=n)
        for key, value in d_out.items():
            if key != "loss":
                self.log(f"train/{key}", value, batch_size=n)
        for key, value in g_out.items():
            if key != "loss":
                self.log(f"train/g_{key}", value, batch_size=n)

    def on_before_optimizer_step(self, optimizer):
        if self.cfg.grad_clip and self.cfg.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.cfg.grad_clip, gradient_clip_algorithm="norm")

    # --- validation ---------------------------------------------------------------
    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Snapshot the training RNG after every step: Lightning creates the validation
        # loader's iterator, which draws its base seed from the global RNG, *before* any
        # validation hook runs, so a snapshot taken in a validation hook would be too late.
        self._rng_state = torch.get_rng_state()

    def on_validation_start(self):
        if self._rng_state is None:  # a sanity check before the first training step
            self._rng_state = torch.get_rng_state()

    def on_validation_epoch_start(self):
        torch.manual_seed(self.cfg.seed)
        self._val_x, self._val_context = [], []

    def validation_step(self, batch, batch_idx):
        x, context = unpack_batch(batch)
        self._val_x.append(x.detach().cpu())
        if context is not None:
            self._val_context.append(context.detach().cpu())

    def on_validation_epoch_end(self):
        if self._val_x:
            x = torch.cat(self._val_x)
            context = torch.cat(self._val_context) if self._val_context else None
            metrics = sample_distance(self.model, x, context, seed=self.cfg.seed)
            self.log("val/energy_distance", metrics["energy_distance"], prog_bar=True, sync_dist=True)
            if context is None:
                modes = mode_metrics_for(self.model, self.model.spec.name, n=PROTOCOL_SAMPLES, seed=self.cfg.seed)
                if modes is not None:
                    self.log("val/modes_covered", float(modes["modes_covered"]), prog_bar=True, sync_dist=True)
                    self.log("val/high_quality_pct", modes["high_quality_pct"], sync_dist=True)
        self._val_x, self._val_context = [], []
        if self._rng_state is not None:
            torch.set_rng_state(self._rng_state)
            self._rng_state = None


def _no_closure():
    return None
