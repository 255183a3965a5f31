"""``score``: the figures a run reports on one split, shared by training and the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from deepgen.data.context import LabelContext
from deepgen.data.spec import Splits
from deepgen.errors import ConfigError
from deepgen.evaluation.class_recovery import class_recovery_scores
from deepgen.evaluation.conditional import class_log_likelihoods, conditional_summary
from deepgen.evaluation.disentanglement import disentanglement_scores
from deepgen.evaluation.linear_probe import representation_probe
from deepgen.evaluation.likelihood import nll_summary, per_example_log_prob
from deepgen.evaluation.modes import PROTOCOL_SAMPLES, mode_metrics_for
from deepgen.evaluation.reconstruction import reconstruction_scores
from deepgen.evaluation.sample_metrics import sample_scores
from deepgen.evaluation.sample_quality import sample_quality_scores
from deepgen.io import write_text


def units(spec) -> str:
    if spec.levels is not None:
        return (f"nats per example and bits per dimension of {spec.dim}-dim data with {spec.levels} discrete "
                f"levels (log P(k) on the discrete scale)")
    return f"nats per example and bits per dimension of {spec.dim}-dim continuous data in its own units"


def prior_contexts(label_context: LabelContext | None, n: int, seed: int) -> torch.Tensor | None:
    """n one-hot contexts with labels drawn from the training frequencies (seeded), or None."""
    if label_context is None:
        return None
    g = torch.Generator().manual_seed(seed)
    return label_context.one_hot(label_context.sample_labels(n, g))


def translator_scores(model, splits: Splits, split: str = "test", seed: int = 0, features=None) -> dict:
    """A translator's figures: ``translation`` (:func:`deepgen.evaluation.translation.translation_scores`: MAE,
    PSNR, label preservation, Frechet distance, cycle error, against the identity and oracle maps) and, for a
    model with a density of domain B (mixture-align), its test NLL."""
    from deepgen.evaluation.alignment import alignment_scores, is_mixture_task
    from deepgen.evaluation.translation import translation_scores

    result = {"model": model.name, "data": splits.spec.name, "split": split, "density": model.density,
              "note": f"{model.name} is a translator: figures of its translations of the {split} split's domain-A "
                      "examples"}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        result["translation"] = translation_scores(model, splits, split, seed=seed, features=features)
        if is_mixture_task(splits):  # the 2-D mixture task: matching judged by its Bayes classifier
            result["alignment"] = alignment_scores(model, splits, split, seed=seed)
    if model.density != "none" and model.can("log_prob"):
        result.update(nll_summary(per_example_log_prob(model, splits.split(split), seed=seed), splits.spec))
        result["units"] = units(splits.spec)
    return result


def manipulator_scores(model, splits: Splits, split: str = "test", seed: int = 0) -> dict:
    """A model that sets attributes (puppet): ``puppet`` (:func:`deepgen.evaluation.puppet.puppet_scores`:
    attribute error read back by the model and by an independent regressor, MAE against the true rotation,
    label preservation; against the identity and oracle maps) and its sample metrics."""
    from deepgen.evaluation.puppet import puppet_scores

    result = {"model": model.name, "data": splits.spec.name, "split": split, "density": model.density,
              "note": f"{model.name} sets attributes of real examples (deepgen translate RUN --set angle=30)"}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if splits.has_labels:
            result["puppet"] = puppet_scores(model, splits, split, seed=seed)
        result.update(sample_scores(model, splits, split, seed=seed))
    return result


def score_model(model, splits: Splits, split: str = "test", seed: int = 0, batch_size: int = 256,
                csv_path=None, k: int | None = None, label_context: LabelContext | None = None,
                features=None, quality_samples: int | None = None) -> dict:
    """The figures of ``model`` on ``split``.

    density exact / bound / estimate: mean NLL (nats), bits/dim, n; per-example log p to
    ``csv_path``.  For a bound, ``log_prob`` is the importance-weighted estimate with ``k``
    samples (the model's default if None), and the ELBO is reported too.
    density "none": no NLL (implicit model, autoencoder); sample metrics instead.
    A model that encodes also gets reconstruction MSE / PSNR (and MIG on data with known factors);
    one with "diagnostics" adds its own figures (see :func:`representation_scores`).
    A conditional model (``label_context`` given) reports ``nll_nats`` given the true labels,
    ``marginal_nll_nats`` = -log sum_y p(x | y) p(y) and ``classify_accuracy``.
    Every model that samples gets mode coverage on data with known modes (ring8, grid25), and under
    ``sample_quality`` its sample quality in a classifier's feature space (``frechet_distance``,
    ``precision``, ``recall``, ``density``, ``coverage``, ``class_coverage``, ``class_kl_nats``;
    :mod:`deepgen.evaluation.sample_quality`) where one applies: deepgen's digits classifier for 1x8x8
    images with 17 or 2 levels, or the feature net ``features`` names; ``quality_samples`` samples
    (default: as many as ``split`` has).  Elsewhere ``sample_quality`` is {"note": why there are no
    such figures} (never figures on raw pixels).
    """
    if model.can("translate"):
        return translator_scores(model, splits, split, seed=seed, features=features)
    if model.can("manipulate"):
        return manipulator_scores(model, splits, split, seed=seed)
    x = splits.split(split)
    conditional = model.is_conditional
    if conditional and label_context is None:
        raise ConfigError(f"{model.name}: this model is conditional; scoring it needs the run's label context")
    if k and not model.can("importance_weighted"):
        raise ConfigError(f"--iw-samples applies to models whose log_prob is an importance-weighted bound; "
                          f"{model.name} (density {model.density}) takes none")
    labels = splits.split_labels(split) if conditional else None
    true_ctx = label_context.one_hot(labels) if conditional else None
    mode_ctx = prior_contexts(label_context, PROTOCOL_SAMPLES, seed) if conditional else None
    result = {"model": model.name, "data": splits.spec.name, "split": split, "density": model.density}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        result.update(representation_scores(model, splits, split, true_ctx, batch_size))
        recovery = class_recovery_scores(model, splits, split, context=true_ctx)
        if recovery is not None:
            result["class_recovery"] = recovery
        probe = representation_probe(model, splits, batch_size=batch_size, seed=seed)
        if probe is not None:
            result["linear_probe"] = probe
    if model.density == "none":
        kind = "an autoencoder" if model.can("encode") else "an implicit model"
        result["note"] = (f"{model.name} is {kind}: it defines no density, so there is no NLL; "
                          f"sample metrics instead")
        result.update(sample_scores(model, splits, split, seed=seed, context=true_ctx, mode_context=mode_ctx))
        result.update(sample_quality_scores(model, splits, split, seed=seed, n=quality_samples, features=features,
                                            context=true_ctx))
        return result
    kwargs = {"k": k} if k else {}
    predicted = marginal = None
    if conditional:
        log_lik = class_log_likelihoods(model, x, label_context, batch_size=batch_size, seed=seed, **kwargs)
        cond = conditional_summary(log_lik, labels, label_context)
        log_probs, marginal, predicted = cond["log_prob"], cond["marginal_log_prob"], cond["predicted"]
    else:
        log_probs = per_example_log_prob(model, x, batch_size=batch_size, seed=seed, **kwargs)
    result.update(nll_summary(log_probs, splits.spec))
    result["units"] = units(splits.spec)
    if conditional:
        m = nll_summary(marginal, splits.spec)
        result["conditional_on"] = "true labels: nll_nats is -log p(x | y)"
        result["marginal_nll_nats"] = m["nll_nats"]
        result["marginal_bits_per_dim"] = m["bits_per_dim"]
        result["classify_accuracy"] = cond["classify_accuracy"]
        result["label_prior"] = "training-split class frequencies"
    if model.can("importance_weighted"):
        result["iw_samples"] = k or model.iw_samples
        result["estimator"] = f"importance-weighted log p(x) with k={result['iw_samples']} (IWAE, a stochastic lower bound)"
    if model.can("elbo"):
        elbo = per_example_log_prob(model, x, batch_size=batch_size, seed=seed, method="elbo",
                                    context=true_ctx).mean().item()
        result["elbo_nats"] = elbo
        result["neg_elbo_bits_per_dim"] = splits.spec.bits_per_dim(-elbo)
    modes = mode_metrics_for(model, splits.spec.name, seed=seed, context=mode_ctx)
    if modes is not None:
        result["modes"] = modes
    if splits.spec.levels is not None and model.can("dequantize"):
        result["dequantization"] = (f"{model.dequantization}, 1 draw per example (seeded); NLL is an upper bound "
                                    "on -log P(k)")
    result.update(sample_quality_scores(model, splits, split, seed=seed, n=quality_samples, features=features,
                                        context=true_ctx))
    if csv_path is not None:
        write_per_example_csv(Path(csv_path), log_probs, splits.spec, labels, predicted, marginal)
    return result


def representation_scores(model, splits: Splits, split: str, context=None, batch_size: int = 256) -> dict:
    """What a model that encodes adds to the scores: ``reconstruction`` (MSE, PSNR of reconstruct(x)),
    ``disentanglement`` (MIG on the train split) on data with known factors (``blobs``), and the
    model's own ``diagnostics`` over the whole split (e.g. a VQ-VAE's codebook perplexity)."""
    out = {}
    x = splits.split(split)
    if model.can("encode"):
        out["reconstruction"] = reconstruction_scores(model, x, splits.spec, context, batch_size)
        if splits.factors and not model.is_conditional:
            out["disentanglement"] = disentanglement_scores(model, splits, "train", batch_size)
    if model.can("diagnostics"):
        with torch.no_grad():
            out.update(model.diagnostics(x, context))
    return out


def write_per_example_csv(path: Path, log_probs, spec, labels=None, predicted=None, marginal=None) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ["index", "log_prob_nats", "nll_nats", "bits_per_dim"]
    if labels is not None:
        head += ["label", "predicted", "marginal_log_prob_nats"]
    w.writerow(head)
    for i, lp in enumerate(log_probs.tolist()):
        row = [i, f"{lp:.6f}", f"{-lp:.6f}", f"{spec.bits_per_dim(-lp):.6f}"]
        if labels is not None:
            row += [int(labels[i]), int(predicted[i]), f"{float(marginal[i]):.6f}"]
        w.writerow(row)
    write_text(path, buf.getvalue())
