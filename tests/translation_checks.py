"""Checks shared by the translator tests (pix2pix, cyclegan): a short fit on (x_B, x_A) batches through the
N-player adapter, and the protocol every translator keeps."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.errors import ConfigError, DensityError
from deepgen.models.players import check_players
from deepgen.models.pretrained import load_model, save_model
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig


def fit_translator(model, b, a, steps, batch=32, lr=1e-3):
    """Train ``model`` for ``steps`` adapter steps on batches (x_B, x_A) (rows of ``b`` and ``a`` stay paired)."""
    cfg = TrainConfig.from_dict({"model": model.name, "data": "digits", "steps": steps, "batch_size": batch,
                                 "lr": lr})
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    loader = DataLoader(TensorDataset(b, a), batch_size=batch, shuffle=True, drop_last=True)
    trainer.fit(AdversarialModule(model, cfg), loader)
    return model.eval()


def check_protocol(model, a):
    """The translator protocol on domain-A examples ``a`` (n, *shape): declarations, sample = translate,
    deterministic eval-mode translation that restores the training mode, context checks, no density."""
    n = len(a)
    assert model.family == "translation" and model.density == "none" and model.objective == "adversarial"
    assert model.can("translate") and not model.can("log_prob") and not model.can("conditional")
    model.train()
    y = model.translate(a)
    assert model.training and all(m.training for m in model.modules())
    assert y.shape == a.shape and torch.equal(y, model.translate(a)) and torch.equal(y, model.sample(n, context=a))
    if model.spec.levels is not None:
        assert torch.equal(y, y.round()) and y.min() >= 0 and y.max() <= model.spec.levels - 1
    with pytest.raises(ConfigError, match="needs domain-A inputs.*deepgen translate"):
        model.sample(n)
    with pytest.raises(ConfigError, match="must have shape"):
        model.sample(n, context=torch.zeros(n, model.spec.dim + 1))
    with pytest.raises(ConfigError, match="must have shape"):
        model.sample(n + 1, context=a)
    with pytest.raises(DensityError):
        model.log_prob(a)
    # the batch is (x_B, x_A); domain B alone is refused with one line
    with pytest.raises(ConfigError, match="batches \\(x_B, x_A\\)"):
        model.loss(a)


def check_players_partition(model):
    """Players own disjoint parameters that together are all the model's parameters."""
    players = model.players()
    check_players(players)
    owned = {id(p) for player in players for p in player.parameters()}
    assert owned == {id(p) for p in model.parameters()}


def gradient_owners(model, loss, names):
    """{network name: whether ``loss`` sends a gradient to any of its parameters}."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, n).parameters())
            for n in names}


def check_save_load(model, a, tmp_path, reverse=False):
    """Saved and reloaded, the model translates exactly as before (both ways with ``reverse``)."""
    save_model(model, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    assert torch.equal(loaded.translate(a), model.translate(a))
    if reverse:
        assert torch.equal(loaded.translate(a, reverse=True), model.translate(a, reverse=True))
    return loaded
