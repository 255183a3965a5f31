"""Class labels as data: built-in datasets, users' files (IDX, npz, npy, CSV, image folders), errors."""

import gzip
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from deepgen.data import list_datasets, load_data
from deepgen.data.files import load_file
from deepgen.data.labels import MAX_CLASSES, encode_labels
from deepgen.data.spec import DataSpec, Splits
from deepgen.data.toy2d import TOY_CLASSES
from deepgen.errors import DataError

SPLITS = ("train", "val", "test")
LABELLED_TOYS = [n for n, c in TOY_CLASSES.items() if c]


def write_idx(path, a, gz=False):
    """A minimal IDX writer: 0x00 0x00 type ndim, big-endian uint32 dims, big-endian data."""
    a = np.asarray(a)
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[a.dtype.type]
    header = bytes([0, 0, code, a.ndim]) + np.array(a.shape, ">u4").tobytes()
    data = header + a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fails(source, *words, labels=None, named=None):
    """load_data(source, labels) raises a one-line DataError naming the file (``named``) and ``words``."""
    with pytest.raises(DataError) as info:
        load_data(str(source), labels=labels)
    msg = str(info.value)
    assert "\n" not in msg and info.value.__cause__ is None
    assert os.path.basename(str(named or source)) in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


def assert_aligned(s: Splits, feature_of_label):
    """Every split: the labels travelled with their examples through the 80/10/10 permutation."""
    assert s.has_labels
    for split in SPLITS:
        x, y = s.split(split), s.split_labels(split)
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        names = [s.classes[i] for i in y.tolist()]
        assert x.reshape(len(x), -1)[:, 0].tolist() == [feature_of_label(n) for n in names]


@pytest.fixture
def labelled(tmp_path):
    """20 examples whose first feature encodes their label: labels 3, 7 or 9, feature = 10 * label."""
    y = np.array([3, 7, 9, 7] * 5, dtype=np.uint8)
    x = np.repeat((10 * y)[:, None, None], 4, 1).repeat(3, 2).astype(np.uint8)  # (20, 4, 3) images
    return x, y


# ----------------------------------------------------------------------------- built-in datasets


def test_digits_labels_classes_counts():
    from sklearn.datasets import load_digits

    d = load_digits()
    for name in ("digits", "digits-binary"):
        s = load_data(name)
        assert s.has_labels and s.num_classes == 10 and s.classes == tuple("0123456789")
        counts = s.class_counts()
        assert counts.dtype == torch.int64 and counts.shape == (10,) and counts.sum() == 1257 and counts.min() > 100
        assert torch.equal(counts, torch.bincount(s.split_labels("train"), minlength=10))
        for split in SPLITS:
            y = s.split_labels(split)
            assert y.dtype == torch.int64 and len(y) == len(s.split(split))
        # same fixed split as before labels existed: x and y are sklearn's images / targets at the permutation
        from deepgen.data.digits import _SPLIT_SEED

        perm = torch.randperm(1797, generator=torch.Generator().manual_seed(_SPLIT_SEED))
        parts = dict(zip(SPLITS, (perm[:1257], perm[1257:1527], perm[1527:])))
        images = torch.from_numpy(d.images.astype(np.float32)).unsqueeze(1)
        images = (images >= 8).float() if name == "digits-binary" else images
        for split, p in parts.items():
            assert torch.equal(s.split(split), images[p])
            assert torch.equal(s.split_labels(split), torch.from_numpy(d.target).long()[p])
        assert "10 classes" in s.spec.description and "10 classes" in list_datasets()[name]


@pytest.mark.parametrize("name", LABELLED_TOYS)
def test_toy_labels(name):
    s = load_data(name)
    k = len(TOY_CLASSES[name])
    assert s.has_labels and s.classes == TOY_CLASSES[name] and s.num_classes == k
    for split in SPLITS:
        y = s.split_labels(split)
        assert y.dtype == torch.int64 and y.shape == (len(s.split(split)),)
        assert y.min() == 0 and y.max() == k - 1
    counts = s.class_counts()
    assert counts.shape == (k,) and counts.sum() == 10000 and counts.min() > 0.8 * 10000 / k
    assert f"{k} classes" in list_datasets()[name] and f"{k} classes" in s.spec.description


def test_unlabelled_dataset_says_how_to_give_labels():
    s = load_data("swissroll")
    assert not s.has_labels and s.num_classes == 0 and s.classes == () and s.labels == {}
    assert "classes" not in list_datasets()["swissroll"]
    for call in (lambda: s.split_labels("train"), s.class_counts):
        with pytest.raises(DataError, match=r"'swissroll' has no class labels.*labels=.*folders") as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="unknown split"):
        s.split_labels("dev")


def test_labels_argument_for_builtin_datasets():
    fails("swissroll", "no class labels", "your own files", labels="y")
    fails("moons", "already carries", labels="y")
    assert not load_data("digits", labels="none").has_labels
    with pytest.raises(DataError, match="expected a string"):
        load_data("moons", labels=3)


def test_splits_check_their_labels():
    spec = DataSpec("t", (2,))
    x = torch.zeros(4, 2)
    y = torch.tensor([0, 1, 1, 0])
    ok = Splits(spec, x, x[:2], x[:2], labels={"train": y, "val": y[:2], "test": y[:2]}, classes=("a", "b"))
    assert ok.has_labels and ok.class_counts().tolist() == [2, 2]
    assert not Splits(spec, x, x, x, labels={"train": y}, classes=("a", "b")).has_labels
    for labels, classes, what in [
        ({"train": y}, (), "without class names"),
        ({"train": y.int()}, ("a", "b"), "expected int64"),
        ({"train": y[:3]}, ("a", "b"), "expected int64 of shape (4,)"),
        ({"train": y + 1}, ("a", "b"), "expected ids in 0..1"),
        ({"dev": y}, ("a", "b"), "unknown split"),
    ]:
        with pytest.raises(DataError, match=what.replace("(", r"\(").replace(")", r"\)")):
            Splits(spec, x, x, x, labels=labels, classes=classes)


def test_encode_labels_rules():
    ids, classes = encode_labels(np.array([10, -1, 2, 10]), "f")
    assert classes == ("-1", "2", "10") and ids.tolist() == [2, 0, 1, 2] and ids.dtype == torch.int64
    ids, classes = encode_labels(np.array([1.0, 0.0, 3.0]), "f")
    assert classes == ("0", "1", "3") and ids.tolist() == [1, 0, 2]
    ids, classes = encode_labels(np.array(["dog", "cat", "ant", "cat"]), "f")
    assert classes == ("ant", "cat", "dog") and ids.tolist() == [2, 1, 0, 1]
    assert encode_labels(np.array([True, False]), "f").classes == ("0", "1")
    with pytest.raises(DataError, match=r"f: label 0.5 of example 1 is not a whole number"):
        encode_labels(np.array([1.0, 0.5]), "f")
    with pytest.raises(DataError, match="not a whole number"):
        encode_labels(np.array([1.0, np.nan]), "f")
    with pytest.raises(DataError, match=f"1001 distinct.*at most {MAX_CLASSES}"):
        encode_labels(np.arange(1001), "f")
    with pytest.raises(DataError, match="expected a 1-D"):
        encode_labels(np.zeros((2, 2)), "f")
    with pytest.raises(DataError, match="dtype complex"):
        encode_labels(np.ones(2, dtype=complex), "f")


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_explicit_label_file(tmp_path, labelled, gz):
    x, y = labelled
    images = write_idx(tmp_path / "imgs.idx3", x, gz)
    labels = write_idx(tmp_path / ("lab.idx1" + (".gz" if gz else "")), y, gz)
    s = load_data(str(images), labels=str(labels))
    assert s.classes == ("3", "7", "9") and s.spec.shape == (1, 4, 3)
    assert s.sizes() == {"train": 16, "val": 2, "test": 2}
    assert_aligned(s, lambda c: 10.0 * int(c))
    assert "3 classes" in s.spec.description
    assert not load_data(str(images)).has_labels  # no MNIST naming, no automatic labels


@pytest.mark.parametrize("images_name,labels_name", [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"),
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte"),  # only one of them gzipped
])
def test_idx_mnist_sibling_is_found(tmp_path, labelled, images_name, labels_name):
    x, y = labelled
    images = write_idx(tmp_path / images_name, x, images_name.endswith(".gz"))
    write_idx(tmp_path / labels_name, y.astype(np.int32), labels_name.endswith(".gz"))
    s = load_data(str(images))
    assert s.classes == ("3", "7", "9")
    assert_aligned(s, lambda c: 10.0 * int(c))
    assert not load_data(str(images), labels="none").has_labels
    xx, spec = load_file(str(images))  # backwards compatible: (x, spec), labels ignored
    assert xx.shape == (20, 1, 4, 3) and "classes" not in spec.description


def test_idx_label_errors(tmp_path, labelled):
    x, y = labelled
    images = write_idx(tmp_path / "train-images-idx3-ubyte", x)
    sibling = write_idx(tmp_path / "train-labels-idx1-ubyte", y[:19])
    msg = fails(images, "19 labels", "20 examples", named=sibling)  # automatic: count mismatch
    assert "train-images-idx3-ubyte" in msg
    sibling.unlink()
    fails(images, "no such file", "IDX label file", labels=str(tmp_path / "nope-idx1"), named="nope-idx1")
    two_d = write_idx(tmp_path / "two.idx", x[:, 0])
    fails(images, "(20, 3)", "1-D", labels=str(two_d), named=two_d)
    frac = write_idx(tmp_path / "frac.idx", np.full(20, 0.5, dtype=np.float32))
    fails(images, "not a whole number", labels=str(frac), named=frac)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x14abc")
    fails(images, "truncated", labels=str(bad), named=bad)


# ----------------------------------------------------------------------------- npz / npy


def test_npz_automatic_and_explicit_keys(tmp_path, labelled):
    x, y = labelled
    for key in ("y", "labels", "label", "targets"):
        np.savez(tmp_path / f"{key}.npz", x=x, **{key: y})
        s = load_data(str(tmp_path / f"{key}.npz"))
        assert s.classes == ("3", "7", "9")
        assert_aligned(s, lambda c: 10.0 * int(c))
    np.savez(tmp_path / "named.npz", x=x, cls=y.astype(np.int64) - 5, y=np.arange(3))  # 'y' has the wrong length
    assert not load_data(str(tmp_path / "named.npz")).has_labels
    s = load_data(str(tmp_path / "named.npz"), labels="cls")
    assert s.classes == ("-2", "2", "4")
    assert_aligned(s, lambda c: 10.0 * (int(c) + 5))
    s = load_data(str(tmp_path / "named.npz") + ":x", labels="cls")
    assert s.num_classes == 3
    np.savez(tmp_path / "float_y.npz", x=x, y=np.linspace(0, 1, 20))  # regression targets: not labels
    assert not load_data(str(tmp_path / "float_y.npz")).has_labels
    np.savez(tmp_path / "only_y.npz", y=x)  # the data itself is never its own labels
    assert not load_data(str(tmp_path / "only_y.npz")).has_labels


def test_npz_label_errors(tmp_path, labelled):
    x, y = labelled
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=y, short=y[:5], frac=np.full(20, 1.5), many=np.arange(20) * 0, wide=np.zeros((20, 2)))
    fails(p, "no labels key 'nope'", "keys are", labels="nope")
    fails(p, "holds the data", labels="x")
    fails(p, "'short' has 5 values", "20 examples", labels="short")
    fails(p, "not a whole number", labels="frac")
    fails(p, "shape (20, 2)", "expected shape (20,)", labels="wide")
    np.savez(tmp_path / "big.npz", x=np.zeros((1001, 2)), y=np.arange(1001))
    fails(tmp_path / "big.npz", "1001 distinct", "at most 1000", labels="y", named="big.npz")
    assert not load_data(str(tmp_path / "big.npz")).has_labels  # automatic: ignored, not an error


def test_npy_label_file(tmp_path, labelled):
    x, y = labelled
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y.astype(np.int64))
    s = load_data(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"))
    assert s.classes == ("3", "7", "9")
    assert_aligned(s, lambda c: 10.0 * int(c))
    assert not load_data(str(tmp_path / "x.npy")).has_labels


class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_npy_label_errors(tmp_path, labelled):
    x, y = labelled
    data = tmp_path / "x.npy"
    np.save(data, x)
    for name, arr, words in [
        ("short.npy", y[:7], ("7 labels", "20 examples")),
        ("wide.npy", np.zeros((20, 1)), ("shape (20, 1)", "expected shape (20,)")),
        ("frac.npy", np.full(20, 0.25), ("not a whole number",)),
    ]:
        np.save(tmp_path / name, arr)
        fails(data, *words, labels=str(tmp_path / name), named=name)
    fails(data, "no such file", labels=str(tmp_path / "missing.npy"), named="missing.npy")
    np.savez(tmp_path / "arch.npz", y=y)
    fails(data, "npz archive", "expected a .npy", labels=str(tmp_path / "arch.npz"), named="arch.npz")
    marker = tmp_path / "pwned"
    evil = np.empty(20, dtype=object)
    evil[:] = [_Payload(marker)] * 20
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    fails(data, "pickle", labels=str(tmp_path / "evil.npy"), named="evil.npy")
    np.savez(tmp_path / "evil.npz", x=x, y=evil)
    fails(tmp_path / "evil.npz", "pickle", labels="y")
    assert not load_data(str(tmp_path / "evil.npz")).has_labels  # automatic 'y' is pickled: skipped
    with open(tmp_path / "raw.npy", "wb") as f:
        pickle.dump(_Payload(marker), f)
    fails(data, "not a .npy", labels=str(tmp_path / "raw.npy"), named="raw.npy")
    assert not marker.exists()


# ----------------------------------------------------------------------------- CSV


def test_csv_label_column_by_name_and_index(tmp_path):
    rows = [(i * 0.5, -i, ["cat", "dog", "ant"][i % 3]) for i in range(12)]
    (tmp_path / "h.csv").write_text("a,b,species\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    for labels in ("species", "col:2"):
        s = load_data(str(tmp_path / "h.csv"), labels=labels)
        assert s.spec.shape == (2,) and s.classes == ("ant", "cat", "dog") and s.train.shape == (10, 2)
        for split in SPLITS:  # the feature a = 0.5 i determines the species
            a = s.split(split)[:, 0]
            expect = [["cat", "dog", "ant"][int(v * 2) % 3] for v in a.tolist()]
            assert [s.classes[i] for i in s.split_labels(split).tolist()] == expect
    # numeric labels in the first column, no header, col:0; classes sorted numerically
    (tmp_path / "n.csv").write_text("".join(f"{[10, 2, 1][i % 3]},{i},{i * i}\n" for i in range(10)))
    s = load_data(str(tmp_path / "n.csv"), labels="col:0")
    assert s.spec.shape == (2,) and s.classes == ("1", "2", "10")
    for split in SPLITS:
        idx = s.split(split)[:, 0].long().tolist()
        assert [s.classes[i] for i in s.split_labels(split).tolist()] == [str([10, 2, 1][i % 3]) for i in idx]
    # without labels, every column stays a feature (also one called 'label')
    (tmp_path / "l.csv").write_text("x,label\n1,0\n2,1\n3,1\n")
    s = load_data(str(tmp_path / "l.csv"))
    assert s.spec.shape == (2,) and not s.has_labels


def test_csv_label_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,c\n1,2,0\n3,4,1\n5,6,1\n")
    fails(p, "no labels column 'd'", "a, b, c", labels="d")
    fails(p, "out of range", "3 columns", labels="col:3")
    fails(p, "not a column index", labels="col:x")
    p.write_text("1,2,0\n3,4,1\n5,6,1\n")
    fails(p, "no header row", "col:K", labels="c")
    p.write_text("a,b,c\n1,2,0.5\n3,4,1\n5,6,1\n")
    fails(p, "column 'c'", "not a whole number", labels="c")
    p.write_text("a,b,c\n1,2,x\n3,4,\n5,6,y\n")
    fails(p, "column 'c'", "line 3", "empty label", labels="c")
    p.write_text("a,b,c\n1,2,x\n3,zz,y\n5,6,y\n")
    fails(p, "line 3, column 2", "'zz' is not a number", labels="c")
    p.write_text("c\nx\ny\nz\n")
    fails(p, "only column", labels="c")
    p.write_text("a,c\n" + "".join(f"{i},{i}\n" for i in range(1001)))
    fails(p, "1001 distinct", labels="c")


# ----------------------------------------------------------------------------- image folders


def _png(path, value, size=(3, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)


def test_image_folder_classes(tmp_path):
    root = tmp_path / "pets"
    values = {"dog": 30, "cat": 10, "emu": 50}
    for cls, v in values.items():
        for i in range(4):
            _png(root / cls / f"{i}.png", v)
    for labels in (None, "folders"):
        s = load_data(str(root), labels=labels)
        assert s.classes == ("cat", "dog", "emu") and s.spec.shape == (1, 3, 4) and s.spec.levels == 256
        assert_aligned(s, lambda c: float(values[c]))
        assert s.class_counts().sum() == len(s.train)
    assert not load_data(str(root), labels="none").has_labels
    x, _ = load_file(str(root))
    assert x.shape == (12, 1, 3, 4)


def test_image_folder_automatic_only_for_class_layout(tmp_path):
    _png(tmp_path / "one" / "a" / "0.png", 1)  # a single subfolder: not classes
    _png(tmp_path / "one" / "a" / "1.png", 2)
    _png(tmp_path / "one" / "a" / "2.png", 3)
    assert not load_data(str(tmp_path / "one")).has_labels
    assert load_data(str(tmp_path / "one"), labels="folders").classes == ("a",)
    for name in ("a/0.png", "b/1.png", "2.png"):  # one image at the top: not classes
        _png(tmp_path / "mixed" / name, 5)
    assert not load_data(str(tmp_path / "mixed")).has_labels
    fails(tmp_path / "mixed", "lies directly in", "subfolder", labels="folders", named="2.png")
    fails(tmp_path / "mixed", "not understood", "'folders'", labels="species", named="mixed")


def test_image_folder_nested_classes_use_the_top_folder(tmp_path):
    for cls, sub in (("a", "x"), ("a", "y"), ("b", "x")):
        _png(tmp_path / "n" / cls / sub / "0.png", 7)
    assert not load_data(str(tmp_path / "n")).has_labels  # automatic needs images directly in the class folder
    s = load_data(str(tmp_path / "n"), labels="folders")
    assert s.classes == ("a", "b")
