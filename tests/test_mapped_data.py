"""Data larger than memory: a memory-mapped .npy file gives exactly the splits the in-memory path gives,
reads only the rows asked for, and keeps the loader's one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from deepgen.data import RowView, load_data, mapped, paths
from deepgen.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

NEVER = str(1 << 62)  # a threshold no file reaches: the in-memory path


def _load(path, monkeypatch, mapped_path: bool, **kwargs):
    monkeypatch.setenv("DEEPGEN_MEMMAP_BYTES", "0" if mapped_path else NEVER)
    return load_data(str(path), **kwargs)


@pytest.fixture
def vectors(tmp_path):
    """1000 float64 vectors of 3 features (float64: the float32 conversion happens on read)."""
    path = tmp_path / "vectors.npy"
    np.save(path, np.random.default_rng(0).normal(2.0, 5.0, (1000, 3)))
    return path


@pytest.mark.parametrize("layout", ["vectors", "nhwc", "nhw"])
def test_memmapped_splits_equal_in_memory_splits(tmp_path, monkeypatch, layout):
    rng = np.random.default_rng(1)
    a = {"vectors": rng.normal(size=(500, 4)).astype(np.float32),
         "nhwc": rng.integers(0, 256, (300, 5, 6, 3), dtype=np.uint8),
         "nhw": rng.integers(0, 256, (300, 5, 6), dtype=np.uint8)}[layout]
    path = tmp_path / f"{layout}.npy"
    np.save(path, a)
    np.save(tmp_path / "y.npy", rng.integers(0, 3, len(a)))
    m = _load(path, monkeypatch, True, labels=str(tmp_path / "y.npy"))
    t = _load(path, monkeypatch, False, labels=str(tmp_path / "y.npy"))
    assert m.spec == t.spec
    for s in ("train", "val", "test"):
        view, tensor = m.split(s), t.split(s)
        assert isinstance(view, RowView) and isinstance(tensor, torch.Tensor)
        assert view.shape == tensor.shape and len(view) == len(tensor) and view.dtype == tensor.dtype
        whole = view[:]
        assert whole.dtype == torch.float32 and whole.is_contiguous() and torch.equal(whole, tensor)
        assert torch.equal(m.split_labels(s), t.split_labels(s))


def test_indexing_a_view_is_indexing_the_tensor(vectors, monkeypatch):
    view, tensor = _load(vectors, monkeypatch, True).train, _load(vectors, monkeypatch, False).train
    n = len(tensor)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(-n, n, (97,), generator=g)  # random order, repeats, negative positions
    mask = torch.rand(n, generator=g) < 0.3
    for key in (idx, idx.numpy(), idx.tolist(), mask, slice(None), slice(5, 90), slice(-40, None),
                slice(3, 500, 7), slice(10, 2), 0, -1, 123, (idx, slice(1, 3)), (slice(2, 40), 0), (7, 2)):
        got, want = view[key], tensor[key]
        assert got.dtype == torch.float32 and got.is_contiguous(), key
        assert torch.equal(got, want), key
    # a view of rows of a view is the same rows (nothing read until indexed)
    sub = view.rows(idx)
    assert isinstance(sub, RowView) and torch.equal(sub[:], tensor[idx]) and torch.equal(sub[3:9], tensor[idx][3:9])
    assert torch.equal(mapped.take_rows(view, mask)[:], mapped.take_rows(tensor, mask))
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            view[bad]
        with pytest.raises(IndexError):
            view[torch.tensor([0, bad])]


def test_whole_split_tensor_operations_agree_and_respect_the_memory_cap(vectors, monkeypatch):
    view, tensor = _load(vectors, monkeypatch, True).train, _load(vectors, monkeypatch, False).train
    assert torch.equal(view.mean(0), tensor.mean(0))  # a tensor method, on the gathered split
    assert torch.equal(torch.cat([view, tensor]), torch.cat([tensor, tensor]))  # a torch function
    assert torch.equal(tensor + view, 2 * tensor)
    assert np.array_equal(np.asarray(view), tensor.numpy())
    monkeypatch.setenv("DEEPGEN_MAX_DATA_BYTES", str(100 * 12))  # 100 rows of 3 float32
    assert torch.equal(view[:100], tensor[:100])  # batches still read
    with pytest.raises(DataError) as err:
        view.std(0)
    assert "\n" not in str(err.value) and "vectors.npy (train split)" in str(err.value) and "'std'" in str(err.value)


def test_chunked_checks_and_statistics(tmp_path, vectors, monkeypatch):
    """With chunks of a few rows: statistics as the tensor's, and the first non-finite example found."""
    monkeypatch.setattr(mapped, "CHUNK_BYTES", 7 * 12)
    from deepgen.models.registry import build_model

    m, t = _load(vectors, monkeypatch, True), _load(vectors, monkeypatch, False)
    a, b = build_model("realnvp", m.spec, {}), build_model("realnvp", t.spec, {})
    a.fit_preprocessing(m.train)
    b.fit_preprocessing(t.train)
    assert torch.allclose(a.data_loc, b.data_loc, rtol=1e-6, atol=1e-6)
    assert torch.allclose(a.data_scale, b.data_scale, rtol=1e-6)
    images = torch.from_numpy(np.random.default_rng(2).normal(size=(50, 3, 4, 4)).astype(np.float32))
    view = RowView(images.numpy())
    for got, want in zip(mapped.data_moments(view, (0, 2, 3), images), mapped.data_moments(images, (0, 2, 3), images)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    # the log-likelihood of a split, batch by batch, is the same on either path
    from deepgen.evaluation.likelihood import per_example_log_prob

    assert torch.equal(per_example_log_prob(b, m.test, batch_size=33), per_example_log_prob(b, t.test, batch_size=33))

    a = np.load(vectors)
    a[613, 1] = np.nan
    np.save(tmp_path / "nan.npy", a)
    errors = []
    for mapped_path in (True, False):
        with pytest.raises(DataError) as err:
            _load(tmp_path / "nan.npy", monkeypatch, mapped_path)
        errors.append(str(err.value))
    assert errors[0] == errors[1] and "first at example 613" in errors[0] and "\n" not in errors[0]


def test_bad_files_keep_their_one_line_errors_when_mapped(tmp_path, monkeypatch):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "full.npy", np.zeros((100, 2), np.float32))
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:-9])
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\xff\xffnot a header")
    for name, says in (("objects.npy", "pickled"), ("truncated.npy", "truncated"), ("junk.npy", "header")):
        with pytest.raises(DataError) as err:
            _load(tmp_path / name, monkeypatch, True)
        assert says in str(err.value) and name in str(err.value) and "\n" not in str(err.value), str(err.value)
    # the memory cap refuses reading a file, not mapping it
    monkeypatch.setenv("DEEPGEN_MAX_DATA_BYTES", "400")
    assert len(_load(tmp_path / "full.npy", monkeypatch, True).train) == 80
    with pytest.raises(DataError, match="half this machine's memory"):
        _load(tmp_path / "full.npy", monkeypatch, False)


def test_default_threshold_maps_only_large_files(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPGEN_MEMMAP_BYTES", raising=False)
    monkeypatch.setattr(paths, "MEMMAP_BYTES", 4000)
    np.save(tmp_path / "small.npy", np.zeros((100, 2), np.float32))  # 800 bytes of data
    np.save(tmp_path / "large.npy", np.zeros((1000, 2), np.float32))  # 8000 bytes
    np.savez(tmp_path / "large.npz", x=np.zeros((1000, 2), np.float32))  # archives are always read
    assert isinstance(load_data(str(tmp_path / "small.npy")).train, torch.Tensor)
    assert isinstance(load_data(str(tmp_path / "large.npy")).train, RowView)
    assert isinstance(load_data(str(tmp_path / "large.npz")).train, torch.Tensor)


def test_training_on_a_mapped_file_gives_the_in_memory_figures(tmp_path, monkeypatch):
    """``deepgen train`` end to end on both paths: same splits, statistics to float32 rounding, so the same
    test NLL to ~1e-5."""
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    path = tmp_path / "moons.npy"
    rng = np.random.default_rng(3)
    np.save(path, (rng.normal(size=(3000, 2)) * [1.0, 3.0] + [5.0, -1.0]).astype(np.float32))
    scores = {}
    for mapped_path in (True, False):
        monkeypatch.setenv("DEEPGEN_MEMMAP_BYTES", "0" if mapped_path else NEVER)
        cfg = TrainConfig(model="realnvp", data=str(path), steps=4, batch_size=64, eval_every=4,
                          model_params={"couplings": 2, "hidden": 8})
        scores[mapped_path] = train(cfg, tmp_path / f"run_{mapped_path}")
    assert scores[True]["n"] == scores[False]["n"] == 300
    assert scores[True]["nll_nats"] == pytest.approx(scores[False]["nll_nats"], rel=1e-5)


_CHILD = r"""
import json, sys, threading, time
import torch
from deepgen.data import RowView, load_data
from deepgen.models.registry import build_model
from deepgen.evaluation.likelihood import per_example_log_prob

def anon_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("RssAnon")) / 1024
before, peak = anon_mb(), [0.0]
def sample():
    while True:
        peak[0] = max(peak[0], anon_mb())
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
splits = load_data(sys.argv[1])
model = build_model("realnvp", splits.spec, {"couplings": 2, "hidden": 8})
model.fit_preprocessing(splits.train)
g = torch.Generator().manual_seed(0)
for _ in range(20):
    batch = splits.train[torch.randint(0, len(splits.train), (4096,), generator=g)]
per_example_log_prob(model, splits.test[:20000])
time.sleep(0.05)
print(json.dumps({"mapped": isinstance(splits.train, RowView), "anon_growth_mb": max(peak[0], anon_mb()) - before}))
"""


@pytest.mark.slow
def test_a_large_mapped_file_stays_out_of_memory(tmp_path):
    """A child loads a 240 MB file (3e7 x 2 float32), fits the statistics, reads batches and scores some of the
    test split: its anonymous memory (sampled every 10 ms; the map's pages are file-backed) grows by the int32 row
    numbers (120 MB) and chunks, less than the data themselves (the in-memory path: 690 MB)."""
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(30_000_000, 2))
    for start in range(0, len(out), 5_000_000):
        out[start:start + 5_000_000] = np.random.default_rng(start).normal(size=(5_000_000, 2))
    out.flush()
    del out
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DEEPGEN_MEMMAP_BYTES", None)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["mapped"]
    assert got["anon_growth_mb"] < 240, got  # less than the data alone (measured: 165-200 MB)
