"""Lightning adapter for variational inference: fit q to an unnormalised target exp(-U) / Z.

Each step draws a batch of differentiable samples with their log-density from the model
(``model.sample_and_log_prob``) and minimises the reverse KL up to the constant log Z,

    loss = E_q[log q(z) + U(z)] = KL(q || p) - log Z = -ELBO,

averaged over the batch (a reparameterised, unbiased gradient estimate).  Validation logs the
ELBO on ``eval_batch_size``-sized batches drawn under a fixed seed (the training RNG is restored
afterwards, as in :mod:`deepgen.training.likelihood`) and KL(q || p) = log Z - ELBO with the
target's quadrature log Z.  The batches of the data loaders carry no data, only their size.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.evaluation.variational import check_can_fit_target
from deepgen.models.base import unpack_batch
from deepgen.training.likelihood import LikelihoodModule

VALIDATION_SAMPLES = 4096


class VariationalModule(LikelihoodModule):
    """Adam + warm-up/cosine schedule on -ELBO; logs train/loss, train/elbo_nats, val/elbo_nats, val/kl_nats."""

    supports_steps_per_call = False  # its loader's batches carry only their size

    def __init__(self, model, cfg, step_offset: int = 0, optimizer_states: list | None = None, target=None):
        super().__init__(model, cfg, step_offset, optimizer_states)
        check_can_fit_target(model, target)
        self.target = target
        self.log_z = target.log_z()

    def negative_elbo(self, n: int) -> torch.Tensor:
        """Per-sample log q(z) + U(z) for n fresh samples z ~ q (their mean is -ELBO)."""
        z, log_q = self.model.sample_and_log_prob(n)
        return log_q + self.target.energy(z)

    def step_loss(self, batch) -> dict:
        x, _ = unpack_batch(batch)
        loss = self.negative_elbo(len(x)).mean()
        return {"loss": loss, "elbo_nats": -loss}

    def validation_step(self, batch, batch_idx):
        x, _ = unpack_batch(batch)
        elbo = -self.negative_elbo(len(x)).mean()
        self.log("val/elbo_nats", elbo, prog_bar=True, batch_size=len(x), sync_dist=True)
        self.log("val/kl_nats", self.log_z - elbo, batch_size=len(x), sync_dist=True)


def target_loaders(cfg):
    """Loaders whose batches are empty rows (B, 0): training batches of ``batch_size``, and
    :data:`VALIDATION_SAMPLES` rows for validation in batches of ``eval_batch_size``."""
    train = TensorDataset(torch.zeros(cfg.batch_size * 1000, 0))
    val = TensorDataset(torch.zeros(VALIDATION_SAMPLES, 0))
    return (DataLoader(train, batch_size=cfg.batch_size, drop_last=True),
            DataLoader(val, batch_size=cfg.eval_batch_size))
