"""Reusable networks."""

from deepgen.nets.mlp import MLP
from deepgen.nets.resnet import ConvResNet

__all__ = ["MLP", "ConvResNet"]
