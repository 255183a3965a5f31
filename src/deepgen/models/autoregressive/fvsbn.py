"""FVSBN, the fully visible sigmoid belief net (Frey 1998; Gan et al. 2015): one logistic regression
per dimension on all the dimensions before it in the ordering o,

    p(x_{o(t)} = 1 | x_<t) = sigmoid(b_t + sum_{s<t} W[t, s] x_{o(s)})                (2 levels)
    p(x_{o(t)} = k | x_<t) = softmax_k(b_{t,k} + sum_{s<t} W[t, k, s] x~_{o(s)})       (L levels)

with x~ = the previous values scaled to [-1, 1] (continuous data: standardised, and a Gaussian
conditional with mean and log-std linear in the past).  D(D-1)/2 weights per output number, no
hidden layer: the simplest exact autoregressive model, and the baseline the notes start from.
All D conditionals come from one masked linear map (a strictly lower-triangular weight in the
ordering), so ``log_prob`` is one matrix product.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, output_head, raster_ordering
from deepgen.nets.masked import MaskedLinear


class FVSBN(AutoregressiveModel):
    """Fully visible sigmoid belief net: a logistic (softmax) regression per dimension on the past."""

    name = "fvsbn"
    description = "fully visible sigmoid belief net: one logistic regression per dim on the previous dims (exact)"
    train_defaults = {"lr": 1e-2}
    param_constraints = {"order": ("raster", "random"), "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, order: str = "raster", seed: int = 0, output: str = "auto",
                 components: int = 5, context_features: int = 0, standardize: bool = True):
        """Build an FVSBN for data ``spec``.

        Args:
            order: the ordering of the dims: "raster" (images: row by row, channels inside a pixel; vectors:
                as given) or "random" (a permutation drawn from ``seed``, saved with the weights).
            seed: seed of the random ordering.
            output: each conditional: "auto" (bernoulli for 2 levels, categorical for more, gaussian-mixture
                for continuous data) or one of the listed heads.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                the context enters every conditional linearly.
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, order=order, seed=seed, output=output, components=components,
                         context_features=context_features, standardize=standardize)
        _, self.output = output_head(self.name, spec, output, components, discrete="categorical")
        k, d = self.output.params_per_dim, spec.dim
        if order == "random":
            ordering = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
        else:
            ordering = raster_ordering(spec.shape)
        self.register_buffer("order", ordering)  # saved: the mask is rebuilt from it after loading
        self.linear = MaskedLinear(d + context_features, d * k, self._mask(), persistent=False)
        with torch.no_grad():
            self.linear.weight.mul_(0.1)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.linear.set_masks(module._mask()))

    def ordering(self) -> torch.Tensor:
        return self.order

    def _mask(self) -> torch.Tensor:
        """(D K, D + c) bool: output number j of dim d sees input dim i iff pos(i) < pos(d), and every context."""
        k = self.output.params_per_dim
        pos = torch.argsort(self.order)
        out_pos = pos.repeat_interleave(k)  # output unit d*K + j belongs to dim d
        context = torch.ones(len(out_pos), self.context_features, dtype=torch.bool, device=pos.device)
        return torch.cat([out_pos[:, None] > pos[None, :], context], 1)

    def _params(self, x, context):
        h = self.scaled(x).reshape(len(x), -1)
        if context is not None:
            h = torch.cat([h, context.to(h.dtype)], 1)
        return self.linear(h).view(len(x), self.spec.dim, -1)
