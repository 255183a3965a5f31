"""``compare``: train several models on the same split and budget, one table, one picture.

The table has, per model: parameters, test NLL in nats per example and bits/dim
with what kind of figure it is (exact; a bound; an importance-weighted estimate
with k samples; none for implicit models), training wall time and steps/s and
sampling samples/s, and where a feature space applies the sample-quality figures
(Fréchet distance, precision, recall, density, coverage, class coverage of test-split-sized
sample sets in a classifier's feature space; :mod:`deepgen.evaluation.sample_quality`), so
every family is compared on its samples as well as its likelihood.  It is written as Markdown (headed by the budget: steps,
batch size, seed) and CSV next to a side-by-side sample figure whose panels carry
each model's test NLL.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import torch

from deepgen.data import load_data
from deepgen.data.energy import load_target
from deepgen.evaluation.baselines import describe_independent, independent_nll
from deepgen.evaluation.plots import image_grid, plot_bounds, save_figure, subplots
from deepgen.evaluation.sample_quality import METRIC_KEYS, sample_quality_scores
from deepgen.evaluation.scoring import prior_contexts, score_model
from deepgen.evaluation.translation import sources
from deepgen.errors import ConfigError
from deepgen.io import parse_value, write_text
from deepgen.models.pretrained import load_model, run_label_context
from deepgen.models.registry import get_model_class
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train

# Variational inference on an unnormalised target (deepgen.data.energy): bound and gap columns instead of NLLs.
TARGET_COLUMNS = ["model", "family", "parameters", "elbo_nats", "log_z_is", "log_z_true", "kl_nats", "forward_kl_nats",
                  "ess_fraction", "train_time_s", "train_steps_per_s", "sample_per_s", "steps", "batch_size"]
# sample quality (deepgen.evaluation.sample_quality): frechet_distance, precision, recall, density, coverage,
# class_coverage, taken from a score's "sample_quality" record
QUALITY_COLUMNS = list(METRIC_KEYS)
QUALITY_HEADERS = {"frechet_distance": "FD", "precision": "precision", "recall": "recall", "density": "density",
                   "coverage": "coverage", "class_coverage": "class coverage"}
COLUMNS = ["model", "family", "parameters", "test_nll_nats", "test_bits_per_dim", "figure", "test_elbo_nats", "mig",
           "modes_covered", "high_quality_pct", *QUALITY_COLUMNS, "train_time_s", "train_steps_per_s", "sample_per_s",
           "steps", "batch_size"]


@torch.no_grad()
def sampling_rate(model, n: int, seed: int = 0, context: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """(samples per second, the samples) of one batched call ``model.sample(n, context)`` in eval mode, timed
    after a warm-up call of min(n, 8) samples, under ``seed`` (the global RNG restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model.sample(min(n, 8), None if context is None else context[:min(n, 8)])
            t0 = time.perf_counter()
            samples = model.sample(n, context)
            return n / (time.perf_counter() - t0), samples
    finally:
        model.train(was_training)


def sampling_context(model, run_dir, splits, n: int, seed: int = 0) -> torch.Tensor | None:
    """The context of n samples of a conditional model: labels drawn from the training frequencies (a run
    trained with ``context: label``), or the test split's domain-A examples, cycled (a translator); None for
    an unconditional model."""
    if not model.is_conditional:
        return None
    label_context = run_label_context(run_dir)
    if label_context is not None:
        return prior_contexts(label_context, n, seed)
    if model.can("translate") and splits is not None and splits.translation is not None:
        source = sources(splits, "test")
        return source[torch.arange(n) % len(source)]
    raise ConfigError(f"{model.name}: a conditional model whose run has no label context; compare cannot draw "
                      "its samples")


def describe_figure(scores: dict) -> str:
    """What kind of figure a run's test NLL is: exact, a bound, an estimate (with k), or none."""
    if scores["density"] == "none":
        return "none (implicit model)"
    if scores["density"] == "estimate":
        return "estimate (unbiased, stochastic)"
    if scores.get("iw_samples"):
        return f"estimate (IWAE, k={scores['iw_samples']})"
    if scores["density"] == "bound":
        return "bound"
    return "exact" + (" (dequantized bound)" if "dequantization" in scores else "")


def parse_model_entry(entry: str) -> tuple[str, dict, str]:
    """``NAME`` or ``NAME:key=value:key=value`` (a model with hyper-parameters, e.g. ``vae:beta=4``) ->
    (model name, params, row label).  The label is the entry itself; its run directory is the label with
    ``:`` and ``=`` replaced by ``-``.  Values are read as on the command line (numbers, true/false)."""
    name, *pairs = [p.strip() for p in entry.split(":")]
    get_model_class(name)  # an unknown name fails here, with suggestions
    params = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--models entry {entry!r}: expected NAME:key=value[:key=value], e.g. vae:beta=4")
        params[key.strip()] = parse_value(value.strip())
    return name, params, entry


def run_dir_name(label: str) -> str:
    """The run directory of a compare row: its label with ``:`` and ``=`` replaced by ``-``."""
    return label.replace(":", "-").replace("=", "-").replace("/", "-")


def compare(data: str, models: list[str], steps: int, out, seed: int = 0, iw_samples: int = 1000,
            overwrite: bool = False, progress: bool = False, extra: dict | None = None,
            features: str | None = None) -> list[dict]:
    """Train every model in ``models`` on ``data`` for ``steps`` steps into ``out/<model>``; write
    compare.md, compare.csv and samples.png into ``out`` and return the table's rows.  An entry may
    set hyper-parameters, ``vae:beta=4`` (see :func:`parse_model_entry`).

    ``data`` may be an unnormalised target (``energy-u1`` ...): the models are then fitted by
    variational inference and the table has ELBO, log Z and KL(q || p) instead of test NLLs.
    ``features``: the feature net of the sample-quality columns (default: deepgen's digits classifier
    on 1x8x8 data with 17 or 2 levels, else no such columns)."""
    out = Path(out)
    target = load_target(data)
    splits = load_data(data) if target is None else None
    spec = splits.spec if target is None else target.spec
    rows, pictures = [], []
    for entry in models:
        name, params, label = parse_model_entry(entry)
        fields = dict(extra or {})
        if fields.get("keep") == "best" and get_model_class(name).density == "none":
            fields.pop("keep")  # an implicit model has no validation NLL to select by: it keeps its last weights
        if params:
            fields["model_params"] = {**fields.get("model_params", {}), **params}
        cfg = TrainConfig.from_dict({"model": name, "data": data, "steps": steps, "seed": seed,
                                     "progress": progress, **fields}, source=f"compare ({label})")
        run_dir = out / run_dir_name(label)
        trained = train(cfg, run_dir, overwrite=overwrite, verbose=progress)
        model = load_model(run_dir)
        scores = trained
        if target is not None:
            rate, samples = sampling_rate(model, 1000, seed, sampling_context(model, run_dir, None, 1000, seed))
            steps_per_s = trained.get("train_steps_per_s")
            rows.append({"model": label, "family": model.family, "parameters": model.num_parameters(),
                         **{k: trained[k] for k in TARGET_COLUMNS[3:9]}, "train_steps_per_s": steps_per_s,
                         "train_time_s": steps / steps_per_s if steps_per_s else None, "sample_per_s": rate,
                         "sample_n": 1000,
                         "steps": steps, "batch_size": cfg.batch_size})
            pictures.append((f"{label}\nKL(q||p) {trained['kl_nats']:.3f} nats", samples))
            continue
        if model.can("importance_weighted"):  # rescored with the table's k (a VQ-VAE's bound takes no k)
            scores = score_model(model, splits, "test", seed=seed, k=iw_samples, features=features)
            scores["iw_samples"] = iw_samples
        elif features is not None and not model.is_conditional:
            scores = {**scores, **sample_quality_scores(model, splits, "test", seed=seed, features=features)}
        quality = scores.get("sample_quality") or {}
        n = 1000 if len(splits.spec.shape) == 1 else 100
        rate, samples = sampling_rate(model, n, seed, sampling_context(model, run_dir, splits, n, seed))
        steps_per_s = trained.get("train_steps_per_s")
        rows.append({
            "model": label, "family": model.family, "parameters": model.num_parameters(),
            "test_nll_nats": scores.get("nll_nats"), "test_bits_per_dim": scores.get("bits_per_dim"),
            "figure": describe_figure(scores), "test_elbo_nats": scores.get("elbo_nats"),
            "mig": scores.get("disentanglement", {}).get("mig"), **{k: quality.get(k) for k in QUALITY_COLUMNS},
            **{k: scores.get("modes", {}).get(k) for k in ("modes_covered", "high_quality_pct")},
            "quality_floor": quality.get("data_floor"),
            "train_steps_per_s": steps_per_s,
            "train_time_s": steps / steps_per_s if steps_per_s else None,
            "sample_per_s": rate, "sample_n": n, "steps": steps, "batch_size": cfg.batch_size,
        })
        pictures.append((f"{label}\n{nll_caption(rows[-1])}", samples))
    if target is not None:
        write_target_tables(rows, out, target, seed)
        lo, hi = target.view
        plot_side_by_side(pictures, spec, out / "samples.png", bounds=(lo, hi, lo, hi))
    else:
        write_tables(rows, out, spec, seed, baseline=independent_nll(splits))
        plot_side_by_side(pictures, spec, out / "samples.png", bounds=plot_bounds(splits.train))
    return rows


def nll_caption(row: dict) -> str:
    """A row's test NLL for a picture: "test NLL 2.41 nats, 1.74 bits/dim", or "no density"."""
    if row["test_nll_nats"] is None:
        return "no density (implicit model)"
    return f"test NLL {row['test_nll_nats']:.3f} nats, {row['test_bits_per_dim']:.3f} bits/dim"


def _fmt(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def budget_line(rows: list[dict], seed: int) -> str:
    """The training budget of the models in ``rows``: steps, batch size (one figure when all agree) and seed."""
    def same(key):
        values = [r[key] for r in rows]
        if len(set(values)) == 1:
            return str(values[0])
        return ", ".join(f"{r[key]} ({r['model']})" for r in rows)

    return (f"Budget: {same('steps')} training steps of batch size {same('batch_size')} per model, seed {seed}; "
            "train time is each model's wall-clock time in training, validation included, final scoring not."
            + sampling_line(rows))


def sampling_line(rows: list[dict]) -> str:
    """How the samples/s column was measured (the n of the rows, the threads)."""
    sizes = sorted({r["sample_n"] for r in rows if r.get("sample_n")})
    if not sizes:
        return ""
    return (f" Samples/s: one call drawing {' or '.join(map(str, sizes))} samples at once, after a warm-up call, "
            f"eval mode, no gradients, {torch.get_num_threads()} threads.")


def write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def write_target_tables(rows: list[dict], out: Path, target, seed: int = 0) -> None:
    """compare.csv (:data:`TARGET_COLUMNS`) and compare.md for models fitted to an unnormalised target."""
    write_csv(rows, TARGET_COLUMNS, out / "compare.csv")
    head = ["model", "family", "params", "ELBO (nats)", "log Z IS", "log Z true", "log Z - ELBO = KL(q||p)",
            "KL(p||q)", "ESS/N", "train time (s)", "train steps/s", "samples/s"]
    lines = [f"Variational inference on `{target.name}` ({target.spec.description}): ELBO = E_q[-U - log q] <= log Z, "
             "log Z IS = log mean exp(-U - log q) (20000 samples), log Z true by quadrature; all in nats.", "",
             budget_line(rows, seed) if rows else "", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["model"], r["family"], f"{r['parameters']:,}", _fmt(r["elbo_nats"], 4), _fmt(r["log_z_is"], 4),
            _fmt(r["log_z_true"], 4), _fmt(r["kl_nats"], 4), _fmt(r["forward_kl_nats"], 4),
            _fmt(r["ess_fraction"], 3), _fmt(r["train_time_s"], 1), _fmt(r["train_steps_per_s"], 1),
            _fmt(r["sample_per_s"], 0)]) + " |")
    write_text(out / "compare.md", "\n".join(lines) + "\n")


def write_tables(rows: list[dict], out: Path, spec, seed: int = 0, baseline: float | None = None) -> None:
    """compare.csv (:data:`COLUMNS`) and compare.md (what the figures are, the budget, the table); ``baseline``:
    the test NLL of independent per-dimension marginals (:mod:`deepgen.evaluation.baselines`), a last row of
    both (model ``independent``, family ``baseline``)."""
    budget = budget_line(rows, seed) if rows else ""
    if baseline is not None:
        rows = [*rows, {"model": "independent", "family": "baseline", "parameters": spec.dim * (spec.levels or 2),
                        "test_nll_nats": baseline, "test_bits_per_dim": spec.bits_per_dim(baseline),
                        "figure": "exact: " + describe_independent(spec.levels), "train_time_s": None,
                        "train_steps_per_s": None, "sample_per_s": None, "steps": None, "batch_size": None}]
    write_csv(rows, COLUMNS, out / "compare.csv")
    # columns only some models have: the ELBO of latent-variable models, MIG on data with known factors,
    # sample quality where a feature space applies
    optional = [(k, h) for k, h in (("test_elbo_nats", "test ELBO (nats)"), ("mig", "MIG"), ("modes_covered", "modes"),
                                    ("high_quality_pct", "high quality %"), *QUALITY_HEADERS.items())
                if any(r.get(k) is not None for r in rows)]
    head = ["model", "family", "params", "test NLL (nats)", "bits/dim", "figure", *(h for _, h in optional),
            "train time (s)", "train steps/s", "samples/s"]
    lines = [f"Test split of `{spec.name}` ({spec.description}); NLL in nats per example, "
             f"bits/dim = NLL / ({spec.dim} ln 2)." + quality_line(optional, rows), "", budget, "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["model"], r["family"], f"{r['parameters']:,}", _fmt(r["test_nll_nats"]), _fmt(r["test_bits_per_dim"], 4),
            r["figure"], *(_fmt(r.get(k)) for k, _ in optional), _fmt(r["train_time_s"], 1),
            _fmt(r["train_steps_per_s"], 1), _fmt(r["sample_per_s"], 0)]) + " |")
    write_text(out / "compare.md", "\n".join(lines) + "\n")


def quality_line(optional, rows) -> str:
    """What the sample-quality columns are (and what held-out data score), when the table has them."""
    if not any(k in QUALITY_HEADERS for k, _ in optional):
        return ""
    floor = next((r["quality_floor"] for r in rows if r.get("quality_floor")), None)
    held_out = "" if floor is None else (
        f" {floor['what'].split(':')[0].capitalize()} (what a perfect model reaches): "
        + ", ".join(f"{QUALITY_HEADERS[k]} {_fmt(floor[k])}" for k in QUALITY_COLUMNS if k in floor) + ".")
    return (" Sample quality: as many seeded samples as the test split has, in a classifier's feature space "
            "(penultimate layer; deepgen's digits classifier unless --features names another): Fréchet distance "
            "FD (lower is better), precision, recall, density, coverage with k = 5 nearest neighbours (Kynkäänniemi "
            "et al. 2019; Naeem et al. 2020; held-out data score about 1), class coverage = fraction of classes "
            "given at least half a fair share of the samples." + held_out)


def plot_side_by_side(pictures, spec, path, bounds=None) -> None:
    """One panel per (title, samples) of ``pictures``: an image grid, or a 2-D scatter over ``bounds``
    (x0, x1, y0, y1)."""
    n = len(pictures)
    fig, axes = subplots(1, n, figsize=(4 * n, 4.3), squeeze=False, layout="constrained")
    for ax, (name, samples) in zip(axes[0], pictures):
        if spec.is_image:
            arr = image_grid(samples[:64], spec.levels, ncol=8)
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        elif spec.shape == (2,):
            b = bounds
            s = samples.cpu().numpy()
            ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.5)
            ax.set_xlim(b[0], b[1])
            ax.set_ylim(b[2], b[3])
            ax.set_aspect("equal", adjustable="box")
        ax.set_title(name, fontsize=10)
    fig.suptitle(f"samples on {spec.name}")
    save_figure(fig, path)


__all__ = ["compare"]
