"""``deepgen demo likelihood-vs-probability``: high density is not high probability.

Part 1 (exact, no training): in N(0, I_d) the ball around the mode holds the densest points and almost no
probability; samples lie on a thin shell of radius about sqrt(d) (the typical set).  Part 2 (with a trained
run): the NLL of test examples, blank / constant / noise images and the model's own samples, the
highest-density inputs a bounded search finds, and how much of the sampler's mass comes near them.
The maths is in :mod:`deepgen.evaluation.typical_set`; this module runs it, draws it and writes it:
``OUT/likelihood_vs_probability.json``, ``OUT/typical_set_gaussian.png`` and, with a run,
``OUT/typical_set_digits.png``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from deepgen.errors import ConfigError
from deepgen.evaluation.plots import image_grid, save_figure, subplots
from deepgen.evaluation.typical_set import (ball_probability, gaussian_log_density, gaussian_typical_set,
                                            log_ball_probability, model_typical_set, radius_log_density)
from deepgen.io import write_json
from deepgen.models.pretrained import load_model
from deepgen.workflows.runs import run_split

RESULT_FILE = "likelihood_vs_probability.json"
GAUSSIAN_PICTURE = "typical_set_gaussian.png"
MODEL_PICTURE = "typical_set_digits.png"
MAX_DIM = 100_000
HOW_TO_GET_PART_2 = ("pass --run RUN, a run trained on digits, e.g. after `deepgen train --model realnvp "
                     "--data digits --steps 1500 --out RUN`")


def _say(verbose: bool):
    def say(msg: str) -> None:
        if verbose:
            print(f"[likelihood-vs-probability] {msg}", file=sys.stderr, flush=True)
    return say


def check_args(dim, seed) -> None:
    """--dim is a whole number in 1..MAX_DIM and --seed a whole number (ConfigError otherwise)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ConfigError(f"--dim {dim!r}: expected a whole number of dimensions in 1..{MAX_DIM}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"--seed {seed!r}: expected a whole number")


def load_scored_model(run):
    """(model, RunSplit of the test split) of run ``run``; it must have a density and no context."""
    model = load_model(run)
    if model.density == "none":
        raise ConfigError(f"--run {run}: {model.name} has no density (log_prob); the demonstration needs a "
                          "likelihood model (a flow, autoregressive model or VAE)")
    if model.is_conditional:
        raise ConfigError(f"--run {run}: {model.name} is class-conditional (p(x | label)); the demonstration "
                          "needs an unconditional run (train without --context)")
    return model, run_split(run, model.spec, None, None, "test")


# --- pictures ----------------------------------------------------------------------------------------
def plot_gaussian(part: dict, radii_mc: torch.Tensor, path) -> None:
    """(a) the chi_d density of sample radii (closed form and histogram) beside log p(z) against |z|;
    (b) P(|z| <= r) against r, linear and log10."""
    d = part["dim"]
    rad = part["radius"]
    r = torch.linspace(1e-3, math.sqrt(d) + 5, 600, dtype=torch.float64)
    fig, (ax, bx) = subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    ax.hist(radii_mc.numpy(), bins=80, density=True, color="tab:blue", alpha=0.35, label="radii of samples")
    ax.plot(r, radius_log_density(r, d).exp(), color="tab:blue", label=r"$\chi_d$ density of $|z|$")
    ax.axvspan(rad["quantile_05"], rad["quantile_95"], color="tab:blue", alpha=0.08,
               label=f"90% of samples: {rad['quantile_05']:.2f} <= |z| <= {rad['quantile_95']:.2f}")
    ax.set_xlabel("radius |z|")
    ax.set_ylabel("probability density of |z| (per unit radius)", color="tab:blue")
    tx = ax.twinx()
    tx.plot(r, gaussian_log_density(r, d), color="tab:red", label="log p(z) at |z| = r")
    tx.axhline(part["mean_log_density_of_samples_nats"], color="tab:red", ls=":",
               label=f"mean log p of samples = {part['mean_log_density_of_samples_nats']:.1f}")
    tx.plot([0], [part["log_density_at_mode_nats"]], "o", color="tab:red",
            label=f"mode z = 0: log p = {part['log_density_at_mode_nats']:.1f}, no mass")
    tx.set_ylabel("log p(z) (nats)", color="tab:red")
    lines = ax.get_legend_handles_labels()
    more = tx.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    ax.set_title(f"(a) N(0, I_{d}): samples sit on a shell at |z| ~ {rad['mode']:.2f},\n"
                 f"the density (nats) peaks at the mode, e^{d / 2:g} x a sample's", fontsize=10)
    p = ball_probability(r, d)
    bx.plot(r, p, color="k", label="P(|z| <= r)")
    bx.set_xlabel("radius r")
    bx.set_ylabel("probability of the ball |z| <= r")
    lx = bx.twinx()
    lx.plot(r, log_ball_probability(r, d) / math.log(10), color="tab:green", ls="--", label="log10 P(|z| <= r)")
    lx.set_ylabel("log10 probability", color="tab:green")
    sb = part["small_ball"]
    bx.set_title(f"(b) probability of the ball around the mode: r = {sb['radius']:g}: "
                 f"10^{sb['log10_probability']:.1f}\n(its mean log p: {sb['mean_log_density_nats']:.1f} nats)",
                 fontsize=10)
    h1, l1 = bx.get_legend_handles_labels()
    h2, l2 = lx.get_legend_handles_labels()
    bx.legend(h1 + h2, l1 + l2, fontsize=8, loc="center left")
    save_figure(fig, path)


def plot_model(part: dict, path, name: str) -> None:
    """(top) histograms of bits/dim of test examples, samples and noise (log axis) with the blank image,
    the best constant image and the best image found marked; (bottom, images) the best image found,
    the blank image, the ascent results, the most likely test examples and some samples."""
    b = part["_bits_per_dim"]
    imgs = part["_images"]
    is_image = imgs["best"].dim() == 3
    fig = Figure(figsize=(11, 6.2 if is_image else 4.5), layout="constrained")
    gs = fig.add_gridspec(2 if is_image else 1, 10, height_ratios=[3, 1] if is_image else [1])
    ax = fig.add_subplot(gs[0, :])
    groups = (("test", b["test"], "tab:blue"), ("model samples", b["samples"], "tab:orange"),
              ("uniform noise", b["noise"], "tab:gray"))
    allv = torch.cat([g[1] for g in groups]).clamp_min(1e-3)
    lo = min(allv.min().item(), part["best"]["bits_per_dim"]) * 0.9
    hi = allv.max().item() * 1.1
    bins = np.geomspace(lo, hi, 90)
    for label, v, colour in groups:
        ax.hist(v.numpy(), bins=bins, density=True, alpha=0.5, color=colour,
                label=f"{label} (n={len(v)}, mean {v.mean().item():.2f})")
    ax.axvline(b["blank"], color="k", ls="--", label=f"blank image: {b['blank']:.2f}")
    ax.axvline(b["constant"].min().item(), color="k", ls=":",
               label=f"best constant image: {b['constant'].min().item():.2f}")
    ax.axvline(part["best"]["bits_per_dim"], color="tab:red",
               label=f"highest density found ({part['best']['found_as']}): {part['best']['bits_per_dim']:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("negative log-likelihood (bits/dim; log axis)")
    ax.set_ylabel("density of examples (per bit/dim)")
    ax.legend(fontsize=8)
    within = part["fraction_of_samples_within_bits_per_dim_of_best"]
    ax.set_title(f"{name}: NLL in bits/dim ({part['dim']} dims; x {part['dim'] * math.log(2):.1f} = nats); "
                 f"samples within 0.5 bits/dim of the best found: {100 * within.get('0.5', float('nan')):.2f}%",
                 fontsize=10)
    if is_image:
        levels = part["levels"]
        tiles = [("best found", imgs["best"], part["best"]["bits_per_dim"]),
                 ("blank", torch.zeros_like(imgs["best"]), b["blank"])]
        tiles += [("ascent", x, v.item()) for x, v in zip(imgs["found"][:2], imgs["found_bpd"][:2])]
        tiles += [("test", x, v.item()) for x, v in zip(imgs["test"][:3], imgs["test_bpd"][:3])]
        tiles += [("sample", x, v.item()) for x, v in zip(imgs["samples"][:3], imgs["samples_bpd"][:3])]
        for i, (label, x, v) in enumerate(tiles[:10]):
            tile = fig.add_subplot(gs[1, i])
            arr = image_grid(x.unsqueeze(0), levels, ncol=1, pad=0)
            tile.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            tile.set_title(f"{label}\n{v:.2f} b/d", fontsize=8)
            tile.axis("off")
    save_figure(fig, path)


# --- the demonstration -------------------------------------------------------------------------------
def _public(part: dict) -> dict:
    return {k: v for k, v in part.items() if not k.startswith("_")}


def likelihood_vs_probability(out, run=None, dim: int = 100, seed: int = 0, verbose: bool = True, *,
                              gaussian_samples: int = 100_000, model_samples: int = 2000, sweeps: int = 3,
                              search_time_s: float = 300.0) -> dict:
    """Run the demonstration, write ``out``/likelihood_vs_probability.json and the pictures, print a summary
    (on stderr, when ``verbose``) and return the figures written (plus ``files``).

    Part 1 on N(0, I_``dim``) with ``gaussian_samples`` Monte Carlo draws; part 2 on run ``run`` (skipped
    when None) with ``model_samples`` samples and at most ``sweeps`` sweeps / ``search_time_s`` seconds of
    search for the highest-density inputs."""
    check_args(dim, seed)
    say = _say(verbose)
    loaded = load_scored_model(run) if run is not None else None  # refuse a bad run before any work
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a directory for the results")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    gauss = gaussian_typical_set(dim, n_samples=gaussian_samples, seed=seed)
    radii_mc = gauss.pop("_radii_mc")
    plot_gaussian(gauss, radii_mc, out / GAUSSIAN_PICTURE)
    say(f"part 1 (N(0, I_{dim}), {gaussian_samples} samples): {time.monotonic() - t0:.1f}s")
    files = [str(out / GAUSSIAN_PICTURE)]
    result = {"gaussian": gauss, "model": None, "run": None if run is None else str(run)}
    if loaded is None:
        result["model_skipped"] = HOW_TO_GET_PART_2
    else:
        model, test = loaded
        t0 = time.monotonic()
        part = model_typical_set(model, test.splits.train, test.x, seed=seed, n_samples=model_samples,
                                 sweeps=sweeps, search_time_s=search_time_s, log=say)
        plot_model(part, out / MODEL_PICTURE, f"{model.name} on {test.data_name}")
        say(f"part 2 ({model.name} on {test.data_name}): {time.monotonic() - t0:.1f}s")
        part = _public(part)
        part["data"] = test.data_name
        result["model"] = part
        files.append(str(out / MODEL_PICTURE))
    result["units"] = {
        "nats": "natural-log units of log-density / log-likelihood (per example)",
        "bits_per_dim": "NLL / (D ln 2): bits per dimension (per pixel)",
        "probability": "probability mass, a number in [0, 1]",
        "log2_probability_bits": "log2 of a discrete probability (a lower bound when log_prob is a bound)",
    }
    write_json(out / RESULT_FILE, result)
    files.insert(0, str(out / RESULT_FILE))
    result["files"] = files
    if verbose:
        print(summary(result), file=sys.stderr, flush=True)
    return result


def summary(result: dict) -> str:
    """A few lines a person reads: the Gaussian figures, then the model's."""
    g = result["gaussian"]
    d, sb, rad = g["dim"], g["small_ball"], g["radius"]
    ball = {round(b["radius"], 6): b for b in g["balls"]}
    lines = [
        f"N(0, I_{d}):",
        f"  log p at the mode z=0: {g['log_density_at_mode_nats']:.2f} nats; mean log p of samples: "
        f"{g['mean_log_density_of_samples_nats']:.2f} nats (Monte Carlo {g['mean_log_density_of_samples_nats_mc']:.2f}"
        f" +- {g['mean_log_density_of_samples_nats_mc_sem']:.2f}) = -d/2 log(2 pi e): the mode is e^{d / 2:g} times "
        "denser than a typical sample",
        f"  ball |z| <= {sb['radius']:g} around the mode: probability {sb['probability']:.3g} "
        f"(10^{sb['log10_probability']:.1f}), mean log p inside {sb['mean_log_density_nats']:.2f} nats, "
        f"samples inside {sb['fraction_of_samples_inside']:.3g}",
        f"  samples' radius: mode sqrt(d-1) = {rad['mode']:.3f}, mean {rad['mean']:.3f}, sd {rad['std']:.3f} "
        f"(1/sqrt(2) = 0.707); 90% within [{rad['quantile_05']:.2f}, {rad['quantile_95']:.2f}]",
        "  P(|z| <= r): " + ", ".join(f"r={r:g}: {ball[r]['probability']:.3g}" for r in (1.0, 2.0, 5.0, 8.0)
                                      if r in ball)
        + f"; the half-mass ball has radius {rad['median']:.2f}",
    ]
    m = result["model"]
    if m is None:
        lines.append(f"trained model: skipped; {result.get('model_skipped', HOW_TO_GET_PART_2)}")
        return "\n".join(lines)
    blank, best = m["blank"], m["best"]
    verdict = ("MORE likely than" if m["fraction_of_test_less_likely_than_blank"] > 0.5 else
               "more likely than some of" if m["fraction_of_test_less_likely_than_blank"] > 0 else
               "less likely than every one of")
    within = m["fraction_of_samples_within_bits_per_dim_of_best"]
    best_constant = min(m["constant"], key=lambda c: c["bits_per_dim"])
    lines += [
        f"{m['model']} on {m['data']} ({m['dim']} dims, NLL in bits/dim; nats per example in brackets):",
        f"  test: {m['test']['bits_per_dim_mean']:.3f} ({m['test']['nll_nats_mean']:.1f}); model samples: "
        f"{m['samples']['bits_per_dim_mean']:.3f} ({m['samples']['nll_nats_mean']:.1f}); uniform noise: "
        f"{m['noise']['bits_per_dim_mean']:.3f} ({m['noise']['nll_nats_mean']:.1f})",
        f"  blank (all-zero) input: {blank['bits_per_dim']:.3f} ({blank['nll_nats']:.1f}): {verdict} the test "
        f"examples ({100 * m['fraction_of_test_less_likely_than_blank']:.1f}% of them are less likely); best "
        f"constant input (value {best_constant['value']:g}): {best_constant['bits_per_dim']:.3f}, more likely than "
        f"{100 * m['fraction_of_test_less_likely_than_best_constant']:.1f}% of the test examples",
        f"  highest density found: {best['bits_per_dim']:.3f} ({best['nll_nats']:.1f}) by {best['found_as']}, "
        f"{m['dim'] * (m['samples']['bits_per_dim_mean'] - best['bits_per_dim']):.1f} bits above a typical sample; "
        f"exact copies among {m['samples']['n']} samples: {best['exact_copies_among_samples']}",
        "  samples within t bits/dim of it: " + ", ".join(f"t={t}: {100 * f:.2f}%" for t, f in within.items()),
    ]
    return "\n".join(lines)
