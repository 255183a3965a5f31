"""Which Lightning adapter trains a model: chosen by the model's declared ``objective``, never its name."""

from __future__ import annotations

from deepgen.errors import ConfigError
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.likelihood import LikelihoodModule
from deepgen.training.variational import VariationalModule

ADAPTERS = {"likelihood": LikelihoodModule, "adversarial": AdversarialModule}


def adapter_for(model, cfg, step_offset: int = 0, optimizer_states=None, target=None):
    """``Adapter(model, cfg, step_offset, optimizer_states)`` for ``model.objective``; each exposes ``absolute_step``.
    With an unnormalised ``target`` (deepgen.data.energy) the objective is variational inference, whatever the model."""
    if target is not None:
        return VariationalModule(model, cfg, step_offset, optimizer_states, target=target)
    try:
        cls = ADAPTERS[model.objective]
    except KeyError:
        raise ConfigError(f"model '{model.name}' declares unknown objective '{model.objective}' "
                          f"(known: {', '.join(ADAPTERS)})") from None
    return cls(model, cfg, step_offset, optimizer_states)
