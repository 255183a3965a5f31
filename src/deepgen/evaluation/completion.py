"""Completion of partly observed data: which entries are hidden, and how well the model predicts them.

Masks (``parse_mask``): ``bottom-half``, ``top-half``, ``right-half``, ``left-half`` (rows / columns of
images; for vectors right-half / left-half are the last / first half of the features) and ``random:P``
(each entry hidden with probability P, independently per example).

The figure is the NLL of the hidden entries given the observed ones, nats per example,

    -log p(x_h | x_o) = -log p(x) + log p(x_o),

with log p(x) exact and log p(x_o) = log sum_{x_h} p(x_o, x_h) estimated by importance sampling with the
model's own completion procedure as the proposal q(x_h | x_o) (:meth:`complete` returns log q):

    log p^(x_o) = log (1/K) sum_k p(x_o, x_h^k) / q(x_h^k | x_o),     x_h^k ~ q.

When every observed entry precedes every hidden one in each of the model's orderings (bottom-half under a
raster scan), q is exactly p(x_h | x_o), every weight equals p(x_o) and the figure is exact (``estimator:
exact``, K = 1).  Otherwise E[log p^] <= log p(x_o) (Jensen), so the reported hidden NLL is, in
expectation, a lower bound on the true one that tightens as K grows (``estimator: importance sampling``).
"""

from __future__ import annotations

import math

import torch

from deepgen.errors import ConfigError

MASKS = ("bottom-half", "top-half", "right-half", "left-half", "random:P")


def parse_mask(text: str, spec, n: int, seed: int = 0) -> torch.Tensor:
    """(n, *shape) bool, True where hidden, for the mask named ``text`` (see :data:`MASKS`)."""
    shape = tuple(spec.shape)
    if text.startswith("random:"):
        try:
            p = float(text.split(":", 1)[1])
        except ValueError:
            p = float("nan")
        if not 0 < p < 1:
            raise ConfigError(f"--mask {text}: expected random:P with 0 < P < 1, e.g. random:0.5")
        g = torch.Generator().manual_seed(seed)
        return torch.rand((n, *shape), generator=g) < p
    if text not in MASKS:
        raise ConfigError(f"--mask {text!r}: expected one of {', '.join(MASKS)}")
    mask = torch.zeros(shape, dtype=torch.bool)
    if spec.is_image:
        h, w = shape[1:]
        if text == "bottom-half":
            mask[:, h // 2:] = True
        elif text == "top-half":
            mask[:, : h // 2] = True
        elif text == "right-half":
            mask[:, :, w // 2:] = True
        else:
            mask[:, :, : w // 2] = True
    else:
        if text in ("bottom-half", "top-half"):
            raise ConfigError(f"--mask {text}: data '{spec.name}' are vectors of {spec.dim} features, not images; "
                              "use right-half (the last features), left-half or random:P")
        d = shape[0]
        if d < 2:
            raise ConfigError(f"--mask {text}: data '{spec.name}' have one feature; nothing would stay observed")
        if text == "right-half":
            mask[d // 2:] = True
        else:
            mask[: d // 2] = True
    return mask.expand(n, *shape).clone()


def observed_first(model, missing: torch.Tensor) -> bool:
    """True when in every ordering of ``model`` every observed dim precedes every hidden one, for every row of
    ``missing`` (n, D): then the completion draws from p(x_h | x_o) exactly."""
    flat = missing.reshape(len(missing), -1)
    for order in model.orderings().cpu():
        pos = torch.argsort(order).expand_as(flat)
        last_observed = torch.where(~flat, pos, torch.full_like(pos, -1)).max(1).values
        first_hidden = torch.where(flat, pos, torch.full_like(pos, flat.shape[1])).min(1).values
        if (last_observed > first_hidden).any():
            return False
    return True


@torch.no_grad()
def hidden_log_likelihood(model, x: torch.Tensor, missing: torch.Tensor, context=None, samples: int = 32,
                          batch_size: int = 256, seed: int = 0) -> dict:
    """log p(x_h | x_o) per example (nats, (n,) float64) with how it was obtained; see the module docstring.

    Returns {"hidden_log_lik", "log_p", "log_p_observed", "estimator", "samples"}.  Randomness comes from a
    generator seeded with ``seed``; the global RNG is restored afterwards."""
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    exact = observed_first(model, missing)
    k = 1 if exact else samples
    was_training = model.training
    model.eval()
    device = model.device
    log_p, log_obs = [], []
    chunk = max(1, batch_size // k)  # examples per call; each is repeated k times in one batch
    with torch.random.fork_rng(devices=[] if device.type != "cuda" else [device]):
        torch.manual_seed(seed)
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk].to(device)
            mb = missing[i : i + chunk].to(device)
            cb = None if context is None else context[i : i + chunk].to(device)
            log_p.append(model.log_prob(xb, cb).double().cpu())
            holed = torch.where(mb, torch.full_like(xb, float("nan")), xb).repeat_interleave(k, 0)
            ck = None if cb is None else cb.repeat_interleave(k, 0)
            filled, log_q = model.complete(holed, ck)
            weights = (model.log_prob(filled, ck) - log_q).double().cpu().view(len(xb), k)
            log_obs.append(torch.logsumexp(weights, 1) - math.log(k))
    model.train(was_training)
    lp, lo = torch.cat(log_p), torch.cat(log_obs)
    return {"hidden_log_lik": lp - lo, "log_p": lp, "log_p_observed": lo,
            "estimator": "exact" if exact else "importance sampling", "samples": k}
