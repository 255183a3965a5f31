"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): an image model whose conditionals come
from two-dimensional LSTMs over the pixels,

    log p(x | c) = sum_{i, j} sum_{k=1..C} log p(x_{k,i,j} | x_{<(i,j)}, x_{<k,(i,j)}, c)

in raster order (rows top to bottom, pixels left to right, channels inside a pixel).  The network
(:class:`deepgen.nets.pixelrnn.PixelRNNNet`) is

    x in [-1, 1] -> kernel x kernel mask-A conv -> layers x LSTM layer (residual) -> ReLU -> 1x1 mask-B conv
    -> ReLU -> 1x1 mask-B conv to C K numbers per pixel -> K parameters of each p(x_{k,i,j} | ...)

with the LSTM layer one of

* ``variant="row"``, Row LSTM: rows processed top to bottom; gates from a 1x3 mask-B convolution of
  the input row and a 1x3 convolution of the previous row's hidden state.  Its receptive field is a
  triangle above the pixel (plus a few pixels to its left): a blind spot, like PixelCNN's.
* ``variant="diagonal"``, Diagonal BiLSTM: the map skewed (row r shifted right by r), an LSTM along
  the diagonals whose state-to-state map is a 2x1 convolution (the pixel above and the one to the
  left), in both directions, the right-to-left one shifted down a row: every earlier pixel is seen.

Channel groups in the masked convolutions (mask A: a pixel's channel k sees channels < k of the
pixel; mask B: features of group k see groups <= k) keep C > 1 channels in order.  A conditional
model adds a learned bias W c to every LSTM gate (c a one-hot label).

Per-dimension conditionals (:mod:`deepgen.distributions.outputs`): Bernoulli (2 levels),
categorical (up to 32 levels), a mixture of discretized logistics (more levels), or on continuous
images a Gaussian mixture of the standardised values.
"""

from __future__ import annotations

from deepgen.data.spec import DataSpec
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, check_image, output_head
from deepgen.nets.pixelrnn import PixelRNNNet

# Above this many levels the default head is a logistic mixture (3K numbers per dim, not one per level).


class PixelRNN(AutoregressiveModel):
    """PixelRNN: Row LSTM or Diagonal BiLSTM layers between masked convolutions (images only)."""

    name = "pixelrnn"
    description = "PixelRNN: Row LSTM or Diagonal BiLSTM over the pixels, masked convs, raster order (exact; images)"
    # digits, 3000 steps of 64: hidden 64 overfits (val 94 at step 1500), dropout 0.5 underfits (82.4);
    # hidden 32 with dropout 0.2 at lr 3e-3 gave test 80.9 (row) and 79.9 (diagonal)
    train_defaults = {"lr": 3e-3, "batch_size": 64}
    data_shapes = frozenset({"image"})
    param_constraints = {"hidden": ">= 1", "layers": ">= 1", "kernel": ">= 1", "variant": ("row", "diagonal"),
                         "dropout": "in [0, 1)", "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, hidden: int = 32, layers: int = 2, kernel: int = 7, variant: str = "row",
                 dropout: float = 0.2, output: str = "auto", components: int = 5, context_features: int = 0,
                 standardize: bool = True):
        """Build a PixelRNN for images ``spec``.

        Args:
            hidden: feature maps of every layer (split into C channel groups).
            layers: LSTM layers (each with a residual connection).
            kernel: size of the first, mask-A kernel x kernel convolution (odd).
            variant: "row" (Row LSTM, a triangular receptive field) or "diagonal" (Diagonal BiLSTM, no blind spot).
            dropout: dropout rate on the LSTM stack's output and the hidden 1x1 layer (training only).
            output: each conditional: "auto" (bernoulli for 2 levels, categorical up to 32 levels,
                logistic-mixture above, gaussian-mixture for continuous images) or one of the listed heads.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                it adds a learned bias to every LSTM gate.
            standardize: continuous images: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, hidden=hidden, layers=layers, kernel=kernel, variant=variant, dropout=dropout,
                         output=output, components=components, context_features=context_features,
                         standardize=standardize)
        check_image(self.name, spec, kernel=kernel)
        _, self.output = output_head(self.name, spec, output, components)
        self.net = PixelRNNNet(spec.shape[0], self.output.params_per_dim, hidden, layers, kernel, variant,
                               context_features, dropout)

    def _params(self, x, context):
        out = self.net(self.scaled(x), context)  # (B, C, H, W, K)
        return out.reshape(len(x), self.spec.dim, self.output.params_per_dim)
