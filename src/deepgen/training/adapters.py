"""Which Lightning adapter trains a model: chosen by the model's declared ``objective``, never its name."""

from __future__ import annotations

from deepgen.errors import ConfigError
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.likelihood import LikelihoodModule

ADAPTERS = {"likelihood": LikelihoodModule, "adversarial": AdversarialModule}


def adapter_for(model, cfg, step_offset: int = 0, optimizer_states=None):
    """``Adapter(model, cfg, step_offset, optimizer_states)`` for ``model.objective``; each exposes ``absolute_step``."""
    try:
        cls = ADAPTERS[model.objective]
    except KeyError:
        raise ConfigError(f"model '{model.name}' declares unknown objective '{model.objective}' "
                          f"(known: {', '.join(ADAPTERS)})") from None
    return cls(model, cfg, step_offset, optimizer_states)
