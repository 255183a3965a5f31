"""Checks shared by the tests of adversarial models: a short fit through the N-player adapter."""

import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig


def fit(model, x, steps, batch=64):
    """Train ``model`` for ``steps`` adapter steps on the examples ``x`` (no validation, no logging)."""
    cfg = TrainConfig.from_dict({"model": model.name, "data": "digits", "steps": steps, "batch_size": batch})
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    loader = DataLoader(TensorDataset(x), batch_size=batch, shuffle=True, drop_last=True)
    trainer.fit(AdversarialModule(model, cfg), loader)
    return model
