"""Models: one subpackage per family (flows/, autoregressive/, latent/, adversarial/),
one file per model, all speaking the protocol in :mod:`deepgen.models.base`."""

from deepgen.models.base import GenerativeModel
from deepgen.models.registry import build_model, list_models, register

__all__ = ["GenerativeModel", "build_model", "list_models", "register"]
