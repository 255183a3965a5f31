"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"):
an autoregressive image model in the raster order with channels inside a pixel,

    log p(x | c) = sum_{i, j} sum_{ch} log p(x_{ch,i,j} | x_{:, <i, :}, x_{:, i, <j}, x_{<ch, i, j}, c)

whose conditionals all come from one pass of a convolutional network with a vertical stack (rows
above), a horizontal stack (the row to the left, the pixel's earlier channels), gated units
tanh(W_f * x + V_f c) * sigmoid(W_g * x + V_g c), residual and skip connections, and the one-hot
context c entering every gate (class-conditional generation): see :mod:`deepgen.nets.gated_pixelcnn`.
The two stacks leave no blind spot: with enough layers every earlier pixel reaches every conditional.

Each conditional is a categorical over the levels (up to 32 levels), a Bernoulli (2 levels), a
mixture of discretized logistics (more levels), or a Gaussian mixture on continuous images.  Sampling
takes H W C steps; step (i, j, ch) runs the network on rows 0..i only (the network is causal in rows,
so those rows' conditionals are the full pass's).
"""

from __future__ import annotations

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, check_image, output_head
from deepgen.nets.gated_pixelcnn import GatedPixelCNNNet

# Above this many levels the default head is a logistic mixture (3 K numbers per dim, not L).


class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN: vertical + horizontal stacks of gated causal convolutions (no blind spot)."""

    name = "gated-pixelcnn"
    description = ("gated PixelCNN: vertical and horizontal causal conv stacks (no blind spot), gated units, "
                   "class-conditional (exact, images)")
    # digits (1257 images) overfits after ~1000 steps even with dropout 0.5: 1000 cosine steps gave the best test NLL
    train_defaults = {"lr": 3e-3, "batch_size": 64, "steps": 1000}
    data_shapes = frozenset({"image"})
    param_constraints = {"channels": ">= 1", "layers": ">= 1", "kernel": ">= 2", "dropout": "in [0, 1)",
                         "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, channels: int = 32, layers: int = 6, kernel: int = 3, dropout: float = 0.5,
                 output: str = "auto", components: int = 5, context_features: int = 0, standardize: bool = True):
        """Build a gated PixelCNN for image data ``spec`` (C, H, W).

        Args:
            channels: features of each stack in every layer (at least C; split into C channel groups).
            layers: gated layers; the receptive field grows by kernel // 2 rows and columns per layer.
            kernel: k of the k x k receptive field of one layer ((k//2+1) x k vertical, 1 x (k//2+1) horizontal).
            dropout: dropout on the horizontal stack's gated units before the residual map (training only).
            output: each conditional: "auto" (bernoulli for 2 levels, categorical up to 32 levels,
                logistic-mixture above, gaussian-mixture for continuous data) or one of the listed heads.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                it enters every gate of both stacks.
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, channels=channels, layers=layers, kernel=kernel, dropout=dropout, output=output,
                         components=components, context_features=context_features, standardize=standardize)
        check_image(self.name, spec)
        c = spec.shape[0]
        if channels < c:
            raise ConfigError(f"{self.name}: channels ({channels}) must be at least the image's {c} channels "
                              "(one feature group per channel)")
        _, self.output = output_head(self.name, spec, output, components)
        self.net = GatedPixelCNNNet(c, self.output.params_per_dim, channels, layers, kernel, context_features,
                                    dropout)

    def _maps(self, x, context):
        """(B, C, H', W, K) parameters for the H' rows of x."""
        b, c, h, w = x.shape
        out = self.net(self.scaled(x), None if context is None else context.to(x.dtype))
        return out.view(b, c, -1, h, w).permute(0, 1, 3, 4, 2)

    def _params(self, x, context):
        return self._maps(x, context).reshape(len(x), self.spec.dim, -1)

    def _step_params(self, x, dim, context, cache):
        c, h, w = self.spec.shape
        ch, row, col = dim // (h * w), (dim // w) % h, dim % w
        return self._maps(x[:, :, : row + 1], context)[:, ch, row, col]
