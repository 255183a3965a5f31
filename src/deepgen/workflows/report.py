"""End-of-training report: test scores, samples and plots written into the run directory."""

from __future__ import annotations

import sys

import torch

from deepgen.evaluation.plots import plot_2d, plot_image_grid, plot_image_rows, plot_training_curves
from deepgen.evaluation.scoring import score_model
from deepgen.io import write_json

SCORES_FILE = "scores.json"


def draw_samples(model, n: int, temperature: float = 1.0, seed: int = 0, label_context=None,
                 labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels): ``n`` seeded samples; a conditional model samples ``labels`` (default:
    labels drawn from the training frequencies under the same seed).  The caller's RNG is untouched."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        context = None
        if model.is_conditional:
            if labels is None:
                labels = label_context.sample_labels(n, torch.Generator().manual_seed(seed))
            context = label_context.one_hot(labels).to(model.device)
        return model.sample(n, context=context, temperature=temperature), labels


def write_samples_plot(model, splits, path, n: int = 2000, temperature: float = 1.0, seed: int = 0,
                       title_suffix: str = "", label_context=None):
    """Draw seeded samples; a scatter over the density map (2-D) or an image grid.

    A class-conditional model on images gets one row per class (10 samples each).
    """
    spec = splits.spec
    labels = None
    if model.is_conditional and spec.is_image:
        per = 10
        labels = torch.arange(label_context.num_classes).repeat_interleave(per)
        n = len(labels)
    elif not len(spec.shape) == 1:
        n = min(n, 100)
    samples, labels = draw_samples(model, n, temperature, seed, label_context, labels)
    title = f"{model.name} on {spec.name}, T={temperature:g}{title_suffix}"
    if model.is_conditional and spec.is_image:
        title += f"; rows: classes {', '.join(label_context.classes)}"
    if spec.shape == (2,):
        plot_2d(model, splits.train, samples, path, title, labels=labels, label_context=label_context)
    elif spec.is_image:
        plot_image_grid(samples, path, spec.levels, title, ncol=10 if model.is_conditional else None)
    return samples


@torch.no_grad()
def write_representation_plots(model, splits, out, seed: int = 0, label_context=None) -> None:
    """For models that encode: test images over their reconstructions, and latent interpolations."""
    spec = splits.spec
    if not spec.is_image or not model.can("encode"):
        return
    x = splits.test[:16]
    ctx = label_context.one_hot(splits.split_labels("test")) if model.is_conditional else None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        c16 = None if ctx is None else ctx[:16]
        plot_image_rows([("test data", x), ("reconstructions", model.reconstruct(x, c16))], out / "reconstructions.png",
                        spec.levels, ncol=16, title=f"{model.name}: reconstructions")
        if ctx is None:  # a conditional path needs one label for both ends
            paths = model.interpolate(splits.test[:6], splits.test[6:12], steps=10)  # (steps, pairs, ...)
            rows = [(f"test {i} -> test {i + 6}", paths[:, i]) for i in range(paths.shape[1])]
            plot_image_rows(rows, out / "interpolations.png", spec.levels, ncol=10,
                            title=f"{model.name}: latent interpolations")


def write_run_report(model, splits, out, cfg, table, steps_per_s: float, world_size: int = 1,
                     verbose: bool = True, label_context=None) -> dict:
    scores = score_model(model, splits, "test", seed=cfg.seed, batch_size=cfg.eval_batch_size,
                         csv_path=out / "test_scores.csv", label_context=label_context)
    scores["steps"] = max(table.rows) if table.rows else cfg.steps
    scores["train_steps_per_s"] = steps_per_s
    scores["world_size"] = world_size
    scores["parameters"] = model.num_parameters()
    write_json(out / SCORES_FILE, scores)
    write_samples_plot(model, splits, out / "samples.png", seed=cfg.seed, label_context=label_context)
    if splits.spec.is_image:
        plot_image_grid(splits.test[:100], out / "data.png", splits.spec.levels, f"{splits.spec.name} test data")
    plot_training_curves(table, out / "training_curves.png", f"{model.name} on {splits.spec.name}")
    write_representation_plots(model, splits, out, seed=cfg.seed, label_context=label_context)
    if verbose:
        if "nll_nats" in scores:
            figure = f"test NLL {scores['nll_nats']:.4f} nats/example ({scores['bits_per_dim']:.4f} bits/dim)"
            if "classify_accuracy" in scores:
                figure = (f"test NLL given the label {scores['nll_nats']:.4f} nats/example, marginal NLL "
                          f"{scores['marginal_nll_nats']:.4f} nats/example ({scores['marginal_bits_per_dim']:.4f} "
                          f"bits/dim), classify accuracy {scores['classify_accuracy']:.4f}")
        else:
            figure = "no density (implicit model): " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in {**scores, **scores.get("modes", {})}.items()
                if k in ("energy_distance", "modes_covered", "high_quality_pct"))
        print(f"{figure}, n={scores.get('n', '-')}, {steps_per_s:.1f} steps/s", file=sys.stderr)
        print(f"wrote {out}/: config.yaml model.safetensors metrics.csv scores.json samples.png "
              f"training_curves.png tensorboard/", file=sys.stderr)
    return scores
