"""deepgen: deep generative models behind one protocol (see README)."""

from deepgen.data import DataSpec, load_data, list_datasets
from deepgen.io import load_model as from_pretrained, save_model
from deepgen.models.registry import build_model, list_models

__version__ = "0.1.0"
__all__ = ["DataSpec", "load_data", "list_datasets", "build_model", "list_models", "from_pretrained", "save_model"]
