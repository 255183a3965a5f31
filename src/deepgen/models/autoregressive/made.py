"""MADE (Germain, Gregor, Murray & Larochelle 2015): an autoregressive model whose
D conditionals come from one pass of a masked MLP.

    log p(x) = sum_{t=1..D} log p(x_{o(t)} | x_{o(1)}, ..., x_{o(t-1)})

for an ordering ``o`` of the D (flattened) data dimensions.  The masks (degrees,
orderings) live in :mod:`deepgen.nets.made`; the per-dimension conditionals in
:mod:`deepgen.distributions.outputs`.

Connectivity-agnostic training (the paper's order-agnostic variant): the model
holds ``num_masks`` orderings/degree sets, each training step uses one of them,
and ``log_prob`` is the exact log-density of their uniform mixture

    log p(x) = logsumexp_m log p_m(x) - log M,

a normalized distribution (a mixture of normalized autoregressive models).
"""

from __future__ import annotations

import math

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import make_output, resolve_output
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.nets import MaskedMLP


# The default head: one logit per level up to this many levels; above it (8-bit data) a mixture of
# discretized logistics, whose 3K numbers per dimension do not grow with the levels (a categorical
# head on 12x12 8-bit images is a 512 x 36864 output layer: 1.4 steps/s on a laptop CPU).
MAX_CATEGORICAL_LEVELS = 32
OUTPUT_HEADS = ("bernoulli", "categorical", "logistic", "logistic-mixture", "conditional-gaussian")


class MADE(GenerativeModel):
    """MADE: a masked MLP giving every conditional of an autoregressive model in one pass.

    Per-dimension conditionals, chosen from the data spec (:mod:`deepgen.distributions.outputs`):

    * ``levels == 2``: Bernoulli with logit s:    log p(x) = x s - softplus(s)
    * ``2 < levels <= 32``: categorical over 0..L-1 with L logits s_k:  log p(k) = s_k - logsumexp(s)
    * ``levels > 32`` (8-bit data): a mixture of ``components`` discretized logistics
      (:class:`~deepgen.distributions.outputs.LogisticMixtureOutput`)
    * continuous: Gaussian with mean mu and log-std l (soft-clamped to [-B, B] by B tanh(l / B)):
      log p(x) = -(x - mu)^2 / (2 e^{2l}) - l - 1/2 log(2 pi)

    Parameters: ``hidden`` units in each of ``depth`` hidden layers; ``num_masks``
    orderings/connectivity sets generated from ``seed`` (``order="natural"``: all in
    the data's flattened order, differing only in hidden degrees; ``"random"``: the
    first natural, the others random permutations); ``direct`` adds masked
    input-to-output connections (a linear autoregressive term); ``context_features`` for a
    conditional model p(x | c).  The orderings and degrees are buffers, so a saved
    model reloads exactly.
    """

    name = "made"
    family = "autoregressive"
    density = "exact"
    capabilities = frozenset({"log_prob", "complete", "conditional"})
    description = "MADE masked autoregressive MLP (exact density); Bernoulli, categorical, logistic-mixture or Gaussian conditionals"
    train_defaults = {"lr": 3e-3}  # tuned on digits / digits-binary (3000 steps); the masks regularize

    param_constraints = {"hidden": ">= 1", "depth": ">= 0", "num_masks": ">= 1", "order": ("natural", "random"),
                         "output": ("auto",) + OUTPUT_HEADS, "components": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, hidden: int = 512, depth: int = 2, num_masks: int = 16,
                 order: str = "random", direct: bool = True, seed: int = 0, output: str = "auto",
                 components: int = 5, context_features: int = 0, standardize: bool = True):
        """Build a MADE for data ``spec``.

        Args:
            hidden: units in each hidden layer of the masked MLP.
            depth: hidden layers of the masked MLP (0: a linear autoregressive model).
            num_masks: orderings/connectivity sets; log_prob averages their densities exactly.
            order: "random" (the first ordering natural, the others random permutations) or "natural".
            direct: add masked input-to-output connections (a linear autoregressive term).
            seed: seed of the orderings and hidden degrees (they are saved with the weights).
            output: each conditional p(x_d | x_<d): "auto" (bernoulli for 2 levels, categorical up to 32
                levels, logistic-mixture above, conditional-gaussian for continuous data) or one of those.
            components: mixture components of the logistic-mixture output (3 numbers per component and dimension).
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, hidden=hidden, depth=depth, num_masks=num_masks, order=order, direct=direct,
                         seed=seed, output=output, components=components, context_features=context_features,
                         standardize=standardize)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"made: discrete data needs at least 2 levels, data '{spec.name}' has {spec.levels}")
        discrete = "categorical" if spec.levels is not None and spec.levels <= MAX_CATEGORICAL_LEVELS \
            else "logistic-mixture"
        self.output_kind = resolve_output(output, spec, discrete=discrete, continuous="conditional-gaussian",
                                          allowed=OUTPUT_HEADS)
        self.output = make_output(self.output_kind, spec, components)
        self.k = self.output.params_per_dim
        self.net = MaskedMLP(spec.dim, self.k, hidden, depth, num_masks, order, direct, seed, context_features)

    @property
    def num_masks(self) -> int:
        return self.net.num_masks

    @property
    def orders(self) -> torch.Tensor:
        """(M, D): orders[m, t] = the dim at position t of ordering m."""
        return self.net.orders

    def positions(self) -> torch.Tensor:
        return self.net.positions()

    # --- conditionals -----------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(f"made: expected inputs of shape (N, {', '.join(map(str, self.spec.shape))}), "
                            f"got {tuple(x.shape)}")
        return self.to_model_space(x).reshape(len(x), -1)

    def _params(self, x: torch.Tensor, m: int, context=None) -> torch.Tensor:
        """Conditional parameters (B, D, K) of flat inputs x (B, D) under mask set m."""
        h = x
        if self.spec.levels is not None and self.spec.levels > 2:
            h = x / (self.spec.levels - 1)  # levels to [0, 1], a scale an MLP likes
        return self.net(h, m, context)

    def conditionals(self, x: torch.Tensor, mask_index: int = 0, context=None) -> torch.Tensor:
        """Parameters of p(x_d | x_<d) for every dim d, shape (B, D, K), under mask set ``mask_index``.

        Dims are in the data's flattened order (use ``orders[mask_index]`` for the
        ordering).  For continuous data the parameters are those of the standardised
        y = (x - m) / s (see ``to_model_space``).  K = 1 (Bernoulli logit), L (categorical logits, unnormalized) or
        2 (Gaussian mean and unbounded log-std; the output distribution soft-clamps it).
        """
        return self._params(self._flat(x), mask_index, self.check_context(context, len(x)))

    def _dim_log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_d | x_<d) per dim, (B, D)."""
        return self.output.log_prob(x, params)

    def log_prob_per_mask(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """(B, M): log p_m(x) under each ordering/connectivity m (each exactly normalized),
        in the data's units (the standardisation's log-Jacobian added)."""
        flat, ctx = self._flat(x), self.check_context(context, len(x))
        return torch.stack([self._dim_log_prob(self._params(flat, m, ctx), flat).sum(1)
                            for m in range(self.num_masks)], 1) + self.preprocess_log_det()

    # --- protocol ---------------------------------------------------------------
    def log_prob(self, x, context=None):
        """log p(x) = logsumexp_m log p_m(x) - log M (nats per example; log P(k) for discrete data)."""
        lp = self.log_prob_per_mask(x, context)
        return torch.logsumexp(lp, 1) - math.log(self.num_masks)

    def loss(self, batch):
        """NLL under one mask set drawn uniformly per step (connectivity-agnostic training)."""
        x, context = unpack_batch(batch)
        m = int(torch.randint(self.num_masks, ())) if self.num_masks > 1 else 0
        flat = self._flat(x)
        lp = self._dim_log_prob(self._params(flat, m, self.check_context(context, len(x))), flat).sum(1)
        nll = -(lp + self.preprocess_log_det()).mean()
        return {"loss": nll, "nll": nll.detach()}

    @torch.no_grad()
    def sample(self, n, context=None, temperature=1.0, conditioned_on=None):
        """n samples (n, *shape) by D sequential passes in the ordering, on the data's scale.

        Temperature scales logits by 1/T (Bernoulli, categorical) or the std by T
        (Gaussian); T = 0 takes each conditional's mode.  With M mask sets, each
        sample uses one ordering drawn uniformly (an exact draw from the mixture).

        ``conditioned_on`` (n, *shape), NaN where missing: observed entries are kept
        exactly and each missing dim is drawn from p(x_d | x_<d) in the sample's
        ordering, with observed values plugged in among x_<d.  Observed values that
        come *later* in the ordering do not inform earlier missing dims (one
        ordering cannot condition on them), so this is an autoregressive completion,
        not the exact posterior p(missing | observed) unless all observed dims come first.
        """
        if temperature < 0:
            raise ConfigError(f"made: temperature must be >= 0, got {temperature}")
        d, device, dtype = self.spec.dim, self.device, self.net.layers[0].weight.dtype
        if conditioned_on is not None:
            if tuple(conditioned_on.shape) != (n, *self.spec.shape):
                raise DataError(f"made: conditioned_on must have shape ({n}, {', '.join(map(str, self.spec.shape))})"
                                f", got {tuple(conditioned_on.shape)}")
            cond = self.to_model_space(conditioned_on.to(device, dtype)).reshape(n, d)
            missing = torch.isnan(cond)
            x = torch.where(missing, torch.zeros_like(cond), cond)
            observed = x[~missing]
            if self.spec.levels is not None and len(observed) and (
                    (observed != observed.round()).any() or observed.min() < 0 or observed.max() > self.spec.levels - 1):
                raise DataError(f"made: observed entries of conditioned_on must be integers in "
                                f"[0, {self.spec.levels - 1}]")
        else:
            missing = torch.ones(n, d, dtype=torch.bool, device=device)
            x = torch.zeros(n, d, device=device, dtype=dtype)
        ctx = self.check_context(context, n)
        which = torch.randint(self.num_masks, (n,)) if self.num_masks > 1 else torch.zeros(n, dtype=torch.long)
        for m in which.unique().tolist():
            rows = (which == m).nonzero().squeeze(1).to(device)
            xs, miss = x[rows], missing[rows]
            cs = None if ctx is None else ctx[rows]
            for dim in self.orders[m].tolist():
                need = miss[:, dim]
                if not need.any():
                    continue
                value = self.output.sample(self._params(xs, m, cs)[:, dim], temperature)
                xs[:, dim] = torch.where(need, value, xs[:, dim])
            x[rows] = xs
        return self.from_model_space(x.view(n, *self.spec.shape))
