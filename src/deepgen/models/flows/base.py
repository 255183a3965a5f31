"""The flow base class: a base density plus a bijection (change of variables).

    log p(x) = log p_Z(f(x)) + log|det df/dx|,     x = f^{-1}(z), z ~ p_Z

On discrete data the flow models y = (k + u) / L and reports the dequantized
bound log p_Y(y) - D log L with u ~ U[0, 1)^D (see :mod:`deepgen.data.dequantize`), or, with
the model parameter ``dequantization="variational"``, the bound
log p_Y(y) - log q(u | k) - D log L with u ~ q(u | k) learned jointly
(:mod:`deepgen.models.flows.dequantizer`).  On continuous
data it models the standardised y = (x - m) / s and reports
log p_Y(y) - sum_d log s_d (see :class:`~deepgen.models.base.GenerativeModel`).
"""

from __future__ import annotations

import math

import torch

from deepgen.bijections import Bijection, Compose, Flatten, Logit
from deepgen.bijections.fused_stack import accumulate_grads, normal_log_prob_and_grads
from deepgen.data.dequantize import dequantize, quantize
from deepgen.data.spec import DataSpec
from deepgen.distributions import StandardNormal
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.flows.dequantizer import VariationalDequantizer


class Flow(GenerativeModel):
    """A flow: ``transform`` maps data-space y to latent z, ``base`` is N(0, I) over z."""

    family = "flow"
    density = "exact"
    capabilities = frozenset({"log_prob", "dequantize", "conditional", "sample_log_prob"})

    @property
    def dequantization(self) -> str:
        """How discrete data are dequantized: "uniform" or "variational" (model parameter ``dequantization``)."""
        return self.params.get("dequantization", "uniform")

    def _set_transform(self, transform: Bijection) -> None:
        self.transform = transform
        self.dequantizer = None
        if self.dequantization == "variational":
            if self.spec.levels is None:
                raise ConfigError(f"{self.name}: dequantization=variational needs discrete data; data "
                                  f"'{self.spec.name}' is continuous (use the default, uniform)")
            self.dequantizer = VariationalDequantizer(self.spec)
        ctx = torch.zeros(1, self.context_features) if self.context_features else None
        with torch.no_grad():
            z, _ = transform(torch.full((1, *self.spec.shape), 0.5), ctx)
        self.base = StandardNormal(tuple(z.shape[1:]))

    def log_prob(self, x, context=None):
        context = self.check_context(context, len(x))
        correction = 0.0
        if self.spec.levels is not None:
            x, correction = self.dequantize(x)
        else:
            x, correction = self.to_model_space(x), self.preprocess_log_det()
        if type(self.base) is StandardNormal and type(self.transform) is Compose:  # one fused node if it can
            log_p, z_logdet = self.transform.normal_log_prob_or_forward(x, context)
        else:
            log_p, z_logdet = None, self.transform(x, context)
        if log_p is None:
            z, logabsdet = z_logdet
            log_p = self.base.log_prob(z) + logabsdet
        return log_p if isinstance(correction, float) and correction == 0.0 else log_p + correction

    def loss_and_gradients(self, batch):
        """The mean negative log-likelihood of ``batch`` (nats) with its parameter gradients accumulated into
        ``.grad``, without autograd's graph, when the whole transform is one fused run
        (:meth:`~deepgen.bijections.base.Compose.fused_plan`) under the N(0, I) base: the fused layers'
        forward, then their written-out backward seeded with g = d loss / d log p(x_i) = -1/B
        (:func:`~deepgen.bijections.fused_stack.normal_log_prob_and_grads`): the numbers ``loss(batch)`` and
        ``backward()`` give, bit for bit (tested); with :func:`~deepgen.ops.mm_skinny`, ``deepgen train`` of MAF on
        2-D data +10 % steps/s.  None (the
        caller takes the autograd path) for any other flow: another base or transform, variational
        dequantization, a subclass with its own ``loss`` or ``log_prob``, gradients off, an input, context or
        preprocessing that requires a gradient, no run tensor that requires one (autograd's error then), a
        parameter with a tensor hook or outside the fused run (checked once per set of run tensors).  Hooks
        registered on a parameter's accumulation node (``grad_fn.next_functions``, as DDP's reducer does) do
        not run: the training loop takes this path in one process only."""
        if (type(self).loss is not GenerativeModel.loss or type(self).log_prob is not Flow.log_prob
                or self.dequantizer is not None or type(self.base) is not StandardNormal
                or type(self.transform) is not Compose or not torch.is_grad_enabled()):
            return None
        run = self.transform.fused_plan()
        if run is None:
            return None
        plan, tensors = run
        if not self._run_covers_parameters(tensors):
            return None
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        if x.requires_grad or (context is not None and context.requires_grad):
            return None
        if self.spec.levels is not None:
            x, correction = self.dequantize(x)  # (uniform: u ~ U[0, 1), no parameters)
        else:
            x, correction = self.to_model_space(x), self.preprocess_log_det()
            if x.requires_grad or (torch.is_tensor(correction) and correction.requires_grad):
                return None  # (a preprocessing buffer that requires a gradient; nothing was drawn)
        glp = torch.full((len(x),), -1.0, dtype=x.dtype, device=x.device) / len(x)  # (-1 / B as MeanBackward has it)
        log_p, grads = normal_log_prob_and_grads(x, context, plan, tensors, glp)
        with torch.no_grad():
            if not (isinstance(correction, float) and correction == 0.0):
                log_p = log_p + correction
            nll = -log_p.mean()
        accumulate_grads(tensors, grads)
        return {"loss": nll, "nll": nll}

    def _run_covers_parameters(self, tensors) -> bool:
        """Does every parameter of this flow that requires a gradient appear among the fused run's tensors, does
        one of them require a gradient, and has none a tensor hook?  (The first part is cached per set of run
        tensors.)"""
        key = tuple(map(id, tensors))
        if getattr(self, "_covered", (None,))[0] != key:
            ids = set(key)
            self._covered = (key, all(id(p) in ids for p in self.parameters() if p.requires_grad))
        if not self._covered[1]:
            return False
        trained = [t for t in tensors if t is not None and t.requires_grad]
        return bool(trained) and not any(t._backward_hooks or t._post_accumulate_grad_hooks for t in trained)

    def dequantize(self, k):
        """(y, correction): y = (k + u) / L with u ~ U[0, 1) or u ~ q(u | k), and the per-example
        log-density correction -D log L (- log q(u | k) for variational dequantization)."""
        if self.dequantizer is None:
            return dequantize(k, self.spec.levels)
        u, log_q = self.dequantizer.sample(k)
        return (k + u) / self.spec.levels, -self.spec.dim * math.log(self.spec.levels) - log_q

    def sample(self, n, context=None, temperature=1.0):
        context = self.check_context(context, n)
        z = self.base.sample(n, temperature)
        y, _ = self.transform.inverse(z, context)
        if self.spec.levels is not None:
            return quantize(y, self.spec.levels)
        return self.from_model_space(y)

    def sample_and_log_prob(self, n, context=None, temperature=1.0):
        """(x, log q(x)): ``n`` samples with gradients and their log-density, in one pass of the
        sampling direction (continuous data only):

            z ~ N(0, T^2 I),  y = f^{-1}(z),  log q(y) = log N(z) - log|det df^{-1}/dz|,
            x = s y + m,      log q(x) = log q(y) - sum log s

        This is the direction variational inference needs (minimise E_q[log q(x) + U(x)]).
        """
        if self.spec.levels is not None:
            raise ConfigError(f"{self.name}: sample_and_log_prob needs continuous data; this flow models "
                              f"{self.spec.levels} discrete levels")
        context = self.check_context(context, n)
        z = self.base.sample(n, temperature)
        y, ld = self.transform.inverse(z, context)
        return self.from_model_space(y), self.base.log_prob(z) - ld + self.preprocess_log_det()

    def distribution(self, context=None) -> "FlowDistribution":
        """A ``torch.distributions.Distribution`` view (continuous data only)."""
        return FlowDistribution(self, context)


def vector_input_layers(model: str, spec: DataSpec, logit_alpha: float) -> list:
    """Bijections that bring the data to (D,) vectors: [Logit] + Flatten for images, nothing for vectors."""
    if spec.is_image:
        if logit_alpha > 0 and spec.levels is None:
            raise ConfigError(f"{model}: logit_alpha > 0 needs discrete images in [0, levels); set logit_alpha: 0")
        return ([Logit(logit_alpha)] if logit_alpha > 0 else []) + [Flatten(spec.shape)]
    if len(spec.shape) != 1:
        raise ConfigError(f"{model} expects vectors (D,) or images (C, H, W), got shape {tuple(spec.shape)}")
    return []


class FlowDistribution(torch.distributions.Distribution):
    """Bridge to ``torch.distributions``: ``log_prob``, ``sample`` and ``rsample`` of a flow."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, flow: Flow, context=None):
        if flow.spec.levels is not None:
            raise ConfigError("FlowDistribution needs continuous data; this flow models discrete levels")
        if flow.is_conditional and (context is None or len(context) != 1):
            raise ConfigError("FlowDistribution of a conditional flow needs one context row, shape (1, c)")
        self.flow, self.context = flow, context
        super().__init__(event_shape=torch.Size(flow.spec.shape), validate_args=False)

    def _context(self, n):
        return None if self.context is None else self.context.expand(n, -1)

    def log_prob(self, value):
        flat = value.reshape(-1, *self.event_shape)
        lp = self.flow.log_prob(flat, self._context(len(flat)))
        return lp.reshape(value.shape[: value.dim() - len(self.event_shape)])

    def rsample(self, sample_shape=torch.Size()):
        n = int(torch.Size(sample_shape).numel())
        z = self.flow.base.sample(n)
        y, _ = self.flow.transform.inverse(z, self._context(n))
        x = self.flow.from_model_space(y)
        return x.reshape(*sample_shape, *self.event_shape)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)


