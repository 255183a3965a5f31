"""Models: one module per family, all speaking the protocol in :mod:`deepgen.models.base`."""

from deepgen.models.base import GenerativeModel
from deepgen.models.registry import build_model, list_models

__all__ = ["GenerativeModel", "build_model", "list_models"]
