"""Reusable networks: MLPs, conv ResNets, MADE's masked MLP, conv encoder/decoder and DCGAN pairs."""

from deepgen.nets.conv import ConvDecoder, ConvEncoder, DCGANDiscriminator, DCGANGenerator, context_channels
from deepgen.nets.made import MaskedMLP
from deepgen.nets.masked import MaskedLinear
from deepgen.nets.mlp import MLP, FlatMLP
from deepgen.nets.resnet import ConvResNet
from deepgen.nets.odenet import ConvODENet, ODENet

__all__ = ["MLP", "FlatMLP", "ConvResNet", "MaskedLinear", "MaskedMLP", "ConvEncoder", "ConvDecoder",
           "DCGANGenerator", "DCGANDiscriminator", "context_channels", "ODENet", "ConvODENet"]
