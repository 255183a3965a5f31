"""``deepgen translate RUN --input FILES_OR_SPLIT --out DIR [--reverse]``: apply a trained translator.

``--input`` is a split name (``train``, ``val``, ``test``: that split's domain-A sources of the data the
run was trained on; with ``--reverse`` that split's domain-B examples) or a path in any format
:func:`deepgen.data.load_data` reads (every row of it, unsplit; ``./test`` for a file named like a
split), whose examples must have the run's shape and levels.  Writes, together (atomically):

* ``DIR/translated.npy``: the translations (N, *shape) on the data's scale, float32 (integer levels for
  discrete data), as ``deepgen sample`` writes arrays;
* ``DIR/translated.png``: up to :data:`MAX_PICTURE` inputs and their translations side by side (images;
  2-D points: both sets with a segment from each input to its translation; other vectors: no picture).

A -> B by default; ``--reverse`` maps B -> A, for models that map both ways (cyclegan).
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepgen.data import is_file_source, load_data
from deepgen.data.spec import SPLITS, validate_array
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.translation import can_reverse, plot_translation_pairs, translate_all, translation_of, translators
from deepgen.io import atomic_group
from deepgen.models.pretrained import load_model
from deepgen.workflows.runs import check_compatible, run_data_source
from deepgen.workflows.sample import write_arrays

MAX_PICTURE = 64
ARRAY_FILE, PICTURE_FILE = "translated.npy", "translated.png"


def input_examples(run, model, source: str, reverse: bool):
    """(examples, domain names (from, to)) of ``--input``: a split of the run's data or a file's rows."""
    if source in SPLITS:
        data, labels = run_data_source(run)
        splits = load_data(data, labels=labels)
        check_compatible(model.spec, splits.spec, data)
        if not model.can("translate"):  # a model that manipulates attributes: the split's own examples
            return splits.split(source), (splits.spec.name, splits.spec.name)
        tr = translation_of(splits)
        dom_a, dom_b = tr.domains
        if reverse:
            return splits.split(source), (dom_b, dom_a)
        return tr.source[source], (dom_a, dom_b)
    if not is_file_source(source):
        raise DataError(f"--input {source}: no such file or folder; expected a split (train, val, test) or a "
                        "path to examples (.npy, .npz, .csv, IDX, an image folder)")
    from deepgen.data.files import load_file

    x, _ = load_file(source)
    spec = model.spec
    x = validate_array(x, spec, f"--input {source} (run '{run}' takes {tuple(spec.shape)} examples with "
                                f"{'continuous values' if spec.levels is None else f'{spec.levels} levels'})")
    return x, (("B", "A") if reverse else ("A", "B"))


def translate_run(run, input: str, out, reverse: bool = False, seed: int = 0, settings: dict | None = None) -> dict:
    """Translate ``input`` (see the module docstring) with run ``run`` and write ``out``/translated.npy and
    ``out``/translated.png; returns a summary (n, direction, paths).  ``settings`` (``--set NAME=VALUE``):
    instead, set those attributes of the inputs (``model.manipulate``, e.g. puppet's ``angle``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a directory for {ARRAY_FILE} and {PICTURE_FILE}")
    model = load_model(run)
    if settings or (model.can("manipulate") and not model.can("translate")):
        return _manipulate_run(run, model, str(input), out, reverse, seed, settings or {})
    if not model.can("translate"):
        raise ConfigError(f"run '{run}': model {model.name} does not translate; models that do: "
                          f"{', '.join(translators())}")
    if reverse and not can_reverse(model):
        raise ConfigError(f"--reverse: model {model.name} (run '{run}') maps A -> B only; "
                          "cyclegan maps both ways")
    x, (src, dst) = input_examples(run, model, str(input), reverse)
    y = translate_all(model, x, reverse=reverse, seed=seed)
    arrays, picture = out / ARRAY_FILE, out / PICTURE_FILE
    out.mkdir(parents=True, exist_ok=True)
    k = min(len(x), MAX_PICTURE)
    title = (f"{model.name}: {src} -> {dst}, {k} of {len(x)} examples of {input}")
    with atomic_group():
        write_arrays(arrays, ".npy", y, model.spec, None)
        fig = plot_translation_pairs(x[:k], y[:k], picture, model.spec, title,
                                     names=(f"input ({src})", f"translation ({dst})"))
    return {"run": str(run), "input": str(input), "n": len(x), "direction": f"{src} -> {dst}",
            "reverse": bool(reverse), "seed": seed, "translated": str(arrays),
            "picture": str(picture) if fig is not None else None,
            "units": "the data's own scale" + ("" if model.spec.levels is None
                                               else f" (integer levels 0..{model.spec.levels - 1})")}


def _manipulate_run(run, model, input: str, out: Path, reverse: bool, seed: int, settings: dict) -> dict:
    """``deepgen translate RUN --set NAME=VALUE``: the inputs with attributes set (capability "manipulate")."""
    if not model.can("manipulate"):
        raise ConfigError(f"--set: model {model.name} (run '{run}') has no attributes to set; puppet has "
                          "(e.g. --set angle=30)")
    if not settings:
        raise ConfigError(f"model {model.name} (run '{run}') sets attributes: give --set NAME=VALUE, e.g. --set angle=30")
    if reverse:
        raise ConfigError("--reverse does not apply with --set")
    x, (src, _) = input_examples(run, model, input, False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        was = model.training
        model.eval()
        with torch.no_grad():
            y = model.manipulate(x, **settings)
        model.train(was)
    what = ", ".join(f"{k}={v}" for k, v in settings.items())
    arrays, picture = out / ARRAY_FILE, out / PICTURE_FILE
    out.mkdir(parents=True, exist_ok=True)
    k = min(len(x), MAX_PICTURE)
    with atomic_group():
        write_arrays(arrays, ".npy", y, model.spec, None)
        fig = plot_translation_pairs(x[:k], y[:k], picture, model.spec, f"{model.name}: {src} with {what}, {k} of "
                                     f"{len(x)} examples of {input}", names=(f"input ({src})", f"with {what}"))
    return {"run": str(run), "input": input, "n": len(x), "settings": dict(settings), "seed": seed,
            "translated": str(arrays), "picture": str(picture) if fig is not None else None,
            "units": "the data's own scale" + ("" if model.spec.levels is None
                                               else f" (integer levels 0..{model.spec.levels - 1})")}


__all__ = ["translate_run", "translators", "input_examples"]
