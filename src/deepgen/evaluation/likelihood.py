"""Negative log-likelihood in nats and bits/dim, evaluated reproducibly.

    NLL [nats per example] = -(1/N) sum_n log p(x_n)
    bits/dim               = NLL / (D ln 2)

For discrete data (L levels) log p is the model's log P(k) on the discrete scale
(for flows: the uniformly dequantized bound, see :mod:`deepgen.data.dequantize`).
Any randomness in ``log_prob`` (dequantization noise, importance samples) is
drawn from a generator seeded with ``seed`` and the global RNG is restored
afterwards, so the same model, data and seed give the same figure bit for bit.
"""

from __future__ import annotations

import math

import torch

from deepgen.data.spec import DataSpec


@torch.no_grad()
def per_example_log_prob(model, x: torch.Tensor, batch_size: int = 256, seed: int = 0, method: str = "log_prob",
                         context: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """log p(x_n) (or log p(x_n | c_n) with ``context``) for every row of ``x`` (nats), in fixed
    batches under a fixed seed.

    ``method`` names another per-example figure with the same signature (e.g. ``"elbo"``).
    The same seed, batch size and data give the same noise in every call, so calls that differ
    only in the context (one per class) see the same dequantization noise.
    """
    fn = getattr(model, method)
    was_training = model.training
    model.eval()
    out = []
    device = model.device
    with torch.random.fork_rng(devices=[] if device.type != "cuda" else [device]):
        torch.manual_seed(seed)
        for i in range(0, len(x), batch_size):
            c = None if context is None else context[i : i + batch_size].to(device)
            out.append(fn(x[i : i + batch_size].to(device), c, **kwargs).double().cpu())
    model.train(was_training)
    return torch.cat(out)


def nll_summary(log_probs: torch.Tensor, spec: DataSpec) -> dict[str, float]:
    """Mean NLL in nats per example, bits/dim, and the standard error of the mean NLL."""
    nll = -log_probs.double()
    n = len(nll)
    mean = nll.mean().item()
    sem = (nll.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    return {
        "nll_nats": mean,
        "nll_nats_sem": sem,
        "bits_per_dim": spec.bits_per_dim(mean),
        "n": n,
    }
