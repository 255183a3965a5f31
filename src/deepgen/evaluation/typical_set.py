"""Likelihood is not probability: the typical set of a Gaussian, and the same question asked of a trained model.

The d-dimensional standard normal z ~ N(0, I_d) (all figures in nats):

    log p(z)        = -d/2 log(2 pi) - |z|^2 / 2          highest at the mode z = 0
    P(|z| <= r)     = P(d/2, r^2/2)                        chi-square_d CDF at r^2 (regularized lower
                                                           incomplete gamma, torch.special.gammainc)
    p(|z| = r)      = r^(d-1) e^(-r^2/2) / (2^(d/2-1) Gamma(d/2))      the chi_d density of the radius
    mode of |z|     = sqrt(d - 1),   E|z| = sqrt(2) Gamma((d+1)/2) / Gamma(d/2),   sd|z| -> 1/sqrt(2)
    E[log p(z)]     = -d/2 log(2 pi e) = -H(N(0, I_d))     (E|z|^2 = d): a sample is e^(d/2) times less
                                                           dense than the mode
    mean log p over the ball of radius r (uniform points: E|z|^2 = r^2 d / (d + 2))
                    = -d/2 log(2 pi) - r^2 d / (2 (d + 2))

so the ball around the mode holds the densest points and almost none of the probability; samples lie on
a shell of radius about sqrt(d) and width about 1/sqrt(2) (the typical set).

For a trained model the same question is asked with its NLL, -log p(x) (nats per example; bits/dim =
NLL / (D ln 2)): reference images (blank, constant, noise), the highest-density images a bounded search
finds (greedy coordinate ascent over the levels of discrete data, gradient ascent on continuous data),
and the fraction of the sampler's draws whose NLL comes within a tolerance of the best found.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from deepgen.evaluation.likelihood import per_example_log_prob
from deepgen.evaluation.modes import seeded_samples

LOG_2PI = math.log(2 * math.pi)


# --- the Gaussian, in closed form -------------------------------------------------------------------
def _as_double(r) -> torch.Tensor:
    return torch.as_tensor(r, dtype=torch.float64)


def gaussian_log_density(r, d: int) -> torch.Tensor:
    """log N(z; 0, I_d) at any z with |z| = r (nats): -d/2 log(2 pi) - r^2/2."""
    r = _as_double(r)
    return -0.5 * d * LOG_2PI - 0.5 * r * r


def gaussian_entropy(d: int) -> float:
    """H(N(0, I_d)) = d/2 log(2 pi e) nats = -E[log p(z)]: the mean log-density of samples, negated."""
    return 0.5 * d * (LOG_2PI + 1.0)


def log_ball_probability(r, d: int) -> torch.Tensor:
    """log P(|z| <= r) for z ~ N(0, I_d), without underflow.

    P(|z| <= r) = P(a, x), a = d/2, x = r^2/2 (regularized lower incomplete gamma).  For x < a its series

        log P(a, x) = a log x - x - lgamma(a + 1) + log sum_{k>=0} x^k / ((a+1)(a+2)...(a+k))

    (terms fall at least as fast as exp(-k^2 / (2(a+1))); 8 sqrt(a) + 60 of them reach double precision) is
    summed in log space, so balls of probability 1e-1000 still give a finite logarithm; for x >= a,
    P >= 0.4 and ``log(gammainc)`` is exact."""
    r = _as_double(r)
    a = 0.5 * d
    x = 0.5 * r * r
    k = torch.arange(1, int(8 * math.sqrt(a)) + 61, dtype=torch.float64)
    xs = x.reshape(-1, 1).clamp_min(1e-300)
    log_terms = torch.cat([torch.zeros(len(xs), 1, dtype=torch.float64),
                           torch.cumsum(torch.log(xs) - torch.log(a + k), dim=1)], dim=1)
    series = (a * torch.log(xs[:, 0]) - xs[:, 0] - math.lgamma(a + 1) + torch.logsumexp(log_terms, dim=1))
    direct = torch.log(torch.special.gammainc(torch.tensor(a, dtype=torch.float64), x.reshape(-1)))
    out = torch.where(x.reshape(-1) < a, series, direct)
    out = torch.where(x.reshape(-1) <= 0, torch.tensor(-math.inf, dtype=torch.float64), out)
    return out.reshape(r.shape)


def ball_probability(r, d: int) -> torch.Tensor:
    """P(|z| <= r) = chi-square_d CDF(r^2) = gammainc(d/2, r^2/2) for z ~ N(0, I_d)."""
    r = _as_double(r)
    return torch.special.gammainc(torch.tensor(0.5 * d, dtype=torch.float64), 0.5 * r * r)


def radius_log_density(r, d: int) -> torch.Tensor:
    """log of the chi_d density of |z| at r (nats per unit of radius):
    (d-1) log r - r^2/2 - (d/2 - 1) log 2 - lgamma(d/2)."""
    r = _as_double(r)
    return (d - 1) * torch.log(r) - 0.5 * r * r - (0.5 * d - 1) * math.log(2) - math.lgamma(0.5 * d)


def radius_mode(d: int) -> float:
    """The most likely radius of a sample: sqrt(d - 1) (the peak of the chi_d density)."""
    return math.sqrt(max(d - 1, 0))


def radius_mean(d: int) -> float:
    """E|z| = sqrt(2) Gamma((d+1)/2) / Gamma(d/2)."""
    return math.sqrt(2) * math.exp(math.lgamma(0.5 * (d + 1)) - math.lgamma(0.5 * d))


def radius_std(d: int) -> float:
    """sd|z| = sqrt(d - (E|z|)^2), which tends to 1/sqrt(2) as d grows: the width of the shell."""
    return math.sqrt(max(d - radius_mean(d) ** 2, 0.0))


def radius_quantile(q: float, d: int, iterations: int = 200) -> float:
    """The radius r with P(|z| <= r) = q (bisection on :func:`ball_probability`)."""
    lo, hi = 0.0, math.sqrt(d) + 40.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if ball_probability(mid, d).item() < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_log_density_in_ball(r, d: int) -> torch.Tensor:
    """Mean log N(z; 0, I_d) over points spread uniformly in the ball |z| <= r (nats):
    -d/2 log(2 pi) - r^2 d / (2 (d + 2))."""
    r = _as_double(r)
    return -0.5 * d * LOG_2PI - r * r * d / (2.0 * (d + 2))


def sample_radii(d: int, n: int, generator: torch.Generator, chunk_values: int = 4_000_000) -> torch.Tensor:
    """|z| of ``n`` draws z ~ N(0, I_d) (float64), drawn in chunks of at most ``chunk_values`` numbers."""
    rows = max(1, chunk_values // d)
    out = []
    for i in range(0, n, rows):
        z = torch.randn(min(rows, n - i), d, generator=generator, dtype=torch.float64)
        out.append(z.square().sum(1).sqrt())
    return torch.cat(out)


def gaussian_typical_set(d: int = 100, n_samples: int = 100_000, seed: int = 0, radii=None,
                         small_radius: float = 1.0) -> dict:
    """The figures of the demonstration on N(0, I_d), closed forms beside Monte Carlo estimates from
    ``n_samples`` seeded draws.  ``radii`` (default 1, 2, ..., ceil(sqrt(d)) + 3) are the balls reported;
    ``small_radius`` is the ball "around the mode"."""
    g = torch.Generator().manual_seed(seed)
    radii_mc = sample_radii(d, n_samples, g)
    if radii is None:
        radii = list(range(1, math.ceil(math.sqrt(d)) + 4))
    radii = [float(r) for r in radii]
    r_t = torch.tensor(radii, dtype=torch.float64)
    log_p = log_ball_probability(r_t, d)
    frac = (radii_mc.unsqueeze(0) <= r_t.unsqueeze(1)).double().mean(1)
    log_p_mc = gaussian_log_density(radii_mc, d)
    small = torch.tensor(small_radius, dtype=torch.float64)
    mode_log_density = -0.5 * d * LOG_2PI
    return {
        "dim": d,
        "n_samples": n_samples,
        "seed": seed,
        "log_density_at_mode_nats": mode_log_density,
        "mean_log_density_of_samples_nats": -gaussian_entropy(d),
        "mean_log_density_of_samples_nats_mc": log_p_mc.mean().item(),
        "mean_log_density_of_samples_nats_mc_sem": (log_p_mc.std() / math.sqrt(n_samples)).item(),
        "density_ratio_mode_to_typical_nats": 0.5 * d,
        "small_ball": {
            "radius": small_radius,
            "probability": ball_probability(small, d).item(),
            "log10_probability": log_ball_probability(small, d).item() / math.log(10),
            "mean_log_density_nats": mean_log_density_in_ball(small, d).item(),
            "log_density_at_edge_nats": gaussian_log_density(small, d).item(),
            "fraction_of_samples_inside": (radii_mc <= small_radius).double().mean().item(),
        },
        "radius": {
            "mode": radius_mode(d),
            "mean": radius_mean(d),
            "std": radius_std(d),
            "quantile_05": radius_quantile(0.05, d),
            "median": radius_quantile(0.5, d),
            "quantile_95": radius_quantile(0.95, d),
            "mean_mc": radii_mc.mean().item(),
            "std_mc": radii_mc.std().item(),
            "min_mc": radii_mc.min().item(),
        },
        "balls": [
            {"radius": r, "probability": math.exp(lp), "log10_probability": lp / math.log(10),
             "fraction_of_samples_inside": f, "log_density_at_edge_nats": gaussian_log_density(r, d).item(),
             "mean_log_density_nats": mean_log_density_in_ball(r, d).item()}
            for r, lp, f in zip(radii, log_p.tolist(), frac.tolist())
        ],
        "units": {
            "log_density": "nats (natural log of the density of N(0, I_d) at a point)",
            "radius": "Euclidean norm |z| in the units of z",
            "probability": "probability mass of the ball |z| <= r (chi-square_d CDF of r^2)",
        },
        "_radii_mc": radii_mc,  # for the picture; dropped before writing JSON
    }


# --- a trained model ---------------------------------------------------------------------------------
def bits_per_dim(log_prob: torch.Tensor, dim: int) -> torch.Tensor:
    """-log p / (D ln 2): bits per dimension of a per-example log-likelihood in nats."""
    return -log_prob / (dim * math.log(2))


def is_stochastic(model, x: torch.Tensor, seed: int = 0) -> bool:
    """True when ``model.log_prob`` draws noise (dequantization, importance samples): two seeds differ."""
    a = per_example_log_prob(model, x, seed=seed)
    b = per_example_log_prob(model, x, seed=seed + 1)
    return not torch.equal(a, b)


def averaged_log_prob(model, x: torch.Tensor, repeats: int = 1, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    """log p(x_n) (nats, float64) averaged over ``repeats`` seeded evaluations of each example (one
    evaluation is enough for a deterministic log_prob; a stochastic bound is averaged to a precise
    estimate of its expectation, still a bound).  ``repeats`` = 1 equals
    ``per_example_log_prob(model, x, seed=seed)``."""
    if repeats == 1:
        return per_example_log_prob(model, x, batch_size=batch_size, seed=seed)
    lp = per_example_log_prob(model, x.repeat_interleave(repeats, dim=0), batch_size=batch_size, seed=seed)
    return lp.view(len(x), repeats).mean(1)


def reference_images(levels: int | None, shape, n_noise: int, generator: torch.Generator,
                     low: float = 0.0, high: float = 1.0, n_constant: int = 17) -> dict[str, torch.Tensor]:
    """Images no one would call typical: ``blank`` (all zeros, one image), ``constant`` (one flat image per
    level 0..L-1 of discrete data, else ``n_constant`` levels evenly spaced in [low, high]) and ``noise``
    (``n_noise`` images of independent uniform levels, or uniform values in [low, high])."""
    shape = tuple(shape)
    if levels is not None:
        values = torch.arange(levels, dtype=torch.float32)
        noise = torch.randint(0, levels, (n_noise, *shape), generator=generator).float()
    else:
        values = torch.linspace(low, high, n_constant)
        noise = low + (high - low) * torch.rand((n_noise, *shape), generator=generator)
    constant = values.view(-1, *([1] * len(shape))).expand(-1, *shape).contiguous()
    return {"blank": torch.zeros(1, *shape), "constant": constant, "noise": noise}


def coordinate_ascent(model, x0: torch.Tensor, levels: int, sweeps: int = 2, repeats: int = 1, seed: int = 0,
                      time_limit_s: float | None = None,
                      progress: Callable[[int, int, torch.Tensor], None] | None = None) -> dict:
    """Greedy coordinate ascent on log p over discrete images: for each dimension in turn, set it to the
    level 0..L-1 with the highest (estimated) log p of the whole image, for ``sweeps`` passes.

    Every candidate level is scored with the same seed (common random numbers), so a stochastic bound
    compares candidates under the same noise, averaged over ``repeats`` draws.  Stops early after a
    dimension when ``time_limit_s`` has passed or when a sweep changes nothing.  ``progress(sweep, sweeps,
    current log p)`` is called after each sweep.  Returns {"x": the images, "log_prob": their objective
    (nats, the last sweep's noise), "sweeps": sweeps done, "stopped_on_time": bool}."""
    x = x0.detach().clone().float()
    n = len(x)
    flat_dim = x[0].numel()
    start = time.monotonic()
    done, out_of_time = 0, False
    current = averaged_log_prob(model, x, repeats, seed)
    for sweep in range(sweeps):
        changed = False
        sweep_seed = seed + 1000 * (sweep + 1)
        for i in range(flat_dim):
            scores = []
            for level in range(levels):
                cand = x.reshape(n, -1).clone()
                cand[:, i] = level
                scores.append(averaged_log_prob(model, cand.view_as(x), repeats, sweep_seed))
            scores = torch.stack(scores, 1)  # (n, L)
            best = scores.argmax(1)
            flat = x.reshape(n, -1)
            changed |= bool((flat[:, i] != best.float()).any())
            flat[:, i] = best.float()
            x = flat.view_as(x)
            current = scores.gather(1, best.unsqueeze(1)).squeeze(1)
            if time_limit_s is not None and time.monotonic() - start > time_limit_s:
                out_of_time = True
                break
        done += 1
        if progress is not None:
            progress(done, sweeps, current)
        if out_of_time or not changed:
            break
    return {"x": x, "log_prob": current, "sweeps": done, "stopped_on_time": out_of_time}


def gradient_ascent(model, x0: torch.Tensor, steps: int = 200, lr: float = 0.05, low: float | None = None,
                    high: float | None = None) -> dict:
    """Adam on x to maximise sum_n log p(x_n) (continuous data and a log_prob differentiable in x), each
    step clamped to [low, high] when given.  Returns {"x", "log_prob" (nats, at the final x)}."""
    was_training = model.training
    model.eval()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    x = x0.detach().clone().to(model.device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                (-model.log_prob(x).sum()).backward()
                opt.step()
                if low is not None or high is not None:
                    with torch.no_grad():
                        x.clamp_(low, high)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    with torch.no_grad():
        lp = model.log_prob(x).double().cpu()
    return {"x": x.detach().cpu(), "log_prob": lp}


def fraction_within(values: torch.Tensor, best: float, tolerances) -> dict[str, float]:
    """{str(tol): fraction of ``values`` <= best + tol} (values and best in the same units, e.g. bits/dim,
    lower = more likely)."""
    v = values.double()
    return {f"{t:g}": (v <= best + t).double().mean().item() for t in tolerances}


def model_typical_set(model, train: torch.Tensor, test: torch.Tensor, seed: int = 0, n_samples: int = 2000,
                      n_noise: int = 500, sweeps: int = 3, search_time_s: float = 300.0, ascent_steps: int = 200,
                      tolerances=(0.1, 0.25, 0.5, 1.0), log: Callable[[str], None] | None = None) -> dict:
    """The typical-set figures of a trained unconditional ``model`` with a density, on its data scale.

    NLL of the ``test`` examples, of ``n_samples`` seeded model samples and of ``n_noise`` noise images
    (one evaluation each under ``seed``, as ``deepgen score``); then a bounded search for the highest-density
    inputs (coordinate ascent over levels for discrete data, :func:`coordinate_ascent`; gradient ascent for
    continuous data, :func:`gradient_ascent`) from the best constant image and the 3 most likely test
    examples.  The blank image, the constant images and every candidate (starts, search results, the 3 most
    likely samples) are then evaluated together (:func:`averaged_log_prob`, 64 evaluations each when
    log_prob is stochastic, 1 otherwise), so the best candidate is at least as likely as the blank and
    constant images by construction; the samples are compared with it: the fraction within each tolerance
    (bits/dim).  Returns figures (nats per example and bits/dim) and the tensors behind them (keys starting
    with "_")."""
    spec = model.spec
    say = log or (lambda _msg: None)
    dim = spec.dim

    def bpd(lp):
        return bits_per_dim(lp, dim)

    stochastic = is_stochastic(model, test[:8], seed)
    search_repeats, eval_repeats = (4, 64) if stochastic else (1, 1)
    t0 = time.monotonic()
    lp_test = per_example_log_prob(model, test, seed=seed)
    say(f"test examples: {len(test)} scored ({time.monotonic() - t0:.1f}s)")
    t0 = time.monotonic()
    samples = seeded_samples(model, n_samples, seed)
    lp_samples = per_example_log_prob(model, samples, seed=seed)
    say(f"samples: {n_samples} drawn and scored ({time.monotonic() - t0:.1f}s)")
    low, high = (0.0, float(spec.levels - 1)) if spec.levels else (train.min().item(), train.max().item())
    refs = reference_images(spec.levels, spec.shape, n_noise, torch.Generator().manual_seed(seed), low, high)
    lp_constant = averaged_log_prob(model, refs["constant"], search_repeats, seed)  # to pick a start
    lp_noise = per_example_log_prob(model, refs["noise"], seed=seed)
    const_values = refs["constant"].reshape(len(refs["constant"]), -1)[:, 0]

    # the search for the highest-density inputs
    top_test = lp_test.topk(min(3, len(test))).indices
    starts = torch.cat([refs["constant"][lp_constant.argmax()].unsqueeze(0), test[top_test]])
    start_names = ["best constant"] + [f"test #{i}" for i in top_test.tolist()]
    t0 = time.monotonic()
    if spec.levels is not None:
        def report(done, total, cur):
            say(f"coordinate ascent: sweep {done}/{total}, best {bpd(cur).min().item():.3f} bits/dim under "
                f"this sweep's noise ({time.monotonic() - t0:.0f}s)")

        found = coordinate_ascent(model, starts, spec.levels, sweeps=sweeps, repeats=search_repeats, seed=seed,
                                  time_limit_s=search_time_s, progress=report)
        method = (f"greedy coordinate ascent over the {spec.levels} levels of each of the {dim} dimensions, "
                  f"{found['sweeps']} sweep(s), candidates scored with common random numbers "
                  f"({search_repeats} evaluation(s) each)")
    else:
        found = gradient_ascent(model, starts, steps=ascent_steps, low=low, high=high)
        found["sweeps"], found["stopped_on_time"] = ascent_steps, False
        method = f"Adam gradient ascent on log p(x) in x, {ascent_steps} steps, clamped to the data's range"
    say(f"search: done in {time.monotonic() - t0:.1f}s")

    # the blank and constant images and every candidate, evaluated together (averaged when stochastic)
    top_samples = lp_samples.topk(min(3, n_samples)).indices
    candidates = torch.cat([refs["blank"], refs["constant"], starts, found["x"], samples[top_samples]])
    names = (["blank"] + [f"constant {v:g}" for v in const_values.tolist()] + [f"start: {s}" for s in start_names]
             + [f"ascent from {s}" for s in start_names] + [f"sample #{i}" for i in top_samples.tolist()])
    lp_cand = averaged_log_prob(model, candidates, eval_repeats, seed)
    k, m = 1 + len(const_values), len(starts)
    lp_blank, lp_constant = lp_cand[0], lp_cand[1:k]
    lp_starts, lp_found = lp_cand[k:k + m], lp_cand[k + m:k + 2 * m]
    best = int(lp_cand.argmax())
    best_bpd = bpd(lp_cand[best]).item()
    sample_bpd, test_bpd = bpd(lp_samples), bpd(lp_test)
    blank_bpd = bpd(lp_blank).item()
    exact = (samples.reshape(n_samples, -1) == candidates[best].reshape(1, -1)).all(1).sum().item()

    def stats(lp):
        return {"nll_nats_mean": -lp.mean().item(), "bits_per_dim_mean": bpd(lp).mean().item(),
                "bits_per_dim_min": bpd(lp).min().item(), "bits_per_dim_max": bpd(lp).max().item(), "n": len(lp)}

    return {
        "model": model.name,
        "density": model.density,
        "log_prob_is_stochastic": stochastic,
        "dim": dim,
        "levels": spec.levels,
        "seed": seed,
        "test": stats(lp_test),
        "samples": {**stats(lp_samples), "note": "mean NLL of the model's own samples: an estimate of its "
                                                 "entropy (plus the bound's gap when log_prob is a bound)"},
        "noise": stats(lp_noise),
        "blank": {"nll_nats": -lp_blank.item(), "bits_per_dim": blank_bpd, "evaluations": eval_repeats},
        "constant": [{"value": v, "nll_nats": -lp, "bits_per_dim": bpd(torch.tensor(lp)).item()}
                     for v, lp in zip(const_values.tolist(), lp_constant.tolist())],
        "fraction_of_test_less_likely_than_blank": (test_bpd > blank_bpd).double().mean().item(),
        "fraction_of_samples_less_likely_than_blank": (sample_bpd > blank_bpd).double().mean().item(),
        "fraction_of_test_less_likely_than_best_constant": (test_bpd > bpd(lp_constant).min()).double().mean().item(),
        "search": {
            "method": method,
            "sweeps": found["sweeps"],
            "stopped_on_time": found["stopped_on_time"],
            "starts": [{"start": s, "start_bits_per_dim": bpd(a).item(), "found_bits_per_dim": bpd(b).item()}
                       for s, a, b in zip(start_names, lp_starts, lp_found)],
            "evaluations_per_candidate": eval_repeats,
        },
        "best": {"found_as": names[best], "nll_nats": -lp_cand[best].item(), "bits_per_dim": best_bpd,
                 "log2_probability_bits": lp_cand[best].item() / math.log(2),
                 "exact_copies_among_samples": exact},
        "fraction_of_samples_within_bits_per_dim_of_best": fraction_within(sample_bpd, best_bpd, tolerances),
        "fraction_of_test_within_bits_per_dim_of_best": fraction_within(test_bpd, best_bpd, tolerances),
        "_bits_per_dim": {"test": test_bpd, "samples": sample_bpd, "noise": bpd(lp_noise),
                          "constant": bpd(lp_constant), "blank": blank_bpd},
        "_images": {"best": candidates[best], "found": found["x"], "found_bpd": bpd(lp_found),
                    "test": test[top_test], "test_bpd": test_bpd[top_test], "samples": samples[:4],
                    "samples_bpd": sample_bpd[:4]},
    }
