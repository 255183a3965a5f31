"""End-of-training report: test scores, samples and plots written into the run directory."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from deepgen.evaluation.plots import (
    MAX_PAIR_FEATURES, plot_2d, plot_image_grid, plot_image_rows, plot_pairs, plot_training_curves,
    plot_truncation_curve,
)
from deepgen.evaluation.latent_plots import latent_plane, plot_latent_map
from deepgen.evaluation.scoring import score_model
from deepgen.evaluation.puppet import plot_manipulations
from deepgen.evaluation.translation import translation_grid
from deepgen.evaluation.truncation import truncation_curve
from deepgen.workflows.code_pictures import write_code_pictures
from deepgen.evaluation.variational import plot_target_fit, score_target
from deepgen.io import write_json

SCORES_FILE = "scores.json"
# Files of a run directory the end-of-training line names (in this order) when they exist;
# then the pictures written by the report, and tensorboard/.
RUN_FILES = ("config.yaml", "model.safetensors", "training_state.safetensors", "metrics.csv", SCORES_FILE,
             "test_scores.csv")


def draw_samples(model, n: int, temperature: float = 1.0, seed: int = 0, label_context=None,
                 labels: torch.Tensor | None = None,
                 truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels): ``n`` seeded samples; a conditional model samples ``labels`` (default:
    labels drawn from the training frequencies under the same seed); ``truncation`` = t restricts the
    latent draws to |z_i| <= t (models with the "truncation" capability).  The caller's RNG is untouched."""
    kwargs = {} if truncation is None else {"truncation": truncation}
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        context = None
        if model.is_conditional:
            if labels is None:
                labels = label_context.sample_labels(n, torch.Generator().manual_seed(seed))
            context = label_context.one_hot(labels).to(model.device)
        return model.sample(n, context=context, temperature=temperature, **kwargs), labels


def samples_picture(spec) -> str | None:
    """Which picture shows samples of data ``spec``: "density" (2-D vectors: samples over the
    model's density map), "images" (an image grid), "pairs" (a pair plot of data and samples:
    1-D and 3..16-D vectors), or None (vectors of more than 16 features: no picture)."""
    if spec.is_image:
        return "images"
    if spec.shape == (2,):
        return "density"
    return "pairs" if spec.dim <= MAX_PAIR_FEATURES else None


def plot_samples(model, data, samples, path, title: str, labels=None, label_context=None,
                 ncol: int | None = None) -> None:
    """Draw ``samples`` of ``model`` as :func:`samples_picture` says, beside ``data`` (the training
    examples; None shows samples only).  ``labels`` colour 2-D samples by class."""
    spec = model.spec
    kind = samples_picture(spec)
    if kind == "density":
        plot_2d(model, data, samples, path, title, labels=labels,
                label_context=label_context)
    elif kind == "images":
        plot_image_grid(samples, path, spec.levels, title, ncol=ncol)
    elif kind == "pairs":
        plot_pairs(data, samples, path, title, names=spec.feature_names)
    else:
        raise ValueError(f"no picture for {spec.dim}-dim vectors")


def write_samples_plot(model, splits, path, n: int = 2000, temperature: float = 1.0, seed: int = 0,
                       title_suffix: str = "", label_context=None) -> Path | None:
    """Draw seeded samples and picture them (see :func:`samples_picture`): a scatter over the
    density map (2-D), a pair plot against the training data (1-D, 3..16-D) or an image grid.
    Returns the path written, or None when the data have no picture (more than 16 features).

    A class-conditional model on images gets one row per class (10 samples each).
    """
    spec = splits.spec
    if samples_picture(spec) is None:
        return None
    labels = None
    if model.is_conditional and spec.is_image:
        per = 10
        labels = torch.arange(label_context.num_classes).repeat_interleave(per)
        n = len(labels)
    elif spec.is_image:
        n = min(n, 100)
    samples, labels = draw_samples(model, n, temperature, seed, label_context, labels)
    title = f"{model.name} on {spec.name}, T={temperature:g}{title_suffix}"
    if model.is_conditional and spec.is_image:
        title += f"; rows: classes {', '.join(label_context.classes)}"
    plot_samples(model, splits.train, samples, path, title, labels=labels, label_context=label_context,
                 ncol=10 if model.is_conditional else None)
    return Path(path)


@torch.no_grad()
def write_representation_plots(model, splits, out, seed: int = 0, label_context=None) -> list[str]:
    """Pictures of what a model that encodes learned, on images: test images over their
    reconstructions, latent interpolations, latent traversals (every code coordinate swept, the
    others fixed), a latent map when the code is 2-D, and the canvas over the steps of a model
    that draws in steps (DRAW).  Returns the names of the files written."""
    spec = splits.spec
    if not spec.is_image:
        return []
    written = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if model.can("canvas"):
            canvases = model.canvases(10)  # (T, n, *shape)
            rows = [(f"step {t + 1}", canvases[t]) for t in range(len(canvases))]
            plot_image_rows(rows, out / "canvas.png", spec.levels, ncol=10,
                            title=f"{model.name}: the canvas after each step, 10 samples")
            written.append("canvas.png")
        if not model.can("encode"):
            return written
        x = splits.test[:16]
        ctx = label_context.one_hot(splits.split_labels("test")) if model.is_conditional else None
        c16 = None if ctx is None else ctx[:16]
        plot_image_rows([("test data", x), ("reconstructions", model.reconstruct(x, c16))], out / "reconstructions.png",
                        spec.levels, ncol=16, title=f"{model.name}: reconstructions")
        written.append("reconstructions.png")
        if ctx is not None:  # a conditional path needs one label for both ends
            return written
        paths = model.interpolate(splits.test[:6], splits.test[6:12], steps=10)  # (steps, pairs, ...)
        rows = [(f"test {i} -> test {i + 6}", paths[:, i]) for i in range(paths.shape[1])]
        plot_image_rows(rows, out / "interpolations.png", spec.levels, ncol=10,
                        title=f"{model.name}: latent interpolations")
        written.append("interpolations.png")
        if model.can("traverse"):
            values = torch.linspace(-3, 3, 9)
            sweeps = model.traverse(splits.test[0], values)  # (latent, values, *shape)
            rows = [(f"z_{j + 1}", sweeps[j]) for j in range(len(sweeps))]
            plot_image_rows(rows, out / "traversals.png", spec.levels, ncol=len(values),
                            title=f"{model.name}: traversals\n(test image 0, z_j: -3 to +3 sd)")
            written.append("traversals.png")
            if model.latent == 2:
                written.append(write_latent_map(model, splits, out))
    return written


def write_latent_map(model, splits, out, steps: int = 15) -> str:
    """latent_map.png for a model with a 2-D code: the test codes by label and the decoded plane."""
    codes = model.encode(splits.test)
    loc, scale = model.code_scale()
    plane = latent_plane(loc.cpu(), scale.cpu(), steps)
    decoded = model.decode(plane.to(model.device), mean=True)
    extent = (float(loc[0] - 3 * scale[0]), float(loc[0] + 3 * scale[0]),
              float(loc[1] - 3 * scale[1]), float(loc[1] + 3 * scale[1]))
    labels = splits.split_labels("test") if splits.has_labels else None
    plot_latent_map(codes, labels, splits.classes, decoded, extent, Path(out) / "latent_map.png",
                    splits.spec.levels, title=f"{model.name} on {splits.spec.name}: 2-D latent space", steps=steps)
    return "latent_map.png"


def write_run_report(model, splits, out, cfg, table, steps_per_s: float, world_size: int = 1,
                     verbose: bool = True, label_context=None, extra_scores: dict | None = None) -> dict:
    """Score the trained model on the test split (scores.json, test_scores.csv), write its
    pictures (samples, data, training curves, reconstructions) and, if ``verbose``, print the
    test figure and the files of the run directory that exist.  ``extra_scores`` (e.g. which step
    ``keep: best`` selected) join scores.json.  Returns the scores."""
    scores = score_model(model, splits, "test", seed=cfg.seed, batch_size=cfg.eval_batch_size,
                         csv_path=out / "test_scores.csv", label_context=label_context)
    scores.update(extra_scores or {})
    curve = None
    if model.can("truncation"):
        ctx = label_context.one_hot(splits.split_labels("test")) if model.is_conditional else None
        curve = truncation_curve(model, splits, "test", seed=cfg.seed, context=ctx)
        if curve is not None:
            scores["truncation_curve"] = curve
    scores["steps"] = max(table.rows) if table.rows else cfg.steps
    scores["train_steps_per_s"] = steps_per_s
    scores["world_size"] = world_size
    scores["parameters"] = model.num_parameters()
    write_json(out / SCORES_FILE, scores)
    pictures = []
    if model.can("translate"):
        if translation_grid(model, splits, out / TRANSLATIONS_FILE, seed=cfg.seed) is not None:
            pictures.append(TRANSLATIONS_FILE)
    elif write_samples_plot(model, splits, out / "samples.png", seed=cfg.seed, label_context=label_context):
        pictures.append("samples.png")
    if model.can("manipulate") and splits.spec.is_image:
        plot_manipulations(model, splits.split("val")[:6], out / MANIPULATIONS_FILE)
        pictures.append(MANIPULATIONS_FILE)
    if splits.spec.is_image:
        plot_image_grid(splits.test[:100], out / "data.png", splits.spec.levels, f"{splits.spec.name} test data")
        pictures.append("data.png")
    curves_title = f"{model.name} on {splits.spec.name}: training curves ({scores['steps']} steps)"
    if plot_training_curves(table, out / "training_curves.png", curves_title) is not None:
        pictures.append("training_curves.png")
    if curve is not None:
        plot_truncation_curve(curve["points"], out / "truncation_curve.png",
                              f"{model.name} on {splits.spec.name}: the truncation trick ({curve['n_samples']} "
                              "samples per threshold, test split)")
        pictures.append("truncation_curve.png")
    pictures += write_representation_plots(model, splits, out, seed=cfg.seed, label_context=label_context)
    pictures += write_code_pictures(model, splits, out, seed=cfg.seed, label_context=label_context)
    if verbose:
        if "puppet" in scores:
            mean = scores["puppet"].get("mean", {}) if isinstance(scores["puppet"], dict) else {}
            figure = "attribute manipulation: " + ", ".join(
                f"{k} {v:.4g}" for k, v in (mean.get("model") or {}).items() if isinstance(v, float))
        elif "translation" in scores:
            rows = scores["translation"]["rows"]
            keys = [k for k in ("mae", "label_preservation", "frechet_distance", "map_error", "component_accuracy",
                                "cycle_error") if isinstance(rows["model"].get(k), float)]
            figure = "translations: " + ", ".join(
                f"{k} {rows['model'][k]:.4g}" + (f" (identity {rows['identity'][k]:.4g})"
                                                   if isinstance(rows["identity"].get(k), float) else "")
                for k in keys)
        elif "nll_nats" in scores:
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
        if scores.get("keep") == "best":
            figure += (f", weights of step {scores['selected_step']} (lowest validation NLL "
                       f"{scores['selected_val_nll_nats']:.4f}; last step {scores['last_step_val_nll_nats']:.4f})")
        print(f"{figure}, n={scores.get('n', '-')}, {steps_per_s:.1f} steps/s", file=sys.stderr)
        if scores.get("time_to_first_step_s") is not None:
            print(f"first step after {scores['time_to_first_step_s']:.2f} s; run machinery (rows, checkpoints, "
                  f"validation, pictures) {100 * (scores.get('machinery_share') or 0):.1f} % of training time",
                  file=sys.stderr)
        files = [f for f in RUN_FILES if (out / f).exists()] + pictures
        files += ["tensorboard/"] if (out / "tensorboard").is_dir() else []
        print(f"wrote {out}/: {' '.join(files)}", file=sys.stderr)
    return scores


TARGET_FIT_FILE = "target_fit.png"
TRANSLATIONS_FILE = "translations.png"
MANIPULATIONS_FILE = "manipulations.png"  # puppet: validation digits with the attribute swept  # a translator's inputs, translations, truths (and cycles)


def write_target_fit(model, target, out, seed: int = 0, title_suffix: str = "") -> Path:
    """target_fit.png: the target density, the fitted q and samples of q (see plot_target_fit)."""
    path = Path(out) / TARGET_FIT_FILE
    plot_target_fit(model, target, path, title=f"{model.name} fitted to {target.name}{title_suffix}", seed=seed)
    return path


def write_target_report(model, target, out, cfg, table, steps_per_s: float, world_size: int = 1,
                        verbose: bool = True) -> dict:
    """The report of a variational-inference run: scores.json (ELBO, log Z by importance sampling
    and by quadrature, KL(q || p), ESS; :func:`deepgen.evaluation.variational.score_target`),
    target_fit.png and training_curves.png; with ``verbose`` the figures and files on stderr."""
    out = Path(out)
    scores = score_target(model, target, seed=cfg.seed)
    scores["steps"] = max(table.rows) if table.rows else cfg.steps
    scores["train_steps_per_s"] = steps_per_s
    scores["world_size"] = world_size
    scores["parameters"] = model.num_parameters()
    write_json(out / SCORES_FILE, scores)
    write_target_fit(model, target, out, seed=cfg.seed)
    pictures = [TARGET_FIT_FILE]
    title = f"{model.name} fitted to {target.name}: training curves ({scores['steps']} steps)"
    if plot_training_curves(table, out / "training_curves.png", title) is not None:
        pictures.append("training_curves.png")
    if verbose:
        print(f"ELBO {scores['elbo_nats']:.4f} nats, log Z {scores['log_z_true']:.4f} (quadrature), "
              f"{scores['log_z_is']:.4f} (importance sampling, n={scores['n_samples']}); KL(q||p) = log Z - ELBO = "
              f"{scores['kl_nats']:.4f} nats, {steps_per_s:.1f} steps/s", file=sys.stderr)
        files = [f for f in RUN_FILES if (out / f).exists()] + pictures
        files += ["tensorboard/"] if (out / "tensorboard").is_dir() else []
        print(f"wrote {out}/: {' '.join(files)}", file=sys.stderr)
    return scores
