"""Datasets: built-in (2-D toys, digits, blobs, translation tasks) and users' own files, with class labels.

``load_data(name_or_path, labels=None)`` returns fixed :class:`Splits`;
``list_datasets()`` names the built-in ones.  A user's file is split 80/10/10
with a fixed seed, the same permutation applied to its labels.  A large .npy file is memory-mapped:
its splits are :class:`~deepgen.data.mapped.RowView` s of the file's rows (see :mod:`deepgen.data.mapped`).  Where a user's
file keeps its labels is the ``labels`` argument (see
:mod:`deepgen.data.file_labels`); the label rules are in :mod:`deepgen.data.labels`.

Translation data (``Splits.translation`` set: the splits are domain B, ``translation.source`` domain A):
the built-in tasks of :mod:`deepgen.data.translation` and users' ``aligned:PATH`` / ``unaligned:PATH``
folders (or a PATH with ``trainA/`` and ``trainB/``), see :mod:`deepgen.data.translation_files`.
"""

# The names below load on first use, so the torch-free modules of this package (deepgen.data.paths)
# can be imported without torch.
_EXPORTS = {
    "DataSpec": "deepgen.data.spec", "Splits": "deepgen.data.spec", "Translation": "deepgen.data.spec",
    "Labels": "deepgen.data.labels", "RowView": "deepgen.data.mapped",
    "load_data": "deepgen.data.loading", "list_datasets": "deepgen.data.loading",
    "is_file_source": "deepgen.data.paths",
}
__all__ = ["DataSpec", "Splits", "Translation", "Labels", "RowView", "load_data", "list_datasets"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepgen.data' has no attribute {name!r}")
