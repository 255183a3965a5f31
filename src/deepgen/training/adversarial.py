"""Lightning adapter for adversarial games with any number of players.

The model declares its players (:class:`deepgen.models.players.Player`, in update
order: which parameters, optimizer kind and settings, updates per training step)
and two methods; the adapter knows nothing else:

    shared = model.adversarial_forward(batch)        # a shared forward pass (e.g. fakes G(z), with gradient)
    out    = model.player_loss(name, batch, shared)  # {"loss": ..., diagnostics} for player ``name``

One training step, for each player in order and each of its ``steps`` updates:
the first update of every player uses the step's batch and its shared pass; every
further update draws the next batch from a second iterator over the training
loader and runs a fresh shared pass (a WGAN critic's 5 updates see 5 full batches).
During a player's update the other players' parameters are frozen (Lightning's
``toggle_optimizer``), so they receive no gradient.  A loss that reuses a shared
tensor built from parameters updated earlier in the same step must recompute it
(autograd refuses stale graphs); losses of later players may reuse everything
built from parameters not yet updated, which is what a shared pass is for.

How the games of the lecture notes fit:

* GAN (here): players discriminator (``d_steps`` updates), generator; shared = G(z).
* WGAN: critic with ``optimizer="rmsprop"``, ``steps=5`` and ``after_step`` clipping its
  weights; generator with RMSprop.  WGAN-GP: critic loss adds
  lambda (||grad D(x_hat)|| - 1)^2 with x_hat interpolated per example inside ``player_loss``;
  Adam(0, 0.9) via the players' ``betas``.
* InfoGAN: three players — discriminator, generator, and the Q head (or Q trained with G by
  putting both in one player's ``parameters``); shared = (z, codes, G(z, c)).
* BiGAN / ALI: discriminator on (x, E(x)) and (G(z), z); generator and encoder as two
  players (or one); shared = (E(x), G(z)).
* CycleGAN: players generators (G_AB and G_BA together) then discriminators (D_A and D_B);
  shared = the four translations; D losses use image-pool fakes, detached.
* AAE: players autoencoder (reconstruction phase), discriminator on codes, encoder as
  generator (regularisation phase); each phase's loss re-encodes after the reconstruction update.

Step counting.  With manual optimization Lightning's ``trainer.global_step``
counts every ``LightningOptimizer.step()`` call.  All updates but the last of a
training step are therefore applied through ``trainer.strategy.optimizer_step``
(the same path minus the counter: precision plugin, gradient scaling, the
``on_before_optimizer_step`` hook), so ``global_step``, ``max_steps``,
``val_check_interval`` and ``absolute_step`` count training steps.

Gradient clipping: Lightning refuses ``Trainer(gradient_clip_val=...)`` under manual
optimization; each player's gradient norm is clipped to ``cfg.grad_clip`` (if > 0) in
``on_before_optimizer_step``.  Every player's learning-rate schedule steps once per
training step.  Optimizer states are saved in player order for ``--resume``.

Validation computes sample metrics only (no likelihood): the energy distance
between samples and the validation split (``val/energy_distance``) and, for data
with known modes, ``val/modes_covered`` and ``val/high_quality_pct``.  The
training RNG (every device) is snapshotted after each training step and restored
after validation, so validation never changes the training trajectory.

A player's update whose loss or gradients are NaN or infinite is skipped; a run of such steps
rolls back to the last checkpoint with every player's learning rate halved, and a persistent one
stops training with a one-line :class:`~deepgen.errors.TrainingError` naming the step, the
non-finite terms (``<player>_<key>``), the learning rate and the last checkpoint
(:mod:`deepgen.training.nonfinite`).

Data order.  In a single-process run, the extra batches come from their own deterministic
stream (:class:`~deepgen.training.sampler.StepBatches`, stream 1), positioned by the step, so a
resumed run draws the same extra batches as the uninterrupted one.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from deepgen.errors import CheckpointError
from deepgen.evaluation.modes import PROTOCOL_SAMPLES, mode_metrics_for
from deepgen.evaluation.sample_metrics import sample_distance
from deepgen.models.base import unpack_batch
from deepgen.models.players import check_players
from deepgen.training.rng import get_rng_states, set_rng_states
from deepgen.training.nonfinite import NonFiniteGuard
from deepgen.training.sampler import StepBatches, batch_loader
from deepgen.training.schedule import make_optimizer


class AdversarialModule(pl.LightningModule):
    """Turn-based updates of the model's players; keeps train/<player>_loss and each player's diagnostics
    of the last step as ``train_terms`` (the run writer logs them every ``log_every`` steps)."""

    def __init__(self, model, cfg, step_offset: int = 0, optimizer_states: list | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.cfg = cfg
        self.step_offset = step_offset
        self.optimizer_states = optimizer_states
        self.players = model.players()
        check_players(self.players)
        self._extra_batches = None
        self._rng_states = None
        self._val_x: list = []
        self._val_context: list = []
        self._update = None  # (loss, terms) of the update about to be applied
        self.train_terms: dict = {}  # "train/<player>_<term>" -> the last step's value (a detached tensor)
        self.guard = NonFiniteGuard(cfg)
        # the step of the checkpoint the run directory holds (set by the caller that saves); None: none yet
        self.last_saved_step: int | None = None

    @property
    def absolute_step(self) -> int:
        """Training steps taken in this run, counting those before a resume."""
        return self.step_offset + self.global_step

    def configure_optimizers(self):
        states = list(self.optimizer_states or [None] * len(self.players))
        if len(states) != len(self.players):
            raise CheckpointError(f"training state holds {len(states)} optimizer(s); this model has "
                                  f"{len(self.players)} players ({', '.join(p.name for p in self.players)})")
        opts, scheds = [], []
        for player, state in zip(self.players, states):
            opt, sched = make_optimizer(player.parameters(), self.cfg, self.step_offset, state, lr=player.lr,
                                        kind=player.optimizer, betas=player.betas, weight_decay=player.weight_decay)
            opts.append(opt)
            scheds.append(sched)
        return opts, scheds

    # --- training -----------------------------------------------------------------
    def _extra_loader(self):
        """The loader of the extra batches: the same data in stream 1 of :class:`StepBatches`, at the position
        this step implies (every training step draws ``sum(steps) - players`` extra batches); a loader
        without that order (a target's) is reused as it is."""
        loader = self.trainer.train_dataloader
        order = getattr(loader, "sampler", None)
        if not isinstance(order, StepBatches):
            return loader
        per_step = sum(p.steps - 1 for p in self.players)
        stream = StepBatches(order.n, order.batch_size, order.seed, start=self.absolute_step * per_step,
                             stream=1, drop_last=order._drop_last)
        return batch_loader(loader.dataset, stream, pin_memory=loader.pin_memory)

    def _next_real_batch(self):
        """The next batch of a second iterator over the training data, on this module's device."""
        if self._extra_batches is None:
            self._extra_loader_ = self._extra_loader()
            self._extra_batches = iter(self._extra_loader_)
        try:
            batch = next(self._extra_batches)
        except StopIteration:
            self._extra_batches = iter(self._extra_loader_)
            batch = next(self._extra_batches)
        return self.trainer.strategy.batch_to_device(batch)

    def training_step(self, batch, batch_idx):
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        terms = {}
        total = sum(p.steps for p in self.players)
        done = 0
        shared = self.model.adversarial_forward(batch)
        for player, opt in zip(self.players, opts):
            self.toggle_optimizer(opt)
            for k in range(player.steps):
                b, sh = (batch, shared) if k == 0 else self._fresh_round()
                out = self.model.player_loss(player.name, b, sh)
                opt.zero_grad(set_to_none=True)
                # later players may backpropagate through the same shared pass
                self.manual_backward(out["loss"], retain_graph=True)
                self._update = (out["loss"], {f"{player.name}_{key}": v for key, v in out.items()})
                done += 1
                if done == total:
                    opt.step()  # the one counted update of this training step
                else:
                    self.trainer.strategy.optimizer_step(opt.optimizer, closure=_no_closure)
                if player.after_step is not None:
                    player.after_step()
            self.untoggle_optimizer(opt)
            for key, value in out.items():  # logged every log_every steps by the run writer
                if torch.is_tensor(value):
                    terms[f"train/{player.name}_{key}"] = value.detach()
        self.train_terms = terms
        for sched in self._schedulers():
            sched.step()

    def _fresh_round(self):
        b = self._next_real_batch()
        return b, self.model.adversarial_forward(b)

    def _schedulers(self):
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        return scheds if isinstance(scheds, list) else [scheds]

    def on_train_start(self):
        if not self.guard.has_copy:
            self.guard.remember(self, self.step_offset if self.optimizer_states else None)

    def on_before_optimizer_step(self, optimizer):
        if self._update is not None:  # drops the gradients of a non-finite update (skipped)
            self.guard.check_update(self, optimizer, *self._update)
            self._update = None
        if self.cfg.grad_clip and self.cfg.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.cfg.grad_clip, gradient_clip_algorithm="norm")

    # --- validation ---------------------------------------------------------------
    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.guard.end_step(self)
        # Snapshot after every step: Lightning may draw from the global RNG (creating the
        # validation loader's iterator) before any validation hook runs.
        self._rng_states = get_rng_states()

    def on_validation_start(self):
        if self._rng_states is None:  # a sanity check before the first training step
            self._rng_states = get_rng_states()

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
        if self._rng_states is not None:
            set_rng_states(self._rng_states)
            self._rng_states = None


def _no_closure():
    return None
