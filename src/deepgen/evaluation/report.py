"""End-of-training report: test scores, samples and plots written into the run directory."""

from __future__ import annotations

import sys

import torch

from deepgen.evaluation.plots import plot_2d, plot_image_grid, plot_image_rows, plot_training_curves
from deepgen.evaluation.scoring import score_model
from deepgen.io import write_json


def write_samples_plot(model, splits, path, n: int = 2000, temperature: float = 1.0, seed: int = 0,
                       title_suffix: str = ""):
    """Draw ``n`` samples under ``seed``; a scatter over the density map (2-D) or an image grid."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        samples = model.sample(n if len(splits.spec.shape) == 1 else min(n, 100), temperature=temperature)
    title = f"{model.name} on {splits.spec.name}, T={temperature:g}{title_suffix}"
    if splits.spec.shape == (2,):
        plot_2d(model, splits.train, samples, path, title)
    elif splits.spec.is_image:
        plot_image_grid(samples, path, splits.spec.levels, title)
    return samples


@torch.no_grad()
def write_representation_plots(model, splits, out, seed: int = 0) -> None:
    """For models with an encoder: test images over their reconstructions, and latent interpolations."""
    spec = splits.spec
    if not spec.is_image or not hasattr(model, "reconstruct"):
        return
    x = splits.test[:16]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        plot_image_rows([("test data", x), ("reconstructions", model.reconstruct(x))], out / "reconstructions.png",
                        spec.levels, ncol=16, title=f"{model.name}: reconstructions")
        if hasattr(model, "interpolate"):
            paths = model.interpolate(splits.test[:6], splits.test[6:12], steps=10)  # (steps, pairs, ...)
            rows = [(f"test {i} -> test {i + 6}", paths[:, i]) for i in range(paths.shape[1])]
            plot_image_rows(rows, out / "interpolations.png", spec.levels, ncol=10,
                            title=f"{model.name}: latent interpolations")


def write_run_report(model, splits, out, cfg, table, steps_per_s: float, world_size: int = 1,
                     verbose: bool = True) -> dict:
    scores = score_model(model, splits, "test", seed=cfg.seed, batch_size=cfg.eval_batch_size,
                         csv_path=out / "test_scores.csv")
    scores["steps"] = max(table.rows) if table.rows else cfg.steps
    scores["train_steps_per_s"] = steps_per_s
    scores["world_size"] = world_size
    scores["parameters"] = model.num_parameters()
    write_json(out / "scores.json", scores)
    write_samples_plot(model, splits, out / "samples.png", seed=cfg.seed)
    if splits.spec.is_image:
        plot_image_grid(splits.test[:100], out / "data.png", splits.spec.levels, f"{splits.spec.name} test data")
    plot_training_curves(table, out / "training_curves.png", f"{model.name} on {splits.spec.name}")
    write_representation_plots(model, splits, out, seed=cfg.seed)
    if verbose:
        if "nll_nats" in scores:
            figure = f"test NLL {scores['nll_nats']:.4f} nats/example ({scores['bits_per_dim']:.4f} bits/dim)"
        else:
            figure = "no density (implicit model): " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in {**scores, **scores.get("modes", {})}.items()
                if k in ("energy_distance", "modes_covered", "high_quality_pct"))
        print(f"{figure}, n={scores.get('n', '-')}, {steps_per_s:.1f} steps/s", file=sys.stderr)
        print(f"wrote {out}/: config.yaml model.safetensors metrics.csv scores.json samples.png "
              f"training_curves.png tensorboard/", file=sys.stderr)
    return scores
