"""What every autoregressive model shares: the chain rule, sampling one dimension at a time, and
completion of partly observed data.

    log p(x | c) = sum_{t=1..D} log p(x_{o(t)} | x_{o(1)}, ..., x_{o(t-1)}, c)

for an ordering ``o`` of the D flattened data dimensions (:meth:`AutoregressiveModel.ordering`;
for images the dims are flattened as (C, H, W), so a raster scan with channels inside a pixel is
``o = [(h, w, c) for h for w for c]``).  A subclass gives the conditionals' parameters
(:meth:`AutoregressiveModel._params`, all D of them in one pass) and the per-dimension output
distribution ``self.output`` (:mod:`deepgen.distributions.outputs`); this class turns them into

* ``log_prob``: the exact sum above (nats; log P(x) of discrete data, with the standardisation's
  log-Jacobian for continuous data);
* ``sample(n, conditioned_on=...)``: D sequential steps, each on the whole batch of n (n samples
  cost D network passes, not n x D); entries of ``conditioned_on`` that are not NaN are kept, the
  NaN ones drawn from p(x_d | x_<d) with the observed values among x_<d;
* ``complete(x)``: the same completion, returning also log q(x_hidden), the log-probability (density,
  in the data's units, for continuous data) of the drawn entries under the completion procedure: a
  proposal for importance sampling of p(x_observed) (see :mod:`deepgen.evaluation.completion`).

A subclass with a cheaper incremental step (NADE's running sum, an RNN state) overrides
:meth:`_step_params`; the default recomputes all conditionals and reads dim d.
"""

from __future__ import annotations

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import make_output, resolve_output
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel


def raster_ordering(shape: tuple[int, ...]) -> torch.Tensor:
    """Flattened (C, H, W) indices in raster order, channels inside a pixel: (0,0,c0), (0,0,c1), ..., (0,1,c0), ...
    For vectors (D,): 0..D-1."""
    if len(shape) != 3:
        return torch.arange(int(torch.tensor(shape).prod()))
    c, h, w = shape
    return torch.arange(c * h * w).view(c, h, w).permute(1, 2, 0).reshape(-1)


class AutoregressiveModel(GenerativeModel):
    """Base class of the autoregressive family (see the module docstring).

    Subclasses set ``self.output`` (an :class:`~deepgen.distributions.outputs.OutputDistribution`)
    and implement ``_params(x, context) -> (B, D, K)``, x in model space with the data's shape.
    """

    family = "autoregressive"
    density = "exact"
    capabilities = frozenset({"log_prob", "complete", "conditional"})

    def ordering(self) -> torch.Tensor:
        """(D,) LongTensor: ordering[t] = the flattened dim generated at step t."""
        return raster_ordering(self.spec.shape)

    def orderings(self) -> torch.Tensor:
        """(M, D): every ordering that sampling and completion may use (one, unless a model mixes several)."""
        return self.ordering()[None]

    # --- inputs -----------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x in model space after checking its shape (standardised if continuous)."""
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(f"{self.name}: expected inputs of shape (N, {', '.join(map(str, self.spec.shape))}), "
                            f"got {tuple(x.shape)}")
        return self.to_model_space(x)

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space x as network input: discrete levels mapped to [-1, 1], continuous data as they are."""
        if self.spec.levels is None:
            return x
        return 2 * x / (self.spec.levels - 1) - 1

    def _params(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """(B, D, K) parameters of every conditional p(x_d | x_<d, c), dims in flattened data order."""
        raise NotImplementedError

    def conditionals(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Parameters (B, D, K) of p(x_d | x_<d) for every dim d (flattened data order; for continuous data
        those of the standardised y = (x - m) / s)."""
        return self._params(self.check_input(x), self.check_context(context, len(x)))

    # --- protocol ---------------------------------------------------------------
    def log_prob_per_dim(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D): log p(x_d | x_<d, c) per dim (model space; add ``preprocess_log_det`` for the data's units)."""
        y = self.check_input(x)
        params = self._params(y, self.check_context(context, len(x)))
        return self.output.log_prob(y.reshape(len(y), -1), params)

    def log_prob(self, x, context=None):
        """log p(x | c) = sum_d log p(x_d | x_<d, c) (nats per example; log P(x) for discrete data)."""
        return self.log_prob_per_dim(x, context).sum(1) + self.preprocess_log_det()

    # --- sampling and completion ------------------------------------------------
    def _step_params(self, x: torch.Tensor, dim: int, context, cache: dict) -> torch.Tensor:
        """(B, K) parameters of p(x_dim | x_<dim) for model-space x (B, *shape) whose dims before ``dim`` in
        the ordering are filled.  ``cache`` persists across the steps of one sampling call."""
        return self._params(x, context)[:, dim]

    def _check_temperature(self, temperature: float) -> None:
        if not temperature >= 0:
            raise ConfigError(f"{self.name}: temperature must be >= 0, got {temperature}")

    def _observed(self, conditioned_on: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(model-space x with 0 where missing, missing mask), both (n, D), from data-scale ``conditioned_on``."""
        shape = tuple(self.spec.shape)
        if tuple(conditioned_on.shape) != (n, *shape):
            raise DataError(f"{self.name}: conditioned_on must have shape ({n}, {', '.join(map(str, shape))}), "
                            f"got {tuple(conditioned_on.shape)}")
        dtype = next(self.parameters()).dtype
        cond = self.to_model_space(conditioned_on.to(self.device, dtype)).reshape(n, -1)
        missing = torch.isnan(cond)
        x = torch.where(missing, torch.zeros_like(cond), cond)
        observed = x[~missing]
        levels = self.spec.levels
        if levels is not None and len(observed) and (
                (observed != observed.round()).any() or observed.min() < 0 or observed.max() > levels - 1):
            raise DataError(f"{self.name}: observed entries of conditioned_on must be integers in [0, {levels - 1}]")
        return x, missing

    @torch.no_grad()
    def _fill(self, x: torch.Tensor, missing: torch.Tensor, context, temperature: float,
              order: torch.Tensor | None = None, cache: dict | None = None) -> torch.Tensor:
        """Fill the missing entries of flat model-space ``x`` (n, D) in place, step by step in ``order``
        (default: the model's ordering); returns log q (n,), the log-probability (at T = 1) of the drawn
        entries under their conditionals.  ``cache`` starts the per-call state of :meth:`_step_params`."""
        n = len(x)
        view = x.view(n, *self.spec.shape)
        log_q = torch.zeros(n, device=x.device, dtype=x.dtype)
        cache = {} if cache is None else cache
        was_training = self.training
        self.eval()  # dropout off: every step sees the same network as log_prob does in evaluation
        try:
            for dim in (self.ordering() if order is None else order).tolist():
                need = missing[:, dim]
                if not need.any():
                    continue
                params = self._step_params(view, dim, context, cache)
                value = self.output.sample(params, temperature)
                x[:, dim] = torch.where(need, value, x[:, dim])
                log_q = log_q + torch.where(need, self.output.log_prob(value, params), torch.zeros_like(log_q))
        finally:
            self.train(was_training)
        return log_q

    @torch.no_grad()
    def complete(self, conditioned_on: torch.Tensor, context=None, temperature: float = 1.0):
        """(completed x on the data's scale, log q (n,)): NaN entries of ``conditioned_on`` drawn autoregressively.

        Observed values that come *later* in the ordering cannot inform earlier missing dims, so this is
        exactly p(missing | observed) only when every observed dim precedes every missing one."""
        self._check_temperature(temperature)
        n = len(conditioned_on)
        x, missing = self._observed(conditioned_on, n)
        log_q = self._fill(x, missing, self.check_context(context, n), temperature)
        return self.from_model_space(x.view(n, *self.spec.shape)), log_q + self.hidden_log_det(missing)

    def hidden_log_det(self, missing: torch.Tensor) -> torch.Tensor | float:
        """The standardisation's log-Jacobian restricted to the ``missing`` (n, D) dims: -sum_{d missing} log s_d
        (0 for discrete data), so log q of completed entries is in the data's units."""
        if self.spec.levels is not None or not self.standardize:
            return 0.0
        log_s = torch.log(self.data_scale).expand(self.spec.shape).reshape(-1)
        return -(missing.to(log_s.dtype) * log_s).sum(1)

    @torch.no_grad()
    def sample(self, n, context=None, temperature=1.0, conditioned_on=None):
        """n samples (n, *shape) on the data's scale: D steps in the ordering, each on the whole batch.

        Temperature T scales logits by 1/T (Bernoulli, categorical) or scales by T (logistic, Gaussian);
        T = 0 takes each conditional's mode.  ``conditioned_on`` (n, *shape), NaN where missing: see
        :meth:`complete`."""
        if conditioned_on is not None:
            return self.complete(conditioned_on, context, temperature)[0]
        self._check_temperature(temperature)
        dtype = next(self.parameters()).dtype
        x = torch.zeros(n, self.spec.dim, device=self.device, dtype=dtype)
        missing = torch.ones_like(x, dtype=torch.bool)
        self._fill(x, missing, self.check_context(context, n), temperature)
        return self.from_model_space(x.view(n, *self.spec.shape))


def check_levels(model: str, spec: DataSpec) -> None:
    """Discrete data need at least 2 levels."""
    if spec.levels is not None and spec.levels < 2:
        raise ConfigError(f"{model}: discrete data need at least 2 levels, data '{spec.name}' has {spec.levels}")


# The default head: one logit per level up to this many levels; above it (8-bit data) a mixture of
# discretized logistics, whose 3K numbers per dimension do not grow with the levels (a categorical
# head on 12x12 8-bit images is a 512 x 36864 output layer: 1.4 steps/s on a laptop CPU).
MAX_CATEGORICAL_LEVELS = 32
OUTPUT_HEADS = ("bernoulli", "categorical", "logistic", "logistic-mixture", "conditional-gaussian",
                "gaussian-mixture")


def output_head(model: str, spec: DataSpec, output: str, components: int, discrete: str | None = None):
    """(kind, OutputDistribution) of the conditionals p(x_d | x_<d): ``output`` "auto" gives bernoulli for 2
    levels, ``discrete`` for more (default: categorical up to :data:`MAX_CATEGORICAL_LEVELS` levels, a
    logistic mixture above) and a Gaussian mixture for continuous data; a head that does not fit the data
    raises ConfigError."""
    check_levels(model, spec)
    if discrete is None:
        discrete = ("categorical" if spec.levels is not None and spec.levels <= MAX_CATEGORICAL_LEVELS
                    else "logistic-mixture")
    kind = resolve_output(output, spec, discrete=discrete, continuous="gaussian-mixture", allowed=OUTPUT_HEADS)
    return kind, make_output(kind, spec, components)


def check_image(model: str, spec: DataSpec, **kernels: int) -> None:
    """An image-only model needs (C, H, W) data and odd (centred) kernel sizes."""
    if not spec.is_image:
        raise ConfigError(f"{model} expects images (C, H, W); data '{spec.name}' has shape {tuple(spec.shape)} "
                          "(for vectors use made, nade or fvsbn)")
    for name, k in kernels.items():
        if k % 2 == 0:
            raise ConfigError(f"{model}: {name} must be odd (a centred masked convolution), got {k}")
