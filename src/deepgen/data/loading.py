"""Loading datasets by name or path (the body of :mod:`deepgen.data`; see its docstring)."""


from __future__ import annotations

import dataclasses

from deepgen.data.labels import NO_LABELS, label_summary
from deepgen.data.mapped import RowView, take_rows
from deepgen.data.spec import SPLITS, Splits, split_fixed, validate_array
from deepgen.data.paths import is_file_source
from deepgen.errors import DataError, unknown_name


_DIGITS = ("digits", "digits-binary")


def list_datasets() -> dict[str, str]:
    """Built-in dataset name -> one-line description (with the number of classes where labelled),
    and the unnormalised targets ``energy-u1`` .. ``energy-u4`` for variational inference."""
    from deepgen.data.blobs import DESCRIPTION as BLOBS
    from deepgen.data.digits import DESCRIPTIONS
    from deepgen.data.energy import TARGETS
    from deepgen.data.toy2d import TOY_DATASETS
    from deepgen.data.translation import TASKS

    return {**TOY_DATASETS, **DESCRIPTIONS, "blobs": BLOBS, **TASKS,
            **{k: t.spec.description for k, t in TARGETS.items()}}


def load_data(name: str, labels: str | None = None) -> Splits:
    """Load a built-in dataset by name, or a user's file / folder by path, with its class labels.

    ``labels`` (users' files only): an IDX label file, an .npz key, a .npy file, a
    CSV column name or ``col:K``, or ``"folders"``; None detects labels where the
    format allows; ``"none"`` loads no labels (also for built-in datasets).
    Translation folders (``aligned:``, ``unaligned:``, ``trainA/ trainB/``) carry no labels.
    """
    if labels is not None and not isinstance(labels, str):
        raise DataError(f"labels {labels!r}: expected a string (a label file, .npz key, CSV column or 'folders')")
    from deepgen.data.energy import is_target

    if is_target(name):
        raise DataError(f"'{name}' is an unnormalised target exp(-U) for variational inference: it has no samples "
                        f"to load or score likelihoods on; fit a flow to it (deepgen train --model planar --data "
                        f"{name}) and score that run")
    builtin = _load_builtin(name)
    if builtin is not None:
        return _builtin_labels(builtin, labels)
    if is_file_source(name):
        from deepgen.data.file_labels import load_labelled_file
        from deepgen.data.translation_files import load_translation_files, translation_source

        if translation_source(name) is not None:
            if labels not in (None, NO_LABELS):
                raise DataError(f"labels '{labels}': translation data {name} carry no class labels; expected no "
                                f"labels (or load one folder as plain images with 'images:PATH')")
            return load_translation_files(name)

        x, spec, found = load_labelled_file(name, labels)
        if not isinstance(x, RowView):  # a memory-mapped file was checked chunk by chunk as it was opened
            x = validate_array(x, spec, name)
        parts = split_fixed(x)
        splits = {s: take_rows(x, p, name=f"{spec.name} ({s} split)") for s, p in zip(SPLITS, parts)}
        if found is None:
            return Splits(spec, **splits)
        return Splits(spec, **splits, labels={s: found.ids[p] for s, p in zip(SPLITS, parts)},
                      classes=found.classes)
    raise unknown_name("dataset", name, list_datasets())


def _load_builtin(name: str) -> Splits | None:
    """The built-in dataset ``name``, or None if there is none of that name."""
    if name in _DIGITS:
        from deepgen.data.digits import load_digits_images

        return load_digits_images(binary=name == "digits-binary")
    if name == "blobs":
        from deepgen.data.blobs import load_blobs

        return load_blobs()
    from deepgen.data.translation import TASKS, load_translation_task

    if name in TASKS:
        return load_translation_task(name)
    from deepgen.data.toy2d import TOY_DATASETS, load_toy

    return load_toy(name) if name in TOY_DATASETS else None


def _builtin_labels(splits: Splits, labels: str | None) -> Splits:
    """A built-in dataset keeps its own labels; ``labels="none"`` drops them, anything else is an error."""
    name = splits.spec.name
    if labels is None:
        return splits
    if labels == NO_LABELS:
        tr = splits.translation
        return Splits(splits.spec, splits.train, splits.val, splits.test, factors=splits.factors,
                      factor_names=splits.factor_names,
                      translation=None if tr is None else dataclasses.replace(tr, source_labels={}))
    if splits.has_labels:
        raise DataError(f"labels '{labels}': built-in dataset '{name}' already carries its class labels "
                        f"({label_summary(splits.classes)}); expected labels only for your own files "
                        f"(or '{NO_LABELS}' to drop them)")
    raise DataError(f"labels '{labels}': built-in dataset '{name}' has no class labels; expected labels "
                    "only for your own files (IDX, .npz, .npy, CSV, image folders)")
