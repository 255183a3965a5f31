"""Users' files: round trips of every format, and a one-line DataError for every bad input."""

import gzip
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from deepgen.data.files import load_file
from deepgen.errors import DataError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def write_idx(path, a, gz=False):
    """Our own IDX writer: 0x00 0x00 type ndim, big-endian uint32 dims, big-endian data."""
    a = np.asarray(a)
    header = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim]) + np.array(a.shape, ">u4").tobytes()
    data = header + a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def raises(path, *words):
    """load_file(path) raises a one-line DataError naming the file and containing ``words``."""
    with pytest.raises(DataError) as info:
        load_file(str(path))
    msg = str(info.value)
    assert "\n" not in msg
    assert os.path.basename(os.path.normpath(str(path).split(":", 1)[-1])) in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert info.value.__cause__ is None
    return msg


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 6, 4), dtype=np.uint8)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_ubyte_images_round_trip(tmp_path, images, gz):
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    x, spec = load_file(str(write_idx(tmp_path / name, images, gz)))
    assert x.dtype == torch.float32 and x.shape == (5, 1, 6, 4)
    assert torch.equal(x[:, 0], torch.from_numpy(images).float())
    assert spec.levels == 256 and spec.shape == (1, 6, 4) and spec.name == name
    assert "N=5" in spec.description and "256 levels" in spec.description


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_idx_wide_types_are_big_endian(tmp_path, dtype):
    a = (np.arange(12).reshape(3, 4) * 300 - 1000).astype(dtype)
    x, spec = load_file("idx:" + str(write_idx(tmp_path / "vectors.bin", a)))
    assert torch.equal(x, torch.from_numpy(a.astype(np.float32)))
    assert spec.shape == (4,) and spec.levels is None


def test_idx_truncated(tmp_path, images):
    p = write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    p.write_bytes(p.read_bytes()[:-7])
    raises(p, "truncated", "expected")
    p.write_bytes(p.read_bytes()[:10])  # inside the header
    raises(p, "truncated", "header")


def test_idx_truncated_gzip(tmp_path, images):
    p = write_idx(tmp_path / "images.gz", images, gz=True)
    p.write_bytes(p.read_bytes()[:-20])
    raises(p, "gzip", "expected")


def test_idx_trailing_bytes(tmp_path, images):
    p = write_idx(tmp_path / "images-ubyte", images)
    p.write_bytes(p.read_bytes() + b"\0\0")
    raises(p, "longer", "expected")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_idx_wrong_magic(tmp_path, images, magic):
    p = write_idx(tmp_path / "images.idx3", images)
    p.write_bytes(magic + p.read_bytes()[4:])
    raises(p, "magic", "expected")


def test_idx_label_file(tmp_path):
    p = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8), gz=True)
    raises(p, "label file", "expected")


# ----------------------------------------------------------------------------- npy / npz


@pytest.mark.parametrize(
    "shape,expect",
    [((5, 3), (3,)), ((5, 6, 4), (1, 6, 4)), ((5, 3, 6, 4), (3, 6, 4)), ((5, 1, 6, 4), (1, 6, 4))],
)
def test_npy_layouts_uint8(tmp_path, shape, expect):
    a = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    x, spec = load_file(str(tmp_path / "a.npy"))
    assert spec.shape == expect and spec.levels == 256 and spec.name == "a.npy"
    assert torch.equal(x.reshape(a.shape), torch.from_numpy(a).float())


def test_npy_channels_last_is_transposed(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, size=(4, 6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", a)
    x, spec = load_file(str(tmp_path / "rgb.npy"))
    assert spec.shape == (3, 6, 5)
    assert torch.equal(x, torch.from_numpy(a).permute(0, 3, 1, 2).float())


@pytest.mark.parametrize(
    "a,levels",
    [
        (np.ones((4, 3), dtype=np.float64) * 0.5, None),
        (np.arange(12, dtype=np.int64).reshape(4, 3), None),  # integer vectors: continuous
        (np.arange(48, dtype=np.int64).reshape(3, 4, 4), 48),  # integer images: max + 1
        (np.arange(-24, 24, dtype=np.int32).reshape(3, 4, 4), None),  # negative: continuous
        (np.eye(4, dtype=bool)[:, None].repeat(2, 0).reshape(8, 4)[:, :, None].repeat(2, 2), 2),
    ],
)
def test_npy_levels(tmp_path, a, levels):
    np.save(tmp_path / "a.npy", a)
    x, spec = load_file("npy:" + str(tmp_path / "a.npy"))
    assert spec.levels == levels
    assert torch.equal(x.flatten(), torch.from_numpy(a.astype(np.float32)).flatten())


def test_npz_keys(tmp_path):
    a = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    np.savez(tmp_path / "only.npz", whatever=a)
    np.savez(tmp_path / "named.npz", labels=np.arange(6), x=a)
    np.savez(tmp_path / "plain.npz", a)
    for f in ("only.npz", "named.npz", "plain.npz"):
        x, spec = load_file(str(tmp_path / f))
        assert torch.equal(x, torch.from_numpy(a)) and spec.levels is None and spec.name == f
    x, _ = load_file(str(tmp_path / "named.npz") + ":x")
    assert torch.equal(x, torch.from_numpy(a))
    np.savez(tmp_path / "ambiguous.npz", foo=a, bar=a)
    raises(tmp_path / "ambiguous.npz", "foo", "bar", "expected")
    np.savez(tmp_path / "empty.npz")
    raises(tmp_path / "empty.npz", "no arrays", "expected")


class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_pickled_objects_are_refused_not_run(tmp_path, fmt):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control))).close()
    assert control.exists()  # the payload is live

    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    path = tmp_path / f"evil.{fmt}"
    if fmt == "npy":
        np.save(path, evil, allow_pickle=True)
    else:
        np.savez(path, x=evil)
    raises(path, "pickle", "expected")
    assert not marker.exists()
    with open(tmp_path / "raw.npy", "wb") as f:  # a bare pickle named .npy
        pickle.dump(_Payload(marker), f)
    raises(tmp_path / "raw.npy", "not a .npy", "expected")
    assert not marker.exists()


def test_npy_bad_contents(tmp_path):
    a = np.ones((4, 3), dtype=np.float32)
    a[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", a)
    raises(tmp_path / "nan.npy", "NaN", "example 2")
    np.save(tmp_path / "huge.npy", np.full((2, 2), 1e300))  # overflows float32
    raises(tmp_path / "huge.npy", "infinite")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), dtype=np.float32))
    raises(tmp_path / "empty.npy", "empty", "expected")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    raises(tmp_path / "flat.npy", "1-D", "expected")
    np.save(tmp_path / "five.npy", np.zeros((2, 2, 2, 2, 2)))
    raises(tmp_path / "five.npy", "5-D", "expected")
    np.save(tmp_path / "chan.npy", np.zeros((2, 5, 5, 5)))
    raises(tmp_path / "chan.npy", "expected (N, C, H, W)")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    raises(tmp_path / "text.npy", "dtype", "expected a numeric")
    np.save(tmp_path / "cplx.npy", np.ones((2, 2), dtype=complex))
    raises(tmp_path / "cplx.npy", "dtype", "expected a numeric")
    good = (tmp_path / "text.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(good[: len(good) - 3])
    raises(tmp_path / "cut.npy", "expected")


# ----------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("header", [True, False])
def test_csv_round_trip(tmp_path, header):
    a = np.array([[1.5, -2.0, 3.0], [0.0, 1e-3, 4.25], [7.0, 8.0, -9.5]])
    lines = (["a,b,c"] if header else []) + [", ".join(repr(float(v)) for v in row) for row in a] + [""]
    (tmp_path / "t.csv").write_text("\n".join(lines))
    x, spec = load_file(str(tmp_path / "t.csv"))
    assert x.dtype == torch.float32 and spec.shape == (3,) and spec.levels is None and spec.name == "t.csv"
    assert torch.equal(x, torch.from_numpy(a).float())


def test_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("x,y\n1,2\n3,4\n5,6,7\n")
    raises(p, "line 4", "3 fields", "expected 2")
    p.write_text("x,y\n1,2\n3,abc\n")
    raises(p, "line 3", "column 2", "'abc'", "not a number")
    p.write_text("1,2\n3,\n")
    raises(p, "line 2", "column 2", "not a number")
    p.write_text("1,2\ninf,4\n")
    raises(p, "infinite")
    p.write_text("x,y\n")
    raises(p, "empty", "expected")
    p.write_bytes(b"1,2\n\xff\xfe,3\n")
    raises(p, "UTF-8", "expected")


# ----------------------------------------------------------------------------- image folders


def _save(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def test_image_folder_grey_round_trip(tmp_path, images):
    root = tmp_path / "digits"
    names = ["b/2.png", "a/1.png", "0.png", "c/3.bmp", "c/4.PNG"]  # sorted: 0, a/1, b/2, c/3, c/4
    for name, img in zip(names, [images[2], images[1], images[0], images[3], images[4]]):
        _save(root / name, img, "PNG" if name.endswith("PNG") else None)
    (root / "notes.txt").write_text("ignored")
    x, spec = load_file(str(root) + "/")
    assert spec.shape == (1, 6, 4) and spec.levels == 256 and spec.name == "digits"
    assert torch.equal(x[:, 0], torch.from_numpy(images).float())


def test_image_folder_rgb_and_mixed(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)
    _save(tmp_path / "imgs" / "0.png", rgb[0])
    _save(tmp_path / "imgs" / "1.png", rgb[1])
    _save(tmp_path / "imgs" / "2.png", grey)
    x, spec = load_file("images:" + str(tmp_path / "imgs"))
    assert spec.shape == (3, 5, 7) and spec.levels == 256
    assert torch.equal(x[:2], torch.from_numpy(rgb).permute(0, 3, 1, 2).float())
    assert torch.equal(x[2], torch.from_numpy(grey).float().expand(3, 5, 7))


def test_image_folder_errors(tmp_path, images):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    raises(tmp_path / "empty", "no image files", "empty")

    _save(tmp_path / "mixed" / "a.png", images[0])
    _save(tmp_path / "mixed" / "b.png", np.zeros((3, 3), dtype=np.uint8))
    msg = raises(tmp_path / "mixed", "3x3", "4x6", "same size")
    assert "b.png: " in msg and "a.png" in msg

    big = np.random.default_rng(5).integers(0, 256, size=(64, 64), dtype=np.uint8)
    _save(tmp_path / "corrupt" / "a.png", big)
    good = (tmp_path / "corrupt" / "a.png").read_bytes()
    for cut in (40, len(good) // 2):  # header cut; header fine but pixels cut
        (tmp_path / "corrupt" / "b.png").write_bytes(good[:cut])
        with pytest.raises(DataError, match=r"b\.png.*cannot read image.*expected"):
            load_file(str(tmp_path / "corrupt"))
    (tmp_path / "corrupt" / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"b\.png.*cannot read image.*expected"):
        load_file(str(tmp_path / "corrupt"))


# ----------------------------------------------------------------------------- paths


def test_missing_and_unknown_paths(tmp_path):
    raises(tmp_path / "nope.npy", "no such file", "expected")
    raises(tmp_path / "nope.npz:x", "no such file")
    (tmp_path / "data.txt").write_text("1,2\n")
    raises(tmp_path / "data.txt", "cannot tell the format", "csv:")
    x, _ = load_file("csv:" + str(tmp_path / "data.txt"))
    assert x.tolist() == [[1.0, 2.0]]
    (tmp_path / "dir.npy").mkdir()
    raises(tmp_path / "dir.npy", "directory", "expected")
    raises("npy:" + str(tmp_path / "data.txt"), "not a .npy", "expected")
    np.savez(tmp_path / "k.npz", x=np.ones((2, 2)))
    raises(str(tmp_path / "k.npz") + ":y", "no key 'y'", "['x']")


def test_a_file_parsed_ahead_is_loaded_from_that_parse_unless_it_changed(tmp_path, monkeypatch):
    """The config check parses a user's file before torch loads (its errors come at once); the run's load then
    takes that parse, once, and parses again when the file changed in between."""
    import deepgen.data.file_labels as fl

    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,cat\n3,4,dog\n5,6,cat\n")
    calls = []
    real = fl.parse_labelled_file
    monkeypatch.setattr(fl, "parse_labelled_file", lambda *a: calls.append(a) or real(*a))
    fl.preparse(str(path), "y")
    x, spec, labels = fl.load_labelled_file(str(path), "y")
    assert len(calls) == 1 and x.dtype == torch.float32 and x.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert labels.ids.dtype == torch.int64 and labels.ids.tolist() == [0, 1, 0] and labels.classes == ("cat", "dog")
    fl.load_labelled_file(str(path), "y")  # nothing kept any more: parsed again
    assert len(calls) == 2
    fl.preparse(str(path), "y")
    path.write_text("a,b,y\n7,8,cat\n9,10,dog\n")
    os.utime(path, ns=(1, 1))  # a different age, whatever the file system's clock resolution
    x, _, _ = fl.load_labelled_file(str(path), "y")
    assert len(calls) == 4 and x.tolist() == [[7, 8], [9, 10]]
