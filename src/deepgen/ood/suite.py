"""``deepgen ood``: every OOD score of a run against every OOD set, as JSON lines, a table and histograms.

In-distribution = the run's test split (for a run trained with ``train.exclude_classes``: its test
examples of the classes it was trained on).  Each detector is fitted on the run's training split
(the same classes), which sets the typicality entropy H_hat; the threshold plays no part in the
figures, which are threshold-free (:mod:`deepgen.evaluation.ood_metrics`, OOD positive).

Files, under ``out`` (default RUN/ood/), replaced together once all are written:

    table.csv / table.md   one row per (score, OOD set): auroc, aupr, fpr_at_95_tpr, n_in, n_out
    hist_<score>.png       the score's histogram on the test split against each OOD set
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import torch

from deepgen.data import load_data
from deepgen.data.subsets import exclude_classes
from deepgen.errors import CheckpointError, ConfigError, unknown_name
from deepgen.evaluation.ood_metrics import ood_metrics
from deepgen.evaluation.plots import save_figure, subplots
from deepgen.io import atomic_group, strict_json, write_text
from deepgen.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, model_config
from deepgen.ood.detector import MIRROR_SCORES, NEEDS_BACKGROUND, SCORES, Detector, applicable_scores, load_run
from deepgen.ood.sets import default_sets, make_set

KEYS = ("score", "ood", "auroc", "aupr", "fpr_at_95_tpr", "n_in", "n_out")
BACKGROUND_DIR = Path("ood") / "background"  # where train_background puts a run's background model
UNITS = {"nll": "bits/dim", "likelihood-ratio": "bits/dim", "typicality": "bits/dim",
         "input-complexity": "bits/dim", "ensemble": "-WAIC / (D ln 2)", "discriminator": "-logit",
         "reconstruction": "squared error per value", "transform-ratio": "bits/dim", "composite-ratio": "bits/dim"}


def run_data(info) -> tuple[str, str | None]:
    """(data source, label source) a loaded run was trained on (``train.data``, ``train.labels``)."""
    data = info.train.get("data") or (model_config(info.path).get("data") or {}).get("name")
    if not isinstance(data, str) or not data:
        raise CheckpointError(f"{info.path / CONFIG_FILE}: no data recorded (train.data); expected the dataset "
                              "the run was trained on")
    labels = info.train.get("labels") or None
    return data, labels if isinstance(labels, str) else None


def exclude_classes_of(train: dict, where) -> list | None:
    """``train.exclude_classes`` of a run (class ids or names), or None."""
    value = train.get("exclude_classes")
    if value in (None, [], ""):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, str)) and not isinstance(v, bool)
                                                       for v in value):
        raise CheckpointError(f"{where}: train.exclude_classes is {value!r}; expected a list of class ids or names")
    return list(value)


def background_run(run) -> Path | None:
    """RUN/ood/background when it holds a trained model (see ``train_background``), else None."""
    path = Path(run) / BACKGROUND_DIR
    return path if (path / WEIGHTS_FILE).is_file() else None


def ood_command(run, ood: list[str] | None = None, scores: list[str] | None = None, seed: int = 0, out=None,
                background=None, ensemble: list | None = None, batch_size: int = 256, transforms=None,
                verbose: bool = True) -> list[dict]:
    """Score run ``run`` against each OOD set of ``ood`` (built-in names or data files; default: every
    built-in set that applies) with each score of ``scores`` (default: every score that applies to
    the run's model).  Prints (``verbose``) and returns one dict per (score, set) with exactly the keys
    :data:`KEYS`; writes the table and histograms to ``out`` (default RUN/ood).

    ``background``: the background run of ``likelihood-ratio`` and ``composite-ratio`` (default
    RUN/ood/background when trained); ``ensemble``: further runs of the same data for the ``ensemble`` score (with ``run``);
    ``transforms``: the mirror images of ``transform-ratio`` and ``composite-ratio`` (default hflip, vflip).
    """
    info = load_run(run)
    model, where = info.model, info.path / CONFIG_FILE
    background = Path(background) if background is not None else background_run(info.path)
    if scores is None:
        scores = applicable_scores(model, background=background is not None) + (["ensemble"] if ensemble else [])
        if not scores:
            raise ConfigError(f"{info.path}: model '{model.name}' (density '{model.density}') offers no OOD score")
    for s in scores:
        if s not in SCORES:
            raise unknown_name("OOD score", s, SCORES)
    if transforms and not set(scores) & set(MIRROR_SCORES):
        raise ConfigError(f"--transforms is for the scores {' and '.join(MIRROR_SCORES)}, and none of them is run "
                          f"(scores: {', '.join(scores)})")
    data_name, labels = run_data(info)
    splits = load_data(data_name, labels=labels)
    if tuple(splits.spec.shape) != tuple(model.spec.shape) or splits.spec.levels != model.spec.levels:
        raise CheckpointError(f"{where}: data '{data_name}' no longer match the model (shape "
                              f"{tuple(splits.spec.shape)}, {splits.spec.levels} levels)")
    exclude = exclude_classes_of(info.train, where)
    ood = list(ood) if ood else default_sets(splits.spec, exclude)
    if len(set(ood)) != len(ood):
        raise ConfigError(f"--ood: a set is named twice ({', '.join(ood)})")
    kept = exclude_classes(splits, exclude, "train.exclude_classes")  # the classes the run was trained on
    # shifted copies of the in-distribution test split (the kept classes); heldout-classes: the others
    sets = {name: make_set(name, splits if name == "heldout-classes" else kept, seed=seed, exclude_classes=exclude)
            for name in ood}
    x_train, x_test = kept.train, kept.test

    lines, tables = [], {}
    log_p_cache: list = []  # log p of each (model, set) once, whichever density scores need it
    for s in scores:
        opts = {"background": background} if s in NEEDS_BACKGROUND else {}
        if s in MIRROR_SCORES and transforms:
            opts["transforms"] = transforms
        if s in NEEDS_BACKGROUND and background is None:
            raise ConfigError(f"score '{s}' needs a background model: train one with "
                              f"deepgen.workflows.ood_background.train_background('{info.path}') (it goes to "
                              f"{info.path / BACKGROUND_DIR}) or pass background=RUN")
        members = [info] + list(ensemble or []) if s == "ensemble" else info
        det = Detector(members, score=s, seed=seed, batch_size=batch_size, **opts).share_log_p(log_p_cache).fit(x_train)
        s_in = det.decision_function(x_test)
        tables[s] = (det.label, s_in, {})
        for name, x_out in sets.items():
            s_out = det.decision_function(x_out)
            tables[s][2][name] = s_out
            line = {"score": s, "ood": name, **ood_metrics(s_in, s_out)}
            lines.append({k: line[k] for k in KEYS})
            if verbose:
                print(strict_json(lines[-1]), flush=True)
    write_results(Path(out) if out is not None else info.path / "ood", lines, tables, info.path.name)
    return lines


def write_results(out: Path, lines: list[dict], tables: dict, run_name: str) -> None:
    """table.csv, table.md and hist_<score>.png under ``out``, all replaced together."""
    labels = {s: t[0] for s, t in tables.items()}
    with atomic_group():
        write_text(out / "table.csv", table_csv(lines, labels))
        write_text(out / "table.md", table_markdown(lines))
        for s, (label, s_in, outs) in tables.items():
            plot_histograms(out / f"hist_{s}.png", s_in, outs, f"{run_name}: {s} ({UNITS[s]}; higher = more abnormal)",
                            UNITS[s])
    print(f"deepgen: wrote {out / 'table.csv'} and {len(tables)} histogram(s)", file=sys.stderr)


def table_csv(lines: list[dict], labels: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(KEYS) + ["label"])
    for line in lines:
        w.writerow([_fmt(line[k]) for k in KEYS] + [labels.get(line["score"], "")])
    return buf.getvalue()


def table_markdown(lines: list[dict]) -> str:
    """Scores as rows, OOD sets as columns, AUROC in the cells, with the mean over the sets."""
    sets = list(dict.fromkeys(line["ood"] for line in lines))
    rows = list(dict.fromkeys(line["score"] for line in lines))
    cell = {(line["score"], line["ood"]): line["auroc"] for line in lines}
    text = "AUROC (OOD positive; 0.5 = chance)\n\n| score | " + " | ".join(sets) + " | mean |\n"
    text += "|---" * (len(sets) + 2) + "|\n"
    for s in rows:
        vals = [cell[(s, o)] for o in sets]
        text += f"| {s} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |\n"
    return text


def _fmt(v):
    return f"{v:.6f}" if isinstance(v, float) and math.isfinite(v) else v


def plot_histograms(path: Path, s_in: torch.Tensor, outs: dict, title: str, units: str) -> None:
    """Step histograms of the in-distribution scores and of each OOD set's, on common bins over a window
    around the in-distribution scores (their 0.5%..99.5% quantile range w, from 1 w below to 2 w above,
    within the range of all scores), where the sets overlap; the legend says what share of each set lies
    beyond the window."""
    every = torch.cat([s_in] + list(outs.values())).numpy()
    q_lo, q_hi = np.quantile(s_in.numpy(), [0.005, 0.995])
    w = max(q_hi - q_lo, 1e-6)
    lo, hi = max(q_lo - w, every.min()), min(q_hi + 2 * w, every.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 41)
    fig, ax = subplots(figsize=(7, 4), layout="constrained")
    for i, (name, v) in enumerate([("in: test split", s_in)] + list(outs.items())):
        v = v.numpy()
        inside = (v >= lo) & (v <= hi)
        label = f"{name} (n={len(v)}" + (f", {1 - inside.mean():.0%} beyond" if not inside.all() else "") + ")"
        ax.hist(v[inside], bins=bins, weights=np.full(int(inside.sum()), 1 / (len(v) * (bins[1] - bins[0]))),
                histtype="stepfilled" if i == 0 else "step", alpha=0.35 if i == 0 else 1.0, linewidth=1.4,
                color="k" if i == 0 else None, label=label)
    ax.set_xlabel(f"score ({units})")
    ax.set_ylabel("density (share of the set per unit)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
