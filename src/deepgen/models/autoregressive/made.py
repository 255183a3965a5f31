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

Sampling draws the D dims in D steps, each on the whole batch (every row in the ordering of its own mask
set), and costs about one network pass in all, not D: a hidden unit of degree v is computed once, when x at
position v is known, and step t evaluates only the K output rows of its dim
(:class:`~deepgen.nets.made.MADEStepper`).  Under a seed it draws what the D-pass reference draws
(``_complete(..., incremental=False)``: a full pass per step), up to float rounding.
"""

from __future__ import annotations

import math

import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import DataError
from deepgen.models.autoregressive.base import OUTPUT_HEADS, AutoregressiveModel, output_head
from deepgen.models.base import unpack_batch
from deepgen.nets import MaskedMLP
from deepgen.nets.made import MADEStepper


class MADE(AutoregressiveModel):
    """MADE: a masked MLP giving every conditional of an autoregressive model in one pass.

    Per-dimension conditionals, chosen from the data spec (:mod:`deepgen.distributions.outputs`):

    * ``levels == 2``: Bernoulli with logit s:    log p(x) = x s - softplus(s)
    * ``2 < levels <= 32``: categorical over 0..L-1 with L logits s_k:  log p(k) = s_k - logsumexp(s)
    * ``levels > 32`` (8-bit data): a mixture of ``components`` discretized logistics
      (:class:`~deepgen.distributions.outputs.LogisticMixtureOutput`)
    * continuous: a mixture of ``components`` Gaussians (``output: logistic-mixture`` for logistics,
      ``conditional-gaussian`` for a single Gaussian), every weight, mean and log-scale from the network:
      p(x_d | x_<d) = sum_j pi_j N(x_d; mu_j, sigma_j^2)

    Parameters: ``hidden`` units in each of ``depth`` hidden layers; ``num_masks``
    orderings/connectivity sets generated from ``seed`` (``order="natural"``: all in
    the data's flattened order, differing only in hidden degrees; ``"random"``: the
    first natural, the others random permutations); ``direct`` adds masked
    input-to-output connections (a linear autoregressive term); ``context_features`` for a
    conditional model p(x | c).  The orderings and degrees are buffers, so a saved
    model reloads exactly.
    """

    name = "made"
    description = ("MADE masked autoregressive MLP (exact density); Bernoulli, categorical, logistic-mixture or "
                   "Gaussian-mixture conditionals")
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
                levels, logistic-mixture above, gaussian-mixture for continuous data) or one of those.
            components: mixture components of the logistic-mixture / gaussian-mixture heads (3 numbers per
                component and dimension).
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, hidden=hidden, depth=depth, num_masks=num_masks, order=order, direct=direct,
                         seed=seed, output=output, components=components, context_features=context_features,
                         standardize=standardize)
        self.output_kind, self.output = output_head(self.name, spec, output, components)
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

    def ordering(self, mask_index: int = 0) -> torch.Tensor:
        """The ordering of mask set ``mask_index`` (the first, natural one by default)."""
        return self.orders[mask_index]

    def orderings(self) -> torch.Tensor:
        return self.orders

    # --- conditionals -----------------------------------------------------------
    def _params(self, x: torch.Tensor, context=None, mask_index: int = 0) -> torch.Tensor:
        """Conditional parameters (B, D, K) of model-space x (B, *shape) under mask set ``mask_index``."""
        return self.net(self.scaled(x).reshape(len(x), -1), mask_index, context)

    def _step_params(self, x, dim, context, cache):
        return self._params(x, context, cache.get("mask", 0))[:, dim]

    def conditionals(self, x: torch.Tensor, mask_index: int = 0, context=None) -> torch.Tensor:
        """Parameters of p(x_d | x_<d) for every dim d, shape (B, D, K), under mask set ``mask_index``.

        Dims are in the data's flattened order (use ``orders[mask_index]`` for the
        ordering).  For continuous data the parameters are those of the standardised
        y = (x - m) / s (see ``to_model_space``).  K = 1 (Bernoulli logit), L (categorical logits, unnormalized),
        3K (mixtures) or 2 (Gaussian mean and unbounded log-std; the output distribution soft-clamps it).
        """
        return self._params(self.check_input(x), self.check_context(context, len(x)), mask_index)

    def log_prob_per_dim(self, x, context=None, mask_index: int = 0):
        """(B, D): log p_m(x_d | x_<d) under mask set ``mask_index`` (model space)."""
        y = self.check_input(x)
        params = self._params(y, self.check_context(context, len(x)), mask_index)
        return self.output.log_prob(y.reshape(len(y), -1), params)

    def log_prob_per_mask(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """(B, M): log p_m(x) under each ordering/connectivity m (each exactly normalized),
        in the data's units (the standardisation's log-Jacobian added)."""
        return torch.stack([self.log_prob_per_dim(x, context, m).sum(1) for m in range(self.num_masks)], 1) \
            + self.preprocess_log_det()

    # --- protocol ---------------------------------------------------------------
    def log_prob(self, x, context=None):
        """log p(x) = logsumexp_m log p_m(x) - log M (nats per example; log P(k) for discrete data)."""
        lp = self.log_prob_per_mask(x, context)
        return torch.logsumexp(lp, 1) - math.log(self.num_masks)

    def loss(self, batch):
        """NLL under one mask set drawn uniformly per step (connectivity-agnostic training)."""
        x, context = unpack_batch(batch)
        # a 0-d tensor, not an int: under --compile one graph serves every mask set (an int would specialise it)
        m = torch.randint(self.num_masks, ()) if self.num_masks > 1 else 0
        nll = -(self.log_prob_per_dim(x, context, m).sum(1) + self.preprocess_log_det()).mean()
        return {"loss": nll, "nll": nll.detach()}

    @torch.no_grad()
    def complete(self, conditioned_on: torch.Tensor, context=None, temperature: float = 1.0, mask_index=None):
        """(completed x, log q): NaN entries of ``conditioned_on`` drawn from p(x_d | x_<d) in the ordering of
        one mask set per row (drawn uniformly: an exact draw from the mixture when nothing is observed;
        ``mask_index`` fixes it), observed values plugged in among x_<d.

        Observed values that come *later* in a row's ordering do not inform earlier missing dims (one
        ordering cannot condition on them), so this is an autoregressive completion, not the exact
        posterior p(missing | observed) unless all observed dims come first.  log q is the log-probability
        of the drawn entries under the procedure that drew them: the mixture (1/M) sum_m q_m over the mask
        sets (under mask set ``mask_index`` alone when it is given)."""
        return self._complete(conditioned_on, context, temperature, mask_index)

    @torch.no_grad()
    def sample(self, n, context=None, temperature=1.0, conditioned_on=None):
        """n samples (n, *shape) on the data's scale: D steps in the ordering, each on the whole batch, costing
        about one network pass in all (:class:`~deepgen.nets.made.MADEStepper`).

        Temperature scales logits by 1/T (Bernoulli, categorical) or the scales by T
        (Gaussian, mixtures); T = 0 takes each conditional's mode.  With M mask sets, each
        sample uses one ordering drawn uniformly (an exact draw from the mixture).
        ``conditioned_on`` (n, *shape), NaN where missing: see :meth:`complete`.
        """
        if conditioned_on is None:
            dtype = next(self.parameters()).dtype
            conditioned_on = torch.full((n, *self.spec.shape), float("nan"), device=self.device, dtype=dtype)
        return self._complete(conditioned_on, context, temperature, None, need_log_q=False)[0]

    @torch.no_grad()
    def _complete(self, conditioned_on, context, temperature, mask_index, need_log_q: bool = True,
                  incremental: bool = True):
        """:meth:`complete`; ``need_log_q=False`` returns log q None (``sample`` drops it: no per-step log-probs,
        no M passes for the mixture's), ``incremental=False`` takes every step's conditionals from a full network
        pass (the D-pass reference)."""
        self._check_temperature(temperature)
        n = len(conditioned_on)
        x, missing = self._observed(conditioned_on, n)
        ctx = self.check_context(context, n)
        if mask_index is not None:
            if not 0 <= mask_index < self.num_masks:
                raise DataError(f"made: mask_index must be in [0, {self.num_masks - 1}], got {mask_index}")
            which = torch.full((n,), mask_index, dtype=torch.long)
        else:
            which = torch.randint(self.num_masks, (n,)) if self.num_masks > 1 else torch.zeros(n, dtype=torch.long)
        log_q = self._fill_rows(x, missing, which.to(x.device), ctx, temperature, incremental, need_log_q)
        x_out = self.from_model_space(x.view(n, *self.spec.shape))
        if not need_log_q:
            return x_out, None
        if mask_index is None and self.num_masks > 1:
            # The procedure drew m uniformly, then x_h from q_m: its density is the mixture (1/M) sum_m q_m(x_h),
            # with q_m(x_h) = prod_{d hidden} p_m(x_d | x_<d) read off one pass per mask of the completed x.
            view, hidden = x.view(n, *self.spec.shape), missing.to(x.dtype)
            per_mask = torch.stack([(self.output.log_prob(x, self._params(view, ctx, m)) * hidden).sum(1)
                                    for m in range(self.num_masks)])
            log_q = torch.logsumexp(per_mask, 0) - math.log(self.num_masks)
        return x_out, log_q + self.hidden_log_det(missing)

    def _fill_rows(self, x, missing, which, context, temperature, incremental: bool = True, need_log_q: bool = True):
        """Fill the missing entries of flat model-space ``x`` (n, D) in place, row r in the ordering of mask set
        ``which[r]``: D steps, step t drawing the dim at position t of every row at once (rows whose dim there is
        observed keep it); returns log q (n,) of the drawn entries under their conditionals (None when not
        ``need_log_q``).

        The conditionals come from a :class:`~deepgen.nets.made.MADEStepper` (each hidden unit computed once) or,
        with ``incremental=False``, from a full pass per mask set in use at every step (D passes: the reference)."""
        n, d = x.shape
        orders = self.orders[which]  # (n, D): orders[r, t] = the dim of row r at step t
        log_q = torch.zeros(n, device=x.device, dtype=x.dtype)
        stepper = MADEStepper(self.net, which, context, x.dtype) if incremental else None
        everything = bool(missing.all())  # plain sampling: no observed entries to keep
        for t in range(d):
            dims = orders[:, t:t + 1]
            need = None if everything else missing.gather(1, dims).squeeze(1)
            if need is not None and not need.any():
                value = x.gather(1, dims).squeeze(1)
            else:
                params = stepper.params(t) if incremental else self._full_pass_step(x, dims, which, context)
                drawn = self.output.sample(params, temperature)
                value = drawn if need is None else torch.where(need, drawn, x.gather(1, dims).squeeze(1))
                x.scatter_(1, dims, value[:, None])
                if need_log_q:
                    lp = self.output.log_prob(drawn, params)
                    log_q = log_q + (lp if need is None else torch.where(need, lp, torch.zeros_like(lp)))
            if incremental:
                stepper.feed(t, self.scaled(value))
        return log_q if need_log_q else None

    def _full_pass_step(self, x, dims, which, context) -> torch.Tensor:
        """(n, K): row r's conditional of dim ``dims[r]`` from a full pass of its mask set (the D-pass reference)."""
        view = x.view(len(x), *self.spec.shape)
        params = x.new_empty(len(x), self.k)
        for m in which.unique().tolist():
            rows = (which == m).nonzero().squeeze(1)
            full = self._params(view[rows], None if context is None else context[rows], m)
            params[rows] = full.gather(1, dims[rows, :, None].expand(-1, 1, self.k)).squeeze(1)
        return params
