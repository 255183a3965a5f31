"""Reusable networks: MLPs, conv ResNets, MADE's masked MLP, conv encoder/decoder, DCGAN and MLP GAN pairs
and the GAN tricks' layers (virtual / conditional batch norm, spectral norm, minibatch discrimination)."""

from deepgen.nets.conv import ConvDecoder, ConvEncoder, DCGANDiscriminator, DCGANGenerator, context_channels
from deepgen.nets.gan_mlp import MLPDiscriminator, MLPGenerator
from deepgen.nets.made import MaskedMLP
from deepgen.nets.masked import MaskedLinear
from deepgen.nets.minibatch import MinibatchDiscrimination
from deepgen.nets.mlp import MLP, FlatMLP
from deepgen.nets.normalization import ConditionalBatchNorm, VirtualBatchNorm, spectral_normalize
from deepgen.nets.resnet import ConvResNet
from deepgen.nets.odenet import ConvODENet, ODENet

__all__ = ["MLP", "FlatMLP", "ConvResNet", "MaskedLinear", "MaskedMLP", "ConvEncoder", "ConvDecoder",
           "DCGANGenerator", "DCGANDiscriminator", "context_channels", "ODENet", "ConvODENet", "MLPGenerator",
           "MLPDiscriminator", "MinibatchDiscrimination", "ConditionalBatchNorm", "VirtualBatchNorm", "spectral_normalize"]
