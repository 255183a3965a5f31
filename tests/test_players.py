"""N-player adversarial training: a three-player game (BiGAN-shaped: generator, encoder,
discriminator on (x, z) pairs) trained by the same adapter as the GAN, with its own
optimizers, update counts and order, and resumable state."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data.spec import DataSpec
from deepgen.errors import CheckpointError, ConfigError
from deepgen.losses.adversarial import discriminator_bce, generator_nonsaturating
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.players import Player, check_players
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig

SPEC = DataSpec("ring8", (2,))


class ThreePlayerGame(GenerativeModel):
    """G: z -> x, E: x -> z, D: (x, z) -> logit (ALI/BiGAN).  D takes 2 RMSprop updates per
    step, then G (Adam), then E (SGD); G and E fool D by swapping the pair labels."""

    name = "three-player-test"
    family = "implicit"
    density = "none"
    objective = "adversarial"

    def __init__(self, spec, latent: int = 2, context_features: int = 0):
        super().__init__(spec, latent=latent, context_features=context_features)
        self.latent = latent
        self.g = nn.Sequential(nn.Linear(latent, 8), nn.ReLU(), nn.Linear(8, 2))
        self.e = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, latent))
        self.d = nn.Sequential(nn.Linear(2 + latent, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
        self.turns: list[str] = []

    def players(self):
        return [Player("discriminator", self.d.parameters, steps=2, optimizer="rmsprop", lr=5e-3,
                       after_step=lambda: self.turns.append("d")),
                Player("generator", self.g.parameters, after_step=lambda: self.turns.append("g")),
                Player("encoder", self.e.parameters, optimizer="sgd", lr=1e-2,
                       after_step=lambda: self.turns.append("e"))]

    def adversarial_forward(self, batch):
        x, _ = unpack_batch(batch)
        z = torch.randn(len(x), self.latent)
        return {"x": x, "ex": self.e(x), "z": z, "gz": self.g(z)}

    def _logits(self, x, z):
        return self.d(torch.cat([x, z], 1)).squeeze(1)

    def player_loss(self, name, batch, s):
        if name == "discriminator":
            real = self._logits(s["x"], s["ex"].detach())
            fake = self._logits(s["gz"].detach(), s["z"])
            return {"loss": discriminator_bce(real, fake)}
        if name == "generator":
            return {"loss": generator_nonsaturating(self._logits(s["gz"], s["z"]))}
        if name == "encoder":  # recomputed: E's graph in the shared pass is intact, D was updated
            return {"loss": generator_nonsaturating(-self._logits(s["x"], s["ex"]))}
        raise ConfigError(name)

    def sample(self, n, context=None, temperature=1.0):
        with torch.no_grad():
            return self.g(temperature * torch.randn(n, self.latent))


def fit(model, steps, optimizer_states=None, step_offset=0):
    cfg = TrainConfig.from_dict({"model": "gan", "data": "ring8", "steps": steps + step_offset, "batch_size": 16,
                                 "lr_schedule": "constant", "warmup_steps": 0, "grad_clip": 0})
    module = AdversarialModule(model, cfg, step_offset, optimizer_states)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    x = torch.randn(64, 2)
    trainer.fit(module, DataLoader(TensorDataset(x), batch_size=16, shuffle=True, drop_last=True))
    return module, trainer


def snapshot(model):
    return {k: [p.detach().clone() for p in getattr(model, k).parameters()] for k in "gde"}


def moved(before, after):
    return {k for k in before if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}


def test_three_players_take_turns_with_their_own_optimizers():
    torch.manual_seed(0)
    model = ThreePlayerGame(SPEC)
    before = snapshot(model)
    module, trainer = fit(model, steps=3)
    assert "".join(model.turns) == "ddge" * 3  # update order and counts per step
    assert trainer.global_step == 3 and module.absolute_step == 3  # one counted update per step
    kinds = [type(o.optimizer if hasattr(o, "optimizer") else o).__name__ for o in trainer.optimizers]
    assert kinds == ["RMSprop", "Adam", "SGD"]
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers] == [5e-3, 1e-3, 1e-2]
    assert moved(before, snapshot(model)) == {"g", "d", "e"}
    assert {"train/discriminator_loss", "train/generator_loss", "train/encoder_loss"} <= set(module.train_terms)


def test_each_update_moves_only_its_player():
    torch.manual_seed(0)
    model = ThreePlayerGame(SPEC)
    events = []
    players = model.players()
    for p in players:
        prev = p.after_step
        p.after_step = (lambda prev=prev, name=p.name: (events.append((name, snapshot(model))), prev()))
    model.players = lambda: players
    start = snapshot(model)
    fit(model, steps=2)
    owner = {"discriminator": "d", "generator": "g", "encoder": "e"}
    last = start
    for name, snap in events:
        assert moved(last, snap) == {owner[name]}, name
        last = snap


def test_resume_needs_one_state_per_player():
    torch.manual_seed(0)
    model = ThreePlayerGame(SPEC)
    _, trainer = fit(model, steps=2)
    states = [o.state_dict() for o in trainer.optimizers]
    resumed, _ = fit(model, steps=1, optimizer_states=states, step_offset=2)
    assert resumed.absolute_step == 3
    with pytest.raises(CheckpointError, match="3 players"):
        fit(model, steps=1, optimizer_states=states[:2], step_offset=2)


def test_players_are_checked():
    model = ThreePlayerGame(SPEC)
    with pytest.raises(ConfigError, match="both players"):
        check_players([Player("a", model.d.parameters), Player("b", model.d.parameters)])
    with pytest.raises(ConfigError, match="distinct"):
        check_players([Player("a", model.d.parameters), Player("a", model.g.parameters)])
    with pytest.raises(ConfigError, match="optimizer"):
        Player("a", model.d.parameters, optimizer="adagrad")
    with pytest.raises(ConfigError, match="steps"):
        Player("a", model.d.parameters, steps=0)
