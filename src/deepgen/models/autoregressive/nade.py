"""NADE, the neural autoregressive distribution estimator (Larochelle & Murray 2011; Uria, Cote,
Gregor, Murray & Larochelle 2016): one hidden layer per conditional, the hidden layers of all D
conditionals sharing one weight matrix W (H x D), so that for an ordering o of the dims

    a_1     = c + U ctx                                   (U ctx: the optional context)
    a_{t+1} = a_t + W[:, o(t)] x~_{o(t)}                  (the running sum over the past)
    h_t     = sigmoid(a_t)                                (or relu)
    theta_{o(t)} = V_{o(t)} h_t + b_{o(t)}                (K numbers: 1 Bernoulli logit, L categorical
                                                           logits, or a mixture's 3K numbers)
    log p(x | ctx) = sum_t log p(x_{o(t)} | theta_{o(t)})

with x~ the scaled value of a dim (discrete levels mapped to [-1, 1], continuous data standardised).
Since a_t = c + U ctx + sum_{s<t} W[:, o(s)] x~_{o(s)}, all D pre-activations come from one
exclusive cumulative sum over the ordering: O(D H) time and memory per example for the hidden
layers, not the O(D^2 H) of D separate networks (and O(D K H) for the outputs).  Sampling keeps the
running sum a_t between steps (:meth:`NADE._step_params`), so n samples cost O(n D K H) in all.
With a Gaussian-mixture head on continuous data this is RNADE (Uria, Murray & Larochelle 2013).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, output_head, raster_ordering

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": F.relu}


class NADE(AutoregressiveModel):
    """NADE: every conditional a one-hidden-layer network, all sharing the input weights W (running sum)."""

    name = "nade"
    description = ("NADE neural autoregressive distribution estimator: shared-weight hidden layers, all D "
                   "conditionals in one O(D H) pass (exact)")
    # Tuned on digits / digits-binary at 3000 steps of batch 64 (with dropout 0.5 and, on digits, the
    # logistic-mixture head; a categorical head with 17 free logits per dim overfits 1257 images).
    train_defaults = {"lr": 1e-2}
    param_constraints = {"hidden": ">= 1", "activation": tuple(ACTIVATIONS), "dropout": "in [0, 1)",
                         "order": ("raster", "random"), "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, hidden: int = 128, activation: str = "sigmoid", dropout: float = 0.5,
                 order: str = "raster", seed: int = 0, output: str = "auto", components: int = 3,
                 context_features: int = 0, standardize: bool = True):
        """Build a NADE for data ``spec``.

        Args:
            hidden: hidden units H of every conditional (shared input weights W: H x D).
            activation: the hidden nonlinearity: "sigmoid" (the paper's) or "relu".
            dropout: dropout rate on the hidden units h_t (training only; 0.5 regularises small data sets).
            order: the ordering of the dims: "raster" (images: row by row, channels inside a pixel; vectors:
                as given) or "random" (a permutation drawn from ``seed``, saved with the weights).
            seed: seed of the random ordering.
            output: each conditional: "auto" (bernoulli for 2 levels, logistic-mixture for more, whose ordinal
                levels generalise better than L free logits; gaussian-mixture for continuous data) or one of those.
            components: mixture components of the logistic-mixture / gaussian-mixture heads.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                it enters the first pre-activation a_1 = c + U ctx, so every conditional sees it.
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, hidden=hidden, activation=activation, dropout=dropout, order=order, seed=seed,
                         output=output, components=components, context_features=context_features,
                         standardize=standardize)
        _, self.output = output_head(self.name, spec, output, components, discrete="logistic-mixture")
        self.act, self.dropout = ACTIVATIONS[activation], float(dropout)
        d, k = spec.dim, self.output.params_per_dim
        if order == "random":
            ordering = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
        else:
            ordering = raster_ordering(spec.shape)
        self.register_buffer("order", ordering)  # saved with the weights
        self.W = nn.Parameter(torch.randn(hidden, d) / d**0.5)  # column W[:, i]: what dim i adds to a
        self.c = nn.Parameter(torch.zeros(hidden))
        self.U = nn.Linear(context_features, hidden, bias=False) if context_features else None
        self.V = nn.Parameter(torch.randn(d, k, hidden) / hidden**0.5)  # output weights of dim i: V[i] (K x H)
        self.b = nn.Parameter(torch.zeros(d, k))

    def ordering(self) -> torch.Tensor:
        return self.order

    def _start(self, context: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
        """a_1 = c + U ctx, (n, H)."""
        a = self.c.to(like.dtype).expand(n, -1)
        if self.U is not None:
            a = a + self.U(context.to(like.dtype))
        return a

    def _params(self, x, context):
        n = len(x)
        xs = self.scaled(x).reshape(n, -1)[:, self.order]  # (B, D) in generation order
        steps = xs.unsqueeze(-1) * self.W.t()[self.order]  # (B, D, H): what step t adds to the running sum
        past = torch.cumsum(steps, 1)
        past = torch.cat([torch.zeros_like(past[:, :1]), past[:, :-1]], 1)  # exclusive: only s < t
        h = self.act(self._start(context, n, xs).unsqueeze(1) + past)  # (B, D, H): h_t
        h = F.dropout(h, self.dropout, self.training)
        params = torch.einsum("bth,tkh->btk", h, self.V[self.order]) + self.b[self.order]  # (B, D, K)
        return params[:, torch.argsort(self.order)]  # back to the data's flattened order

    def _step_params(self, x, dim, context, cache):
        """Parameters of p(x_dim | past) from the running sum a, brought up to dim's position: every dim before
        it in the ordering (drawn or observed) is added once, O(H) per dim."""
        flat = x.reshape(len(x), -1)
        if "a" not in cache:
            cache["a"], cache["t"] = self._start(context, len(x), flat), 0
            cache["pos"] = torch.argsort(self.order).tolist()
        t = cache["pos"][dim]
        if t > cache["t"]:
            dims = self.order[cache["t"]:t]
            cache["a"] = cache["a"] + self.scaled(flat[:, dims]) @ self.W[:, dims].t()
            cache["t"] = t
        h = self.act(cache["a"])
        return h @ self.V[dim].t() + self.b[dim]
