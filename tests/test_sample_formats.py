"""``deepgen sample --out``: the format is the extension, checked before anything is sampled or
written; column names come from the training CSV's header (``DataSpec.features``); training on
3..16-D vectors writes the pair plot it claims."""

from __future__ import annotations

import contextlib
import csv
import io

import numpy as np
import pytest

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.sample import sample_run
from deepgen.workflows.train import train

NAMES = ["alpha", "beta", "gamma"]
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}
TINY = {"model": "realnvp", "steps": 4, "eval_every": 2, "batch_size": 32, "warmup_steps": 1, "progress": False,
        "model_params": {"couplings": 2, "hidden": 8}}


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Two headed 3-D tables of the same numbers: plain.csv, and labelled.csv with a labels column
    'kind' between the features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).round(4).tolist()
    kind = rng.integers(0, 2, size=120).tolist()
    folder = tmp_path_factory.mktemp("data")
    plain = write_csv(folder / "plain.csv", [NAMES] + x)
    labelled = write_csv(folder / "labelled.csv",
                         [["alpha", "beta", "kind", "gamma"]] + [[a, b, k, c] for (a, b, c), k in zip(x, kind)])
    return plain, labelled


@pytest.fixture(scope="module")
def plain_run(tables, tmp_path_factory):
    """An unconditional run on the headed plain.csv, trained; with what train() printed on stderr."""
    out = tmp_path_factory.mktemp("plain")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train(TrainConfig.from_dict({**TINY, "data": str(tables[0])}), out, verbose=True)
    return out, err.getvalue()


@pytest.fixture(scope="module")
def labelled_run(tables, tmp_path_factory):
    """A class-conditional run on labelled.csv's 'kind' column."""
    out = tmp_path_factory.mktemp("labelled")
    train(TrainConfig.from_dict({**TINY, "data": str(tables[1]), "labels": "kind", "context": "label"}), out,
          verbose=False)
    return out


def saved_run(directory, shape, model="made"):
    """An untrained run directory (config.yaml + weights) for data of ``shape``, no training data."""
    return save_model(build_model(model, DataSpec("v", shape), {"hidden": 8}), directory)


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# --------------------------------------------------------------------------- where names come from


def test_csv_header_names_the_features_not_the_labels_column(tables):
    plain, labelled = map(str, tables)
    assert load_data(plain).spec.features == tuple(NAMES)
    assert load_data(labelled, labels="kind").spec.features == tuple(NAMES)
    assert load_data(labelled, labels="col:2").spec.features == tuple(NAMES)
    assert load_data(labelled, labels="none").spec.features == ("alpha", "beta", "kind", "gamma")


def test_csv_without_header_has_no_feature_names(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("1,2,3\n4,5,6\n7,8,9\n1,1,1\n")
    spec = load_data(str(path)).spec
    assert spec.features is None and spec.feature_names == ("x0", "x1", "x2")


def test_spec_features_round_trip_and_old_dicts_still_load():
    spec = DataSpec("t.csv", (3,), None, "d", features=["a", "b", "c"])
    assert spec.features == ("a", "b", "c") and hash(spec) == hash(DataSpec.from_dict(spec.to_dict()))
    assert DataSpec.from_dict(spec.to_dict()) == spec
    old = {"name": "t.csv", "shape": [3], "levels": None, "description": "d"}
    assert DataSpec.from_dict(old) == DataSpec("t.csv", (3,), None, "d")
    assert "features" not in DataSpec("t", (3,)).to_dict()
    with pytest.raises(DataError, match="feature names"):
        DataSpec("t", (3,), features=("a", "b"))
    with pytest.raises(DataError, match="malformed"):
        DataSpec.from_dict({**old, "features": "abc"})


def test_run_remembers_the_feature_names(plain_run):
    assert load_model(plain_run[0]).spec.features == tuple(NAMES)


# --------------------------------------------------------------------------- arrays


def test_npy_npz_csv_hold_the_same_samples(plain_run, tmp_path):
    run = plain_run[0]
    assert sample_run(run, 7, tmp_path / "s.npy") == [str(tmp_path / "s.npy")]
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (7, 3) and arr.dtype == np.float32 and np.isfinite(arr).all()
    sample_run(run, 7, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        assert z.files == ["samples"] and np.array_equal(z["samples"], arr)
    sample_run(run, 7, tmp_path / "s.csv")
    header, rows = read_table(tmp_path / "s.csv")
    assert header == NAMES and len(rows) == 7
    assert np.array_equal(np.array(rows, dtype=np.float64).astype(np.float32), arr)  # every digit of float32


def test_conditional_run_writes_labels(labelled_run, tmp_path):
    sample_run(labelled_run, 9, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == ["labels", "samples"]
        assert z["samples"].shape == (9, 3) and z["labels"].shape == (9,) and set(z["labels"]) <= {0, 1}
    sample_run(labelled_run, 5, tmp_path / "one.csv", label="1")
    header, rows = read_table(tmp_path / "one.csv")
    assert header == ["label", *NAMES] and [r[0] for r in rows] == ["1"] * 5


def test_csv_without_names_and_more_than_16_features(tmp_path):
    run = saved_run(tmp_path / "run", (17,))
    sample_run(run, 4, tmp_path / "s.csv")
    header, rows = read_table(tmp_path / "s.csv")
    assert header == [f"x{i}" for i in range(17)] and len(rows) == 4


# --------------------------------------------------------------------------- pictures


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_pair_plot_in_the_format_of_the_extension(plain_run, tmp_path, suffix):
    out = tmp_path / f"pairs{suffix}"
    assert sample_run(plain_run[0], 50, out) == [str(out)]
    head = out.read_bytes()[:400]
    assert head.startswith(MAGIC[suffix]) if suffix in MAGIC else b"<svg" in head
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_npy_flag_writes_the_array_beside_the_picture(plain_run, tmp_path):
    paths = sample_run(plain_run[0], 20, tmp_path / "p.png", npy=True)
    assert paths == [str(tmp_path / "p.png"), str(tmp_path / "p.npy")]
    assert np.load(tmp_path / "p.npy").shape == (20, 3)


@pytest.mark.parametrize("name", ["m.cvs", "m", "m.jpg", "m.png.txt"])
def test_unknown_or_missing_extension_is_refused_and_nothing_is_written(plain_run, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError) as err:
        sample_run(plain_run[0], 5, out / name, npy=True)
    message = str(err.value)
    assert "\n" not in message and f"--out {out / name}" in message
    for ext in (".npy", ".npz", ".csv", ".png", ".pdf", ".svg"):
        assert ext in message
    assert list(out.iterdir()) == []


def test_more_than_16_features_as_a_picture_is_refused_before_writing(tmp_path):
    run = saved_run(tmp_path / "run", (17,))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"17-dim.*\.npy.*\.csv"):
        sample_run(run, 5, out / "x.png", npy=True)
    assert not out.exists()


def test_label_errors_come_before_writing(plain_run, labelled_run, tmp_path):
    with pytest.raises(ConfigError, match="not class-conditional"):
        sample_run(plain_run[0], 5, tmp_path / "a.csv", label="1")
    with pytest.raises(ConfigError, match="not a class"):
        sample_run(labelled_run, 5, tmp_path / "b.png", label="7", npy=True)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- training report


def test_training_on_3d_vectors_writes_the_pair_plot_it_claims(plain_run):
    run, stderr = plain_run
    wrote = [line for line in stderr.splitlines() if line.startswith(f"wrote {run}/:")]
    assert len(wrote) == 1 and "samples.png" in wrote[0].split()
    for name in wrote[0].split(":", 1)[1].split():
        assert (run / name.rstrip("/")).exists(), name
    assert (run / "samples.png").read_bytes().startswith(MAGIC[".png"])


def test_training_on_17d_vectors_claims_no_samples_png(tmp_path):
    path = tmp_path / "d17.npy"
    np.save(path, np.random.default_rng(0).normal(size=(60, 17)).astype(np.float32))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train(TrainConfig.from_dict({**TINY, "model": "made", "data": str(path), "steps": 2, "batch_size": 16,
                                     "model_params": {"hidden": 8}}), tmp_path / "run", verbose=True)
    wrote = [line for line in err.getvalue().splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 1 and "samples.png" not in wrote[0] and "training_curves.png" in wrote[0]
    assert not (tmp_path / "run" / "samples.png").exists()


def test_pictures_of_samples_without_training_data(tmp_path):
    """A run whose data cannot be loaded still gets its pair plot (samples only, with a warning)."""
    run = saved_run(tmp_path / "run", (3,))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        sample_run(run, 30, tmp_path / "p.png")
    assert (tmp_path / "p.png").is_file() and "samples only" in err.getvalue()
