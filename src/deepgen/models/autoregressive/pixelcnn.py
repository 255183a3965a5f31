"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks"):
an autoregressive image model whose conditionals all come from one pass of a stack of masked
convolutions,

    log p(x | c) = sum_{i, j} sum_{ch=1..C} log p(x_{ch, i, j} | x_{:, <i, :}, x_{:, i, <j}, x_{<ch, i, j}, c)

in raster order with the channels inside a pixel (``raster_ordering``).  The network
(:class:`deepgen.nets.pixelcnn.PixelCNNNet`): a ``kernel`` x ``kernel`` convolution with mask A (the
centre pixel's own value hidden), ``blocks`` residual blocks of 1x1 -> k x k -> 1x1 convolutions with
mask B, and ReLU -> 1x1 -> ReLU -> 1x1 output layers (mask B) giving K numbers per channel and pixel;
for C > 1 channels the feature maps are split into C groups so channel ch sees only channels < ch of
its own pixel.  The stack of masked 3x3 convolutions has the original PixelCNN's blind spot (pixels
up and to the right beyond the receptive field's cone), which the gated PixelCNN removes.

Each conditional is one of :mod:`deepgen.distributions.outputs`: Bernoulli (2 levels), a softmax over
the L levels (the paper's 256-way softmax), or a mixture of discretized logistics (Salimans et al.
2017, PixelCNN++: 3 numbers per component whatever L is); a Gaussian mixture on continuous images.
A class-conditional PixelCNN adds a learned bias per feature map from the one-hot context after the
first layer and in every block.
"""

from __future__ import annotations

from deepgen.data.spec import DataSpec
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, check_image, output_head
from deepgen.nets.pixelcnn import PixelCNNNet

# auto head: a logit per level up to this many levels, a logistic mixture above (8-bit data)


class PixelCNN(AutoregressiveModel):
    """PixelCNN: masked convolutions (mask A, then residual blocks of mask B) giving every conditional."""

    name = "pixelcnn"
    description = "PixelCNN: masked convolutions (mask A then residual mask-B blocks), raster order (exact, images)"
    # tuned on digits (3000 steps): without dropout the test NLL is best near step 500 and then
    # overfits (95.6 nats at step 3000); dropout 0.5 keeps it improving to the end
    train_defaults = {"lr": 3e-3, "batch_size": 64}
    data_shapes = frozenset({"image"})
    param_constraints = {"channels": ">= 2", "blocks": ">= 0", "kernel": ">= 1", "block_kernel": ">= 1",
                         "dropout": "in [0, 1)", "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, channels: int = 64, blocks: int = 4, kernel: int = 7, block_kernel: int = 3,
                 dropout: float = 0.5, output: str = "auto", components: int = 5, context_features: int = 0,
                 standardize: bool = True):
        """Build a PixelCNN for image data ``spec`` (C, H, W).

        Args:
            channels: feature maps of the residual stream (each block's middle layers have half as many).
            blocks: residual blocks (1x1 -> block_kernel x block_kernel -> 1x1, all mask B).
            kernel: odd size of the first (mask A) convolution.
            block_kernel: odd size of the middle convolution of each residual block.
            dropout: dropout rate inside each residual block (regularises small data sets).
            output: each conditional: "auto" (bernoulli for 2 levels, categorical up to 32 levels,
                logistic-mixture above, gaussian-mixture for continuous images) or one of the listed heads.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                a learned bias per feature map after the first layer and in every block.
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, channels=channels, blocks=blocks, kernel=kernel, block_kernel=block_kernel,
                         dropout=dropout, output=output, components=components, context_features=context_features,
                         standardize=standardize)
        check_image(self.name, spec, kernel=kernel, block_kernel=block_kernel)
        _, self.output = output_head(self.name, spec, output, components)
        self.net = PixelCNNNet(spec.shape[0], self.output.params_per_dim, channels, blocks, kernel, block_kernel,
                               dropout, context_features)

    def _params(self, x, context):
        out = self.net(self.scaled(x), context)  # (B, C, K, H, W)
        return out.permute(0, 1, 3, 4, 2).reshape(len(x), self.spec.dim, -1)
