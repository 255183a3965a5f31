"""Players of an adversarial game: which networks, their optimizers, their turns.

An adversarial model declares ``players()`` — a list of :class:`Player` in update
order — plus two methods the training adapter calls
(:mod:`deepgen.training.adversarial`):

    shared = model.adversarial_forward(batch)          # one shared forward pass per round
    out    = model.player_loss(name, batch, shared)    # {"loss": ..., diagnostics...} for one player

The adapter knows nothing else about the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from deepgen.errors import ConfigError

OPTIMIZERS = ("adam", "rmsprop", "sgd")


@dataclass
class Player:
    """One network (or group of networks) of a game and how it is updated.

    ``parameters``: a callable returning the player's parameters (each parameter belongs to
    one player).  ``steps``: updates per training step (a WGAN critic: 5).  ``optimizer``:
    "adam", "rmsprop" or "sgd"; ``lr``, ``betas``, ``weight_decay``: None takes the training
    config's value.  ``after_step``: called after each of this player's updates (e.g. a
    WGAN critic's weight clipping).
    """

    name: str
    parameters: Callable[[], Iterable[torch.nn.Parameter]]
    steps: int = 1
    optimizer: str = "adam"
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None
    after_step: Callable[[], None] | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"player '{self.name}': steps must be >= 1, got {self.steps}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"player '{self.name}': optimizer must be one of {', '.join(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"player '{self.name}': lr must be > 0, got {self.lr}")


def check_players(players: list[Player]) -> None:
    """Names unique, every player owns parameters, and no parameter is shared by two players."""
    names = [p.name for p in players]
    if len(set(names)) != len(names) or not players:
        raise ConfigError(f"an adversarial model needs players with distinct names, got {names}")
    seen: dict[int, str] = {}
    for p in players:
        params = list(p.parameters())
        if not params:
            raise ConfigError(f"player '{p.name}' has no parameters")
        for q in params:
            if id(q) in seen:
                raise ConfigError(f"a parameter belongs to both players '{seen[id(q)]}' and '{p.name}'")
            seen[id(q)] = p.name
