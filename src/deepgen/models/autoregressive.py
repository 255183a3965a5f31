"""Autoregressive models: exact likelihoods from the chain rule.

    log p(x) = sum_{t=1..D} log p(x_{o(t)} | x_{o(1)}, ..., x_{o(t-1)})

for an ordering ``o`` of the D (flattened) data dimensions.

MADE (Germain, Gregor, Murray & Larochelle 2015) computes all D conditionals in
one pass of an MLP whose weights are masked so that the output for the dim at
position t of the ordering sees only the inputs at positions < t.  Every unit
gets a *degree*: input dim d has degree pos(d) in 0..D-1, hidden units draw
degrees in [min degree of the layer below, D-2], and

    hidden mask:  M[j, i] = 1  iff  deg(j) >= deg(i)
    output mask:  M[d, j] = 1  iff  pos(d) >  deg(j)     (strict: no self-dependence)

so every path from input i to output d has deg increasing weakly then strictly,
i.e. pos(i) < pos(d).  Context features (if any) get degree -1 and reach every unit.

Connectivity-agnostic training (the paper's order-agnostic variant): the model
holds ``num_masks`` orderings/degree sets, each training step uses one of them,
and ``log_prob`` is the exact log-density of their uniform mixture

    log p(x) = logsumexp_m log p_m(x) - log M,

a normalized distribution (a mixture of normalized autoregressive models).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.registry import register
from deepgen.nets.masked import MaskedLinear

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _rebuild_masks(module, _incompatible_keys) -> None:
    """After ``load_state_dict``: re-derive the masks from the loaded orderings and degrees."""
    module._install_masks()


@register
class MADE(GenerativeModel):
    """MADE: a masked MLP giving every conditional of an autoregressive model in one pass.

    Per-dimension conditionals, chosen from the data spec:

    * ``levels == 2``: Bernoulli with logit s:    log p(x) = x s - softplus(s)
    * ``levels == L > 2``: categorical over 0..L-1 with L logits s_k:  log p(k) = s_k - logsumexp(s)
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
    description = "MADE masked autoregressive MLP (exact density); Bernoulli/categorical/Gaussian conditionals"
    train_defaults = {"lr": 3e-3}  # tuned on digits / digits-binary (3000 steps); the masks regularize

    LOG_STD_BOUND = 7.0  # soft bound on Gaussian log-std: keeps the NLL finite when a variance collapses

    def __init__(self, spec: DataSpec, hidden: int = 512, depth: int = 2, num_masks: int = 16,
                 order: str = "random", direct: bool = True, seed: int = 0, context_features: int = 0):
        super().__init__(spec, hidden=hidden, depth=depth, num_masks=num_masks, order=order, direct=direct,
                         seed=seed, context_features=context_features)
        if hidden < 1 or depth < 0 or num_masks < 1 or context_features < 0:
            raise ConfigError(f"made: need hidden >= 1, depth >= 0, num_masks >= 1, context_features >= 0; got "
                              f"hidden={hidden}, depth={depth}, num_masks={num_masks}, "
                              f"context_features={context_features}")
        if order not in ("natural", "random"):
            raise ConfigError(f"made: order must be 'natural' or 'random', got {order!r}")
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"made: discrete data needs at least 2 levels, data '{spec.name}' has {spec.levels}")
        d = spec.dim
        # Parameters of each conditional: 1 Bernoulli logit, L categorical logits, or (mean, log-std).
        self.k = 1 if spec.levels == 2 else (spec.levels if spec.levels is not None else 2)

        orders, degrees = self._connectivity(d, hidden, depth, num_masks, order, seed)
        self.register_buffer("orders", orders)           # (M, D): orders[m, t] = dim at position t
        self.register_buffer("hidden_degrees", degrees)  # (M, depth, hidden)

        sizes = [d + context_features] + [hidden] * depth + [d * self.k]
        masks = self._masks()
        # Masks are derived from the two buffers above, so they stay out of the saved weights.
        self.layers = torch.nn.ModuleList(
            MaskedLinear(i, o, mask, persistent=False) for i, o, mask in zip(sizes[:-1], sizes[1:], masks[:-1])
        )
        # Direct input -> output connections (the paper's option): a linear autoregressive term added
        # to the MLP's output, masked by the strict rule pos(d) > deg(i).  With depth 0 the MLP is that already.
        self.direct = (MaskedLinear(sizes[0], sizes[-1], masks[-1], bias=False, persistent=False)
                       if direct and depth > 0 else None)
        self.register_load_state_dict_post_hook(_rebuild_masks)

    # --- connectivity -----------------------------------------------------------
    @staticmethod
    def _connectivity(d, hidden, depth, num_masks, order, seed):
        """Orderings (M, D) and hidden degrees (M, depth, hidden), deterministic in ``seed``."""
        g = torch.Generator().manual_seed(seed)
        orders, degrees = [], []
        for m in range(num_masks):
            natural = order == "natural" or m == 0
            orders.append(torch.arange(d) if natural else torch.randperm(d, generator=g))
            layers, low = [], 0
            for _ in range(depth):
                # Degrees in [low, D-2]: a unit of degree D-1 could feed no output.  low = the smallest
                # degree below, so no unit is cut off from every input.
                deg = torch.randint(low, max(d - 1, low + 1), (hidden,), generator=g)
                layers.append(deg)
                low = int(deg.min())
            degrees.append(torch.stack(layers) if layers else torch.zeros(0, hidden, dtype=torch.long))
        return torch.stack(orders), torch.stack(degrees)

    def positions(self) -> torch.Tensor:
        """(M, D): positions[m, d] = place of dim d in ordering m (its input degree)."""
        return torch.argsort(self.orders, dim=1)

    def _masks(self) -> list[torch.Tensor]:
        """(M, out, in) bool masks implied by the orderings and degrees: one per layer, then the direct one."""
        pos = self.positions()
        ctx = self.params["context_features"]
        # Context features get degree -1: every unit may see them.
        inputs = torch.cat([pos, torch.full((len(pos), ctx), -1, dtype=pos.dtype, device=pos.device)], 1)
        out = pos.repeat_interleave(self.k, dim=1)  # output unit d*K + j belongs to dim d
        masks, prev = [], inputs
        for layer in range(self.hidden_degrees.shape[1]):
            deg = self.hidden_degrees[:, layer]
            masks.append(deg[:, :, None] >= prev[:, None, :])
            prev = deg
        masks.append(out[:, :, None] > prev[:, None, :])
        masks.append(out[:, :, None] > inputs[:, None, :])
        return masks

    def _install_masks(self) -> None:
        masks = self._masks()
        for layer, mask in zip(self.layers, masks):
            layer.set_masks(mask)
        if self.direct is not None:
            self.direct.set_masks(masks[-1])

    @property
    def num_masks(self) -> int:
        return self.orders.shape[0]

    # --- conditionals -----------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(f"made: expected inputs of shape (N, {', '.join(map(str, self.spec.shape))}), "
                            f"got {tuple(x.shape)}")
        return x.reshape(len(x), -1)

    def _context(self, context, n):
        c = self.params["context_features"]
        if c == 0:
            if context is not None:
                raise ConfigError("made: got a context but the model has context_features=0")
            return None
        if context is None or tuple(context.shape) != (n, c):
            got = None if context is None else tuple(context.shape)
            raise ConfigError(f"made: needs a context of shape ({n}, {c}), got {got}")
        return context.to(self.device)

    def _params(self, x: torch.Tensor, m: int, context=None) -> torch.Tensor:
        """Conditional parameters (B, D, K) of flat inputs x (B, D) under mask set m."""
        h = x
        if self.spec.levels is not None and self.spec.levels > 2:
            h = x / (self.spec.levels - 1)  # levels to [0, 1], a scale an MLP likes
        if context is not None:
            h = torch.cat([h, context.to(h.dtype)], 1)
        out = h
        for i, layer in enumerate(self.layers):
            out = layer(F.relu(out) if i else out, m)
        if self.direct is not None:
            out = out + self.direct(h, m)
        out = out.view(len(x), -1, self.k)
        if self.spec.levels is None:
            b = self.LOG_STD_BOUND
            out = torch.stack([out[..., 0], b * torch.tanh(out[..., 1] / b)], -1)
        return out

    def conditionals(self, x: torch.Tensor, mask_index: int = 0, context=None) -> torch.Tensor:
        """Parameters of p(x_d | x_<d) for every dim d, shape (B, D, K), under mask set ``mask_index``.

        Dims are in the data's flattened order (use ``orders[mask_index]`` for the
        ordering).  K = 1 (Bernoulli logit), L (categorical logits, unnormalized) or
        2 (Gaussian mean and soft-clamped log-std).
        """
        return self._params(self._flat(x), mask_index, self._context(context, len(x)))

    def _dim_log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_d | x_<d) per dim, (B, D)."""
        if self.spec.levels == 2:
            return -F.binary_cross_entropy_with_logits(params[..., 0], x, reduction="none")
        if self.spec.levels is not None:
            logp = torch.log_softmax(params, -1)
            return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)
        mean, log_std = params[..., 0], params[..., 1]
        return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - HALF_LOG_2PI

    def log_prob_per_mask(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """(B, M): log p_m(x) under each ordering/connectivity m (each exactly normalized)."""
        flat, ctx = self._flat(x), self._context(context, len(x))
        return torch.stack([self._dim_log_prob(self._params(flat, m, ctx), flat).sum(1)
                            for m in range(self.num_masks)], 1)

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
        nll = -self._dim_log_prob(self._params(flat, m, self._context(context, len(x))), flat).sum(1).mean()
        return {"loss": nll, "nll": nll.detach()}

    def _draw(self, params: torch.Tensor, temperature: float) -> torch.Tensor:
        """One value per row from conditional parameters (B, K); temperature 0 gives the mode."""
        if self.spec.levels is None:
            mean, log_std = params[:, 0], params[:, 1]
            return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)
        if self.spec.levels == 2:
            logits = params[:, 0]
            if temperature == 0:
                return (logits > 0).to(logits.dtype)
            return torch.bernoulli(torch.sigmoid(logits / temperature))
        if temperature == 0:
            return params.argmax(-1).to(params.dtype)
        return torch.multinomial(torch.softmax(params / temperature, -1), 1).squeeze(1).to(params.dtype)

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
        d, device, dtype = self.spec.dim, self.device, self.layers[0].weight.dtype
        if conditioned_on is not None:
            if tuple(conditioned_on.shape) != (n, *self.spec.shape):
                raise DataError(f"made: conditioned_on must have shape ({n}, {', '.join(map(str, self.spec.shape))})"
                                f", got {tuple(conditioned_on.shape)}")
            cond = conditioned_on.reshape(n, d).to(device, dtype)
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
        ctx = self._context(context, n)
        which = torch.randint(self.num_masks, (n,)) if self.num_masks > 1 else torch.zeros(n, dtype=torch.long)
        for m in which.unique().tolist():
            rows = (which == m).nonzero().squeeze(1).to(device)
            xs, miss = x[rows], missing[rows]
            cs = None if ctx is None else ctx[rows]
            for dim in self.orders[m].tolist():
                need = miss[:, dim]
                if not need.any():
                    continue
                value = self._draw(self._params(xs, m, cs)[:, dim], temperature)
                xs[:, dim] = torch.where(need, value, xs[:, dim])
            x[rows] = xs
        return x.view(n, *self.spec.shape)
