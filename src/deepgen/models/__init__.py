"""Models: one subpackage per family (flows/, autoregressive/, latent/, adversarial/),
one file per model, all speaking the protocol in :mod:`deepgen.models.base`.

The names below are imported on first use, so ``deepgen.models.names`` (the built-in model table)
can be read without importing torch.
"""

__all__ = ["GenerativeModel", "build_model", "list_models", "register"]


def __getattr__(name):
    if name == "GenerativeModel":
        from deepgen.models.base import GenerativeModel

        return GenerativeModel
    if name in ("build_model", "list_models", "register"):
        from deepgen.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'deepgen.models' has no attribute {name!r}")
