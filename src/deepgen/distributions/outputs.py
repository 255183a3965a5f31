"""Per-dimension output distributions p(x_d | params_d): the likelihood heads of
autoregressive conditionals (MADE, later NADE/PixelCNN) and of latent-variable
decoders (VAE), defined once here.

A network produces ``P`` parameters per data dimension; an output distribution
turns them into a normalized distribution over one data dimension, on the
data's own scale:

    bernoulli            x in {0, 1}:     log p = x log s(l) + (1 - x) log s(-l),   s = sigmoid
    categorical          x in {0..L-1}:   log p = log softmax(logits)[x]
    logistic             x in {0..L-1}:   P(k) = F(k + 1/2) - F(k - 1/2),  F = logistic CDF(mu, s),
                                          with F(-1/2) := 0 and F(L - 1/2) := 1 (edge bins take the tails)
    logistic-mixture     x in {0..L-1}:   P(k) = sum_j pi_j P_j(k), K discretized logistics (3K parameters,
                                          however many levels: the head for 8-bit data stays small)
    conditional-gaussian x in R:          log p = -(x - mu)^2 / (2 sigma^2) - log sigma - 1/2 log(2 pi),
                                          mu and log sigma both from the network (log sigma soft-bounded)
    gaussian             x in R:          the same with one learned sigma per data dimension (not an output
                                          of the network): a VAE decoder's observation noise
    gaussian-mixture     x in R:          p = sum_j pi_j N(x; mu_j, sigma_j^2), K components (3K parameters;
                                          mu_j offset by a fixed linspace(-2, 2, K)_j: spread at the start)
    logistic-mixture     x in R:          (continuous data) p = sum_j pi_j Logistic(x; mu_j, s_j)

Parameters arrive as a tensor of shape ``(*x.shape, P)``; ``log_prob`` returns
the element-wise log-probability with the shape of ``x`` (the caller sums over
dimensions).  Each keeps its normalizing constant, so summing gives a true
log P(x) (discrete) or log p(x) (continuous) in nats.

``sample(params, temperature)``: temperature T scales logits by 1/T (Bernoulli,
categorical) or the scale by T (logistic, Gaussian); T = 0 gives the mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.ops import LOG_2PI


class OutputDistribution(nn.Module):
    """A per-dimension distribution with ``params_per_dim`` parameters from a network."""

    params_per_dim: int = 1

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BernoulliOutput(OutputDistribution):
    """x in {0, 1} with P(x = 1) = sigmoid(l); log p = x log s(l) + (1 - x) log s(-l)."""

    params_per_dim = 1

    def log_prob(self, x, params):
        # -BCE-with-logits is exactly x log s(l) + (1-x) log s(-l), computed stably.
        return -F.binary_cross_entropy_with_logits(params[..., 0], x, reduction="none")

    def sample(self, params, temperature=1.0):
        logits = params[..., 0]
        if temperature == 0:
            return (logits > 0).to(logits.dtype)
        return torch.bernoulli(torch.sigmoid(logits / temperature))

    def mean(self, params):
        return torch.sigmoid(params[..., 0])


class CategoricalOutput(OutputDistribution):
    """x in {0..L-1} with P(x = k) = softmax(logits)_k, one free logit per level."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        self.params_per_dim = levels

    def log_prob(self, x, params):
        logp = F.log_softmax(params, -1)
        return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, params, temperature=1.0):
        if temperature == 0:
            return params.argmax(-1).to(params.dtype)
        flat = params.reshape(-1, self.levels)
        draw = torch.multinomial(torch.softmax(flat / temperature, -1), 1).squeeze(1)
        return draw.reshape(params.shape[:-1]).to(params.dtype)

    def mean(self, params):
        k = torch.arange(self.levels, dtype=params.dtype, device=params.device)
        return (F.softmax(params, -1) * k).sum(-1)


class DiscretizedLogisticOutput(OutputDistribution):
    """x in {0..L-1}: a logistic(mu, s) on the level scale integrated over bins of width 1.

        P(k) = F((k + 1/2 - mu) / s) - F((k - 1/2 - mu) / s),    F = sigmoid,
        with the lower edge of bin 0 at -inf and the upper edge of bin L-1 at +inf,

    so the L probabilities telescope to exactly 1.  Interior bins use
    sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(-(b - a))), which is
    stable in both tails.  Parameters: mu = (L-1)/2 (1 + p0) and log s = p1.
    """

    params_per_dim = 2

    def __init__(self, levels: int, min_log_scale: float = -7.0):
        super().__init__()
        self.levels = levels
        self.min_log_scale = min_log_scale

    def _loc_log_scale(self, params):
        half = (self.levels - 1) / 2
        # the floor on log s keeps 1/s finite; exp(-7) is far below one level's width
        return half * (1 + params[..., 0]), params[..., 1].clamp(min=self.min_log_scale)

    def log_prob(self, x, params):
        mu, log_s = self._loc_log_scale(params)
        inv_s = torch.exp(-log_s)
        a = (x - 0.5 - mu) * inv_s  # standardized lower edge
        b = (x + 0.5 - mu) * inv_s  # standardized upper edge
        interior = F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1(-inv_s))
        lowest = F.logsigmoid(b)  # log F(b): bin 0 takes (-inf, 1/2]
        highest = F.logsigmoid(-a)  # log (1 - F(a)): bin L-1 takes [L - 3/2, inf)
        out = torch.where(x <= 0, lowest, interior)
        return torch.where(x >= self.levels - 1, highest, out)

    def level_log_probs(self, params):
        """log P(k) for every level k: shape ``(*params.shape[:-1], L)``."""
        k = torch.arange(self.levels, dtype=params.dtype, device=params.device)
        shape = params.shape[:-1]
        kk = k.expand(*shape, self.levels)
        return self.log_prob(kk, params.unsqueeze(-2).expand(*shape, self.levels, 2))

    def sample(self, params, temperature=1.0):
        # Inverse CDF: round(mu + s * logit(u)) falls in bin k with probability P(k); clamping
        # sends the tails to the edge bins, exactly as the likelihood does.
        mu, log_s = self._loc_log_scale(params)
        if temperature == 0:
            return torch.round(mu).clamp(0, self.levels - 1)
        u = torch.rand_like(mu).clamp(1e-6, 1 - 1e-6)
        y = mu + torch.exp(log_s) * temperature * (torch.log(u) - torch.log1p(-u))
        return torch.round(y).clamp(0, self.levels - 1)

    def mean(self, params):
        k = torch.arange(self.levels, dtype=params.dtype, device=params.device)
        return (self.level_log_probs(params).exp() * k).sum(-1)


class LogisticMixtureOutput(OutputDistribution):
    """x in {0..L-1}: a mixture of K discretized logistics (Salimans et al. 2017, PixelCNN++).

        P(k) = sum_j pi_j P_j(k),   pi = softmax(w),   P_j = DiscretizedLogisticOutput(mu_j, s_j)

    3K parameters per dimension (w_j, mu_j, log s_j), whatever L is: for 8-bit data a
    categorical head needs 256 numbers per dimension, this one 15 (K = 5), and the
    mixture still has the several modes pixel values need.  Temperature T scales each
    component's s by T (the weights are kept); T = 0 gives the most probable level.
    """

    def __init__(self, levels: int, components: int = 5):
        super().__init__()
        if components < 1:
            raise ConfigError(f"a logistic mixture needs components >= 1, got {components}")
        self.levels, self.components = levels, components
        self.component = DiscretizedLogisticOutput(levels)
        self.params_per_dim = 3 * components

    def _split(self, params):
        """(weight logits (..., K), component params (..., K, 2))."""
        w, loc, log_s = params.unflatten(-1, (3, self.components)).unbind(-2)
        return w, torch.stack([loc, log_s], -1)

    def log_prob(self, x, params):
        w, comp = self._split(params)
        return torch.logsumexp(F.log_softmax(w, -1) + self.component.log_prob(x.unsqueeze(-1), comp), -1)

    def level_log_probs(self, params):
        """log P(k) for every level k: shape ``(*params.shape[:-1], L)``."""
        shape, p = params.shape[:-1], params.shape[-1]
        k = torch.arange(self.levels, dtype=params.dtype, device=params.device).expand(*shape, self.levels)
        return self.log_prob(k, params.unsqueeze(-2).expand(*shape, self.levels, p))

    def sample(self, params, temperature=1.0):
        if temperature == 0:
            return self.level_log_probs(params).argmax(-1).to(params.dtype)
        w, comp = self._split(params)
        j = torch.distributions.Categorical(logits=w).sample()
        chosen = comp.gather(-2, j[..., None, None].expand(*j.shape, 1, 2)).squeeze(-2)
        return self.component.sample(chosen, temperature)

    def mean(self, params):
        k = torch.arange(self.levels, dtype=params.dtype, device=params.device)
        return (self.level_log_probs(params).exp() * k).sum(-1)


class GaussianOutput(OutputDistribution):
    """x in R: N(mu, sigma^2) with mu = p0 and log sigma = B tanh(p1 / B) both from the network.

        log p(x) = -(x - mu)^2 / (2 sigma^2) - log sigma - 1/2 log(2 pi)

    The soft bound B on log sigma keeps the NLL finite when a variance collapses.
    """

    params_per_dim = 2

    def __init__(self, log_std_bound: float = 7.0):
        super().__init__()
        self.log_std_bound = float(log_std_bound)

    def loc_log_std(self, params):
        b = self.log_std_bound
        return params[..., 0], b * torch.tanh(params[..., 1] / b)

    def log_prob(self, x, params):
        mean, log_std = self.loc_log_std(params)
        return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI

    def sample(self, params, temperature=1.0):
        mean, log_std = self.loc_log_std(params)
        return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)

    def mean(self, params):
        return params[..., 0]


class LearnedScaleGaussianOutput(OutputDistribution):
    """x in R: N(mu, sigma_d^2) with mu from the network and one learned log sigma_d per dimension.

        log p(x_d) = -(x_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - 1/2 log(2 pi)
    """

    params_per_dim = 1

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def log_prob(self, x, params):
        mu = params[..., 0]
        z = (x - mu) * torch.exp(-self.log_scale)
        return -0.5 * z**2 - self.log_scale - 0.5 * LOG_2PI

    def sample(self, params, temperature=1.0):
        mu = params[..., 0]
        return mu + temperature * torch.exp(self.log_scale) * torch.randn_like(mu)

    def mean(self, params):
        return params[..., 0]


class ContinuousMixtureOutput(OutputDistribution):
    """x in R: a mixture of K Gaussians or K logistics, every number from the network (3K per dimension):

        p(x) = sum_j pi_j f_j(x),   pi = softmax(w),
        Gaussian:  log f_j = -(x - mu_j)^2 / (2 sigma_j^2) - log sigma_j - 1/2 log(2 pi)
        logistic:  log f_j = -z_j - log s_j - 2 softplus(-z_j),   z_j = (x - mu_j) / s_j

    with log sigma_j (log s_j) soft-bounded to [-B, B] by B tanh(l / B), so a collapsing component cannot
    send the NLL to -inf.  Several modes per conditional: what a single Gaussian misses on two moons.
    Temperature T scales every component's scale by T (weights kept); T = 0 gives the mean of the most
    probable component.
    """

    def __init__(self, components: int = 5, family: str = "gaussian", log_scale_bound: float = 7.0):
        super().__init__()
        if components < 1:
            raise ConfigError(f"a {family} mixture needs components >= 1, got {components}")
        if family not in ("gaussian", "logistic"):
            raise ConfigError(f"mixture family must be gaussian or logistic, got {family!r}")
        self.components, self.family, self.bound = components, family, float(log_scale_bound)
        self.params_per_dim = 3 * components

    def _split(self, params):
        """(weight logits, locations, bounded log-scales), each (..., K).  Location j is offset by the fixed
        u_j = linspace(-2, 2, K)_j, so a fresh network's components start spread over the (standardised) data
        instead of on top of each other, where symmetry would keep them together for thousands of steps."""
        w, loc, log_s = params.unflatten(-1, (3, self.components)).unbind(-2)
        if self.components > 1:
            loc = loc + torch.linspace(-2, 2, self.components, dtype=loc.dtype, device=loc.device)
        return w, loc, self.bound * torch.tanh(log_s / self.bound)

    def component_log_prob(self, x, loc, log_s):
        z = (x - loc) * torch.exp(-log_s)
        if self.family == "gaussian":
            return -0.5 * z**2 - log_s - 0.5 * LOG_2PI
        return -z - log_s - 2 * F.softplus(-z)

    def log_prob(self, x, params):
        w, loc, log_s = self._split(params)
        return torch.logsumexp(F.log_softmax(w, -1) + self.component_log_prob(x.unsqueeze(-1), loc, log_s), -1)

    def sample(self, params, temperature=1.0):
        w, loc, log_s = self._split(params)
        if temperature == 0:
            return loc.gather(-1, w.argmax(-1, keepdim=True)).squeeze(-1)
        j = torch.distributions.Categorical(logits=w).sample().unsqueeze(-1)
        mu, s = loc.gather(-1, j).squeeze(-1), torch.exp(log_s.gather(-1, j).squeeze(-1))
        if self.family == "gaussian":
            return mu + temperature * s * torch.randn_like(mu)
        u = torch.rand_like(mu).clamp(1e-7, 1 - 1e-7)
        return mu + temperature * s * (torch.log(u) - torch.log1p(-u))

    def mean(self, params):
        w, loc, _ = self._split(params)
        return (F.softmax(w, -1) * loc).sum(-1)


OUTPUTS = ("bernoulli", "categorical", "logistic", "logistic-mixture", "gaussian", "conditional-gaussian",
           "gaussian-mixture")
# Heads that are densities on continuous data; logistic-mixture is both (discretized on discrete data).
_DENSITY_OUTPUTS = ("gaussian", "conditional-gaussian", "gaussian-mixture")


def resolve_output(name: str, spec: DataSpec, discrete: str = "logistic", continuous: str = "gaussian",
                   allowed: tuple[str, ...] = OUTPUTS, field: str = "output") -> str:
    """The concrete output distribution for ``name`` on data ``spec``.

    "auto" is bernoulli for 2 levels, ``discrete`` for L > 2 levels and ``continuous`` for
    continuous data.  A choice that does not fit the data (a density on discrete data, a discrete
    distribution on continuous data, bernoulli for L > 2) raises ConfigError naming ``field``.
    """
    if name not in ("auto", *allowed):
        raise ConfigError(f"{field} must be one of {', '.join(('auto', *allowed))}; got {name!r}")
    if name == "auto":
        if spec.levels is None:
            return continuous
        return "bernoulli" if spec.levels == 2 else discrete
    is_density = name in _DENSITY_OUTPUTS
    if spec.levels is None and not is_density and name != "logistic-mixture":
        raise ConfigError(f"{field} '{name}' models discrete levels, but data '{spec.name}' is continuous; "
                          f"use {field}: {continuous}")
    if spec.levels is not None and is_density:
        raise ConfigError(f"{field} '{name}' is a density, but data '{spec.name}' has {spec.levels} discrete "
                          f"levels and needs a discrete P(k); use categorical, logistic or bernoulli")
    if name == "bernoulli" and spec.levels != 2:
        raise ConfigError(f"{field} 'bernoulli' needs 2 levels, data '{spec.name}' has {spec.levels}")
    return name


def make_output(name: str, spec: DataSpec, components: int = 5) -> OutputDistribution:
    """Build the output distribution ``name`` (already resolved by :func:`resolve_output`) for data ``spec``;
    ``components``: mixture components of ``logistic-mixture`` / ``gaussian-mixture``."""
    if name == "bernoulli":
        return BernoulliOutput()
    if name == "categorical":
        return CategoricalOutput(spec.levels)
    if name == "logistic":
        return DiscretizedLogisticOutput(spec.levels)
    if name == "logistic-mixture":
        if spec.levels is None:
            return ContinuousMixtureOutput(components, "logistic")
        return LogisticMixtureOutput(spec.levels, components)
    if name == "gaussian-mixture":
        return ContinuousMixtureOutput(components, "gaussian")
    if name == "conditional-gaussian":
        return GaussianOutput()
    if name == "gaussian":
        return LearnedScaleGaussianOutput(spec.shape)
    raise ConfigError(f"unknown output distribution {name!r} (choices: {', '.join(OUTPUTS)})")
