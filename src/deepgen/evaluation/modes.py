"""Mode coverage of samples from a mixture with known modes (``ring8``, ``grid25``).

Protocol (fixed, in the spirit of VEEGAN, Srivastava et al. 2017, and PacGAN,
Lin et al. 2018):

* draw ``n = 2500`` samples from the model under a fixed seed;
* assign each sample to its nearest mode center (Euclidean);
* a sample is *high quality* if it lies within ``n_sigma = 3`` standard
  deviations of that center: ||x - c_k|| <= 3 std;
* a mode is *covered* if it receives at least ``min_count`` high-quality samples,
  by default ``ceil(0.1 * n / K)`` — 10% of the count a perfect model gives each
  of the K equally weighted modes (32 of 2500 for ring8, 10 for grid25).

Why not count a mode on a single sample, as VEEGAN does?  A generator that
hops between modes, or whose support is a thin curve through several modes,
puts a few stray samples on a mode it does not model; with one sample as the
threshold it is credited with that mode.  A mode with its fair share n/K = 312
(ring8) of samples gets fewer than 10% of them with negligible probability, so
the threshold only rejects modes that really receive < 10% of their mass
(PacGAN likewise declares a mode lost below 20 of its 100 expected samples).
The single-sample figure is reported as well, as ``modes_hit``, to compare with
papers that use it.

``mode_kl`` is KL(q || uniform) = sum_k q_k log(K q_k) in nats, where q is the
distribution of high-quality samples over the modes: 0 for balanced modes,
log K when all fall on one mode.
"""

from __future__ import annotations

import math

import torch

from deepgen.errors import DataError

PROTOCOL_SAMPLES = 2500
PROTOCOL_N_SIGMA = 3.0
PROTOCOL_MIN_FRACTION = 0.1


def default_min_count(n: int, n_modes: int) -> int:
    """ceil(0.1 * n / K), at least 1: 10% of a mode's expected share of ``n`` samples."""
    return max(1, math.ceil(PROTOCOL_MIN_FRACTION * n / n_modes))


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, n_sigma: float = PROTOCOL_N_SIGMA,
                  min_count: int | None = None) -> dict:
    """Modes covered and % high-quality samples of ``samples`` (n, d) for modes ``centers`` (K, d).

    Returns ``modes_covered`` (modes with >= ``min_count`` high-quality samples),
    ``n_modes`` (K), ``high_quality_pct`` (100 x fraction of samples within
    ``n_sigma * std`` of their nearest center), ``modes_hit`` (modes with >= 1),
    ``mode_kl`` (nats; None if no sample is high quality), ``counts`` (high-quality
    samples per mode) and the protocol: ``n_samples``, ``n_sigma``, ``radius``
    (= n_sigma * std, in data units), ``min_count``.
    """
    samples = torch.as_tensor(samples).detach().double().cpu()
    centers = torch.as_tensor(centers).detach().double().cpu()
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise DataError(f"mode_coverage: samples {tuple(samples.shape)} and centers {tuple(centers.shape)} "
                        "must be (n, d) and (K, d)")
    n, k = len(samples), len(centers)
    if n == 0:
        raise DataError("mode_coverage: no samples")
    if min_count is None:
        min_count = default_min_count(n, k)
    dist, nearest = torch.cdist(samples, centers).min(dim=1)
    radius = n_sigma * std
    hq = dist <= radius
    counts = torch.bincount(nearest[hq], minlength=k)
    n_hq = int(hq.sum())
    if n_hq:
        q = counts.double() / n_hq
        mode_kl = float(torch.where(q > 0, q * torch.log(k * q), torch.zeros_like(q)).sum())
    else:
        mode_kl = None
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "n_modes": k,
        "high_quality_pct": 100.0 * n_hq / n,
        "modes_hit": int((counts >= 1).sum()),
        "mode_kl": mode_kl,
        "counts": counts.tolist(),
        "n_samples": n,
        "n_sigma": n_sigma,
        "radius": radius,
        "min_count": int(min_count),
    }


def known_modes(dataset_name: str):
    """(centers, std) of a built-in dataset with known modes, or None."""
    from deepgen.data.toy2d import MODES

    return MODES.get(dataset_name)


def mode_metrics_for(model, dataset_name: str, n: int = PROTOCOL_SAMPLES, seed: int = 0,
                     context: torch.Tensor | None = None) -> dict | None:
    """:func:`mode_coverage` of ``n`` samples of ``model`` (eval mode, seeded), or None if the data have no known modes.

    A conditional model needs ``context`` (n rows, e.g. one-hot labels drawn from the label
    prior).  The global RNG (CPU and the model's CUDA device) is forked, so calling this
    never changes the caller's random stream; the model's train/eval mode is restored.
    """
    modes = known_modes(dataset_name)
    if modes is None:
        return None
    centers, std = modes
    x = seeded_samples(model, n, seed, context)
    return mode_coverage(x.reshape(len(x), -1), centers, std)


@torch.no_grad()
def seeded_samples(model, n: int, seed: int, context: torch.Tensor | None = None, **sample_kwargs) -> torch.Tensor:
    """``model.sample(n, context, **sample_kwargs)`` in eval mode under ``torch.manual_seed(seed)``, RNG and
    mode restored."""
    was_training = model.training
    device = model.device
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            ctx = None if context is None else context.to(device)
            return model.sample(n, context=ctx, **sample_kwargs).detach().float().cpu()
    finally:
        model.train(was_training)
