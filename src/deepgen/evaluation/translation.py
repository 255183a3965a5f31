"""How well a translator maps domain A to domain B, next to two baselines, and its picture.

A translator is a model with capability ``translate``: ``G(a) = model.translate(a)`` maps domain-A
examples to domain B on the data's scale (integer levels for discrete data), and, where the model has
both directions (CycleGAN), ``F(b) = model.translate(b, reverse=True)`` maps B back to A.  The data
carry a :class:`~deepgen.data.spec.Translation` (``splits.translation``): the domain-A sources a_i of
each split, the truth T(a_i) where the map T is known (the built-in tasks), the class ids y_i of the
sources where known, and the real domain-B examples b_j of the split (``splits.test`` ...).

Figures on one split (default test), over its N sources.  Scale: discrete data with L levels are
compared on [0, 1], x / (L - 1); continuous data in their own units.

* MAE = (1 / N D) sum_i |G(a_i) - T(a_i)|_1   (D values per example)
* PSNR = 10 log10(peak^2 / MSE) dB with MSE = (1 / N D) sum_i ||G(a_i) - T(a_i)||^2 (all pixels pooled);
  peak = 1 on the [0, 1] scale (discrete), the truth's max - min (continuous images); an MSE of 0 gives
  :data:`~deepgen.evaluation.restoration.PSNR_CAP_DB` (100 dB) in place of infinity (JSON has none).
* label preservation = (1 / N) sum_i 1[c(G(a_i)) = y_i], c the digit classifier (or the feature net
  named) applied to the translation: a translator that flips classes (CycleGAN's known failure) scores low.
  ``classifier_accuracy_on_b``, the classifier's accuracy on the split's real B examples (with their
  labels), is its ceiling: deepgen's digits classifier reads ``digits2thick``'s thick digits at 0.65, so
  score that task with a classifier of domain B (``deepgen features --data digits2thick``, ``features=``).
* cycle error = (1 / N D) sum_i |F(G(a_i)) - a_i|_1, same scale as MAE (models that map both ways).
* FD = the Fréchet distance of the classifier features of {G(a_i)} to those of the split's real B
  examples {b_j} (see :mod:`deepgen.evaluation.sample_quality`; precision and recall beside it).

2-D point data (``mixtures``): map error = (1 / N) sum_i ||G(a_i) - T(a_i)||^2 (squared data units) and
component accuracy = (1 / N) sum_i 1[argmin_k ||G(a_i) - m_k|| = y_i], m_k the mean of component k of
mixture B (the true ones for the built-in ``mixtures``, else the mean of the B examples of the
train split labelled k) and y_i the component of a_i, which T carries to component y_i of B.

Baselines, the same figures: ``identity`` (G(a) = a; its cycle error is 0) and ``oracle`` (G(a) = T(a):
MAE 0, PSNR the cap, label preservation = the classifier's accuracy on T(a), FD the finite-sample
floor; no cycle error, T need not be invertible).  Without a known T (users' unpaired data) MAE, PSNR,
map error and the oracle row are absent.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from deepgen.data.spec import SPLITS, Splits
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.plots import image_grid, plot_image_rows, save_figure, subplots
from deepgen.evaluation.restoration import PSNR_CAP_DB, psnr_db
from deepgen.evaluation.sample_quality import NEIGHBOURS, feature_space, frechet_distance, prdc, to_net_scale
from deepgen.ops import module_device

JUDGE_WARNING = 0.9  # below this accuracy on real B, the scores say the classifier is a poor judge of domain B


# --- the data's translation block and the model's maps ------------------------------------------------
def translation_of(splits: Splits):
    """The :class:`Translation` of ``splits`` (a DataError naming the dataset when it has none)."""
    tr = splits.translation
    if tr is None:
        raise DataError(f"dataset '{splits.spec.name}' is not a translation task (it has no domain-A sources); "
                        "expected a translation dataset, e.g. edges2digits, lowres2digits, digits2thick, mixtures, "
                        "or your own paired / unpaired folders")
    return tr


def sources(splits: Splits, split: str) -> torch.Tensor:
    """The domain-A examples of ``split``."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}': expected train, val or test")
    tr = translation_of(splits)
    if split not in tr.source or len(tr.source[split]) == 0:
        raise DataError(f"dataset '{splits.spec.name}': no domain-A sources in the {split} split")
    return tr.source[split]


def translators() -> list[str]:
    """Names of the registered models with capability "translate"."""
    from deepgen.models.registry import get_model_class, model_names

    names = []
    for name in model_names():
        try:
            cls = get_model_class(name)
        except ImportError:  # a model whose optional module is missing cannot be offered
            continue
        if "translate" in getattr(cls, "capabilities", ()):
            names.append(name)
    return names


def check_translator(model) -> None:
    """``model`` has capability "translate" (a ConfigError naming it otherwise)."""
    if "translate" not in getattr(model, "capabilities", ()):
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(f"model {name} cannot translate (no capability 'translate'); translators: "
                          f"{', '.join(translators())}")


@torch.no_grad()
def translate_all(model, x: torch.Tensor, reverse: bool = False, seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """``model.translate(x, reverse)`` in eval mode, in batches, under ``torch.manual_seed(seed)`` (the
    global RNG and the model's mode restored); float32 on the CPU."""
    check_translator(model)
    device = module_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            out = [model.translate(x[i : i + batch_size].to(device), reverse=reverse).detach().float().cpu()
                   for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else x[:0].float()


def can_reverse(model) -> bool:
    """Whether ``model`` maps B back to A: its ``bidirectional`` flag (deepgen's translators: cyclegan True,
    pix2pix False), else whether ``translate(x, reverse=True)`` is refused with a ConfigError."""
    flag = getattr(model, "bidirectional", None)
    if isinstance(flag, bool):
        return flag
    try:
        translate_all(model, torch.zeros(1, *model.spec.shape), reverse=True)
    except ConfigError:
        return False
    return True


# --- the figures --------------------------------------------------------------------------------------
def value_scale(spec) -> float:
    """The divisor that puts values on the compared scale: L - 1 for discrete data (-> [0, 1]), 1 otherwise."""
    return float(spec.levels - 1) if spec.levels is not None and spec.levels > 1 else 1.0


def mean_abs(x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> float:
    """(1 / N D) sum |x - y| / scale."""
    return ((x.double() - y.double()).abs() / scale).mean().item()


def image_errors(out: torch.Tensor, truth: torch.Tensor, spec) -> dict:
    """``mae`` and ``psnr_db`` of translations ``out`` against ``truth`` (see the module docstring)."""
    s = value_scale(spec)
    mse = ((out.double() - truth.double()) / s).pow(2).mean().item()
    peak = 1.0 if spec.levels is not None else float(truth.max() - truth.min())
    return {"mae": mean_abs(out, truth, s), "psnr_db": psnr_db(mse, peak) if peak > 0 else None}


def component_means(splits: Splits) -> torch.Tensor:
    """(K, 2) means of the components of mixture B: the true ones for the built-in ``mixtures`` /
    ``mixtures-SEED`` (:func:`deepgen.data.translation.mixture_task`), else the mean of the B examples of
    the train split labelled k."""
    match = re.fullmatch(r"mixtures(?:-(\d+))?", splits.spec.name)
    if match:
        from deepgen.data.translation import mixture_task

        return mixture_task(int(match.group(1) or 0)).component_means("B").double()
    if "train" not in splits.labels or not splits.classes:
        raise DataError(f"dataset '{splits.spec.name}': component accuracy needs the components of the B examples "
                        "(labels of the train split)")
    y, x = splits.labels["train"], splits.train.double()
    counts = torch.bincount(y, minlength=splits.num_classes).double().clamp_min(1)
    return torch.zeros(splits.num_classes, x.shape[1], dtype=torch.float64).index_add_(0, y, x) / counts[:, None]


def point_errors(out: torch.Tensor, truth: torch.Tensor | None, labels: torch.Tensor | None,
                 means: torch.Tensor | None) -> dict:
    """``map_error`` (mean squared distance to the truth) and ``component_accuracy`` of 2-D translations."""
    row = {"map_error": None, "component_accuracy": None}
    if truth is not None:
        row["map_error"] = (out.double() - truth.double()).pow(2).sum(1).mean().item()
    if labels is not None and means is not None:
        nearest = torch.cdist(out.double(), means).argmin(1)
        row["component_accuracy"] = (nearest == labels).double().mean().item()
    return row


class _FeatureJudge:
    """The classifier's view of one split: features of the real B examples, and per set of images its
    label preservation and Fréchet distance to them."""

    def __init__(self, splits: Splits, split: str, labels: torch.Tensor | None, features=None):
        self.spec = splits.spec
        self.net, self.scale = feature_space(splits.spec, features)
        self.labels, self.note = labels, None
        if self.net is None:
            self.note = self.scale
            return
        if labels is not None and splits.classes and tuple(splits.classes) != self.net.classes:
            self.labels, self.note = None, (f"label preservation: the classes of '{splits.spec.name}' "
                                            f"{list(splits.classes)} differ from the feature net's")
        self.real, predicted = self.net.features_and_classes(to_net_scale(splits.split(split), self.spec, self.net))
        # the judge's own accuracy on the real B examples: the ceiling of label preservation
        self.accuracy_on_b = None
        if split in splits.labels and tuple(splits.classes) == self.net.classes:
            self.accuracy_on_b = (predicted == splits.labels[split]).double().mean().item()

    def __call__(self, images: torch.Tensor) -> dict:
        if self.net is None:
            return {"label_preservation": None, "frechet_distance": None}
        images = torch.nan_to_num(images.float())
        feats, predicted = self.net.features_and_classes(to_net_scale(images, self.spec, self.net))
        row = {"label_preservation": None if self.labels is None
               else (predicted == self.labels).double().mean().item(),
               "frechet_distance": frechet_distance(self.real, feats)}
        if len(feats) > NEIGHBOURS and len(self.real) > NEIGHBOURS:
            pr = prdc(self.real, feats)
            row.update(precision=pr["precision"], recall=pr["recall"])
        return row


def translation_scores(model, splits: Splits, split: str = "test", seed: int = 0, features=None) -> dict:
    """The figures of the module docstring for ``model`` and the baselines ``identity`` and ``oracle`` on
    the domain-A sources of ``split``: ``{"rows": {"model": {...}, "identity": {...}, "oracle": {...}},
    "model": name, "task", "domains", "paired", "split", "n", "seed", "units", "definitions", ...}``.
    A figure that does not apply is None (the oracle row is None without a known truth)."""
    check_translator(model)
    tr = translation_of(splits)
    spec = splits.spec
    a = sources(splits, split)
    truth = tr.truth.get(split) if tr.truth else None
    labels = tr.source_labels.get(split) if tr.source_labels else None
    g = translate_all(model, a, seed=seed)
    if tuple(g.shape) != tuple(a.shape):
        raise ConfigError(f"{getattr(model, 'name', 'model')}.translate returned shape {tuple(g.shape)} for "
                          f"sources of shape {tuple(a.shape)}")
    reverse = can_reverse(model)
    s = value_scale(spec)
    maps = {"model": g, "identity": a.float()}
    if truth is not None:
        maps["oracle"] = truth.float()
    result = {"model": getattr(model, "name", type(model).__name__), "task": spec.name,
              "domains": list(tr.domains), "paired": bool(tr.paired), "split": split, "n": len(a), "seed": seed,
              "rows": {}}
    if spec.is_image:
        judge = _FeatureJudge(splits, split, labels, features)
        for name, out in maps.items():
            row = image_errors(out, truth, spec) if truth is not None else {"mae": None, "psnr_db": None}
            row.update(judge(out))
            row["cycle_error"] = None
            result["rows"][name] = row
        result["feature_net"] = judge.net.describe() if judge.net is not None else None
        notes = [judge.note] if judge.note else []
        if judge.net is not None:
            result["classifier_accuracy_on_b"] = judge.accuracy_on_b
            if judge.accuracy_on_b is not None and judge.accuracy_on_b < JUDGE_WARNING:
                notes.append(f"the classifier reads the real {tr.domains[1]} of the {split} split with accuracy "
                             f"{judge.accuracy_on_b:.3f}, which bounds label preservation; for a classifier of "
                             f"domain B: deepgen features --data {spec.name} --out DIR, then --features DIR")
        if notes:
            result["note"] = "; ".join(notes)
        result["units"] = (f"MAE, cycle error: mean |difference| per value on the [0, 1] scale (levels / "
                           f"{spec.levels - 1}); PSNR in dB, peak 1" if spec.levels is not None else
                           "MAE, cycle error: mean |difference| per value in the data's units; PSNR in dB, peak = "
                           "the truth's max - min")
        result["definitions"] = {
            "mae": "mean over examples and values of |G(a) - T(a)|",
            "psnr_db": f"10 log10(peak^2 / MSE), MSE of all values pooled; MSE 0 reported as {PSNR_CAP_DB:g} dB",
            "label_preservation": "fraction of translations the classifier assigns the class of their source",
            "cycle_error": "mean |F(G(a)) - a| (F: the model's B -> A map), for models that map both ways",
            "frechet_distance": f"Frechet distance of classifier features of the translations to those of the real "
                                f"domain-B examples of the {split} split",
        }
    else:
        if spec.shape != (2,):
            raise ConfigError(f"translation scores: examples of shape {tuple(spec.shape)}; expected images or "
                              "2-D points")
        means = component_means(splits) if labels is not None else None
        for name, out in maps.items():
            result["rows"][name] = {**point_errors(out, truth, labels, means), "cycle_error": None}
        result["units"] = "map error: mean squared distance to T(a) in squared data units; cycle error: mean |F(G(a)) - a|"
        result["definitions"] = {
            "map_error": "mean over points of ||G(a) - T(a)||^2",
            "component_accuracy": "fraction of translations whose nearest component mean of mixture B is the "
                                  "component T carries the source's component to",
            "cycle_error": "mean |F(G(a)) - a| per coordinate, for models that map both ways",
        }
    result["rows"]["identity"]["cycle_error"] = 0.0
    if reverse:
        back = translate_all(model, g, reverse=True, seed=seed)
        result["rows"]["model"]["cycle_error"] = mean_abs(back, a, s)
    result["rows"].setdefault("oracle", None)
    return result


# --- a table ------------------------------------------------------------------------------------------
def _cell(value, fmt: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, fmt)


def translation_table(scores: dict) -> str:
    """A markdown table of :func:`translation_scores`: one row per map (model, identity, oracle T)."""
    rows = scores["rows"]
    first = next(r for r in rows.values() if r is not None)
    image = "mae" in first
    if image:
        head = ["map", "MAE", "PSNR (dB)", "label preservation", "cycle error", "FD"]
        keys = [("mae", ".4f"), ("psnr_db", ".2f"), ("label_preservation", ".3f"), ("cycle_error", ".4f"),
                ("frechet_distance", ".2f")]
    else:
        head = ["map", "map error", "component accuracy", "cycle error"]
        keys = [("map_error", ".4f"), ("component_accuracy", ".3f"), ("cycle_error", ".4f")]
    names = {"model": scores.get("model", "model"), "identity": "identity", "oracle": "oracle T"}
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for key, row in rows.items():
        cells = [_cell(None if row is None else row.get(k), f) for k, f in keys]
        lines.append(f"| {names.get(key, key)} | " + " | ".join(cells) + " |")
    domains = scores.get("domains") or ["A", "B"]
    judge = scores.get("classifier_accuracy_on_b")
    caption = (f"{scores.get('task', '')} ({domains[0]} -> {domains[1]}, "
               f"{'paired' if scores.get('paired') else 'unpaired'}), {scores.get('split')} split, "
               f"n = {scores.get('n')}; {scores.get('units', '')}"
               + (f"; classifier accuracy on real B: {judge:.3f}" if judge is not None else ""))
    return caption + "\n\n" + "\n".join(lines) + "\n"


# --- pictures -----------------------------------------------------------------------------------------
def plot_points(rows: list[tuple[str, torch.Tensor]], path, title: str = "", links: tuple[int, int] | None = None,
                reference: torch.Tensor | None = None):
    """2-D point sets on one axis (``rows``: (label, (N, 2) points)); ``links`` = (i, j) draws a thin segment
    from each point of set i to the same row of set j; ``reference`` (e.g. real B) in light grey."""
    fig, ax = subplots(figsize=(6, 6))
    if reference is not None:
        r = reference.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=4, c="0.8", label=f"real B (n={len(r)})")
    if links is not None:
        p, q = rows[links[0]][1].detach().cpu().numpy(), rows[links[1]][1].detach().cpu().numpy()
        segs = np.stack([p, q], 1)
        for seg in segs:
            ax.plot(seg[:, 0], seg[:, 1], c="0.5", lw=0.4, alpha=0.6)
    colours = ("tab:blue", "tab:red", "k", "tab:green")
    for (label, pts), colour in zip(rows, colours):
        x = pts.detach().cpu().numpy()
        ax.scatter(x[:, 0], x[:, 1], s=8, c=colour, label=label, marker="x" if colour == "k" else "o")
    ax.set_xlabel("x1 (data units)")
    ax.set_ylabel("x2 (data units)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)
    return fig


def plot_translation_pairs(inputs: torch.Tensor, outputs: torch.Tensor, path, spec, title: str = "",
                           names: tuple[str, str] = ("input", "output"), ncol: int = 8):
    """Inputs and their translations side by side: for images two panels, the i-th output in the same
    place as the i-th input; for 2-D points both sets with a segment from each input to its output.
    Returns the figure, or None for vectors of other sizes (no picture)."""
    if not spec.is_image:
        if tuple(spec.shape) != (2,):
            return None
        return plot_points([(names[0], inputs), (names[1], outputs)], path, title, links=(0, 1))
    ncol = min(ncol, len(inputs))
    left, right = image_grid(inputs, spec.levels, ncol), image_grid(outputs, spec.levels, ncol)
    fig, axes = subplots(1, 2, figsize=(2 * max(3.0, 0.55 * ncol), max(3.0, 0.55 * ncol * left.shape[0]
                                                                         / left.shape[1]) + 0.8),
                         layout="constrained")
    for ax, arr, label in zip(axes, (left, right), names):
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return fig


def translation_grid(model, splits: Splits, path, n: int = 16, split: str = "test", seed: int = 0):
    """A picture of ``n`` translations of the ``split`` sources: for images, rows input a | G(a) | truth T(a)
    (where known) | reconstruction F(G(a)) (models that map both ways); for 2-D points, the sources, their
    translations, the truth linked to each translation, over the real B points.  Returns the figure
    (None for vectors of other sizes, which have no picture)."""
    check_translator(model)
    tr = translation_of(splits)
    spec = splits.spec
    if not spec.is_image and tuple(spec.shape) != (2,):
        return None
    count = n if spec.is_image else max(n, 256)  # points: enough to see the mixture
    a = sources(splits, split)[:count]
    g = translate_all(model, a, seed=seed)
    truth = tr.truth[split][:count] if tr.truth and split in tr.truth else None
    dom_a, dom_b = tr.domains
    name = getattr(model, "name", type(model).__name__)
    title = f"{name} on {spec.name}: {dom_a} -> {dom_b}, {split} split"
    if not spec.is_image:
        rows = [(f"sources a ({dom_a})", a), (f"translations G(a) ({dom_b})", g)]
        if truth is not None:
            rows.append(("truth T(a)", truth))
        return plot_points(rows, path, title, links=(1, 2) if truth is not None else None,
                           reference=splits.split(split))
    rows = [(f"input a ({dom_a})", a), (f"translation G(a) ({dom_b})", g)]
    if truth is not None:
        rows.append((f"truth T(a) ({dom_b})", truth))
    if can_reverse(model):
        rows.append((f"reconstruction F(G(a)) ({dom_a})", translate_all(model, g, reverse=True, seed=seed)))
    return plot_image_rows(rows, path, spec.levels, ncol=len(a), title=title)


__all__ = ["translation_scores", "translation_table", "translation_grid", "translate_all", "can_reverse",
           "check_translator", "translation_of", "sources", "plot_points", "plot_translation_pairs", "image_errors", "point_errors"]
