"""Translation data: the built-in tasks (the map T really holds, pairing, Markov-chain order) and users'
pix2pix (aligned A|B) and CycleGAN (trainA/ trainB/) folders, with a one-line DataError for bad layouts."""

import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from deepgen.data import list_datasets, load_data
from deepgen.data.spec import SPLITS, DataSpec, Splits, Translation
from deepgen.data.translation import (
    MIXTURE_SIZES, TASKS, edge_map, load_translation_task, lowres, mixture_task, thicken,
)
from deepgen.data.translation_files import canonical_translation_source, translation_source
from deepgen.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tasks():
    """Every built-in task, loaded once."""
    return {name: load_data(name) for name in TASKS}


def by_row(x: torch.Tensor) -> dict[bytes, int]:
    """Row bytes -> row index (the digits splits have no duplicate images)."""
    return {r.numpy().tobytes(): i for i, r in enumerate(x)}


# --------------------------------------------------------------------------- built-in tasks


@pytest.mark.parametrize("name", sorted(TASKS))
def test_builtin_shapes_levels_and_labels(tasks, name):
    s = tasks[name]
    tr = s.translation
    assert isinstance(tr, Translation) and s.spec.name == name
    assert tr.paired == (name in ("edges2digits", "lowres2digits"))
    image = name != "mixtures"
    assert s.spec.shape == ((1, 8, 8) if image else (2,)) and s.spec.levels == (17 if image else None)
    assert s.num_classes == (10 if image else 5)
    for split in SPLITS:
        b, a = s.split(split), tr.source[split]
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
        assert tr.truth[split].shape == b.shape and tr.truth[split].dtype == torch.float32
        assert tr.source_labels[split].dtype == torch.int64 and len(tr.source_labels[split]) == len(b)
        if image:
            for x in (a, b, tr.truth[split]):
                assert x.min() >= 0 and x.max() <= 16 and torch.equal(x, x.round())
    for word in ("paired" if tr.paired else "unpaired",):
        assert word in list_datasets()[name]


def test_edges2digits_rows_are_edge_maps_of_the_digit(tasks, digits):
    s = tasks["edges2digits"]
    for split in SPLITS:
        assert torch.equal(s.split(split), digits.split(split))
        assert torch.equal(s.translation.source[split], edge_map(s.split(split)))
        assert torch.equal(s.translation.truth[split], s.split(split))
        assert torch.equal(s.translation.source_labels[split], s.labels[split])
    assert s.translation.source["train"].max() == 16 and (s.translation.source["train"] > 0).flatten(1).any(1).all()


def test_edge_map_of_a_step_and_of_a_flat_image():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 16.0  # a vertical step of height L-1 between columns 3 and 4
    e = edge_map(x)
    assert (e[..., 2:6, 3:5] == 16).all()  # |g_x| = 4 * 16 away from the corners: full level
    assert (e[..., 2:6, :2] == 0).all() and (e[..., 2:6, 6] == 0).all()
    flat = torch.full((1, 1, 8, 8), 9.0)
    assert (edge_map(flat)[..., 1:7, 1:7] == 0).all()  # no gradient inside (zero padding only at the border)


def test_lowres2digits_is_block_average_of_the_digit(tasks):
    s = tasks["lowres2digits"]
    for split in SPLITS:
        b, a = s.split(split), s.translation.source[split]
        blocks = b.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))  # (N, 1, 4, 4) block means
        assert torch.equal(a[..., ::2, ::2], torch.floor(blocks + 0.5))
        assert torch.equal(a[..., ::2, :], a[..., 1::2, :]) and torch.equal(a[..., ::2], a[..., 1::2])
    c = torch.randint(0, 17, (3, 1, 4, 4)).float().repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.equal(lowres(c), c)  # already blocky: unchanged


def test_thicken_is_a_cross_dilation():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 7.0
    expected = torch.zeros(5, 5)
    expected[2, 1:4] = 7.0
    expected[1:4, 2] = 7.0
    assert torch.equal(thicken(x)[0, 0], expected)
    corner = torch.zeros(1, 1, 3, 3)
    corner[0, 0, 0, 0] = 3.0
    assert thicken(corner).sum() == 9.0  # the cross clipped at the border: 3 pixels of 3


def test_digits2thick_unpaired_halves_and_truth(tasks, digits):
    s = tasks["digits2thick"]
    tr = s.translation
    for split in SPLITS:
        x, y = digits.split(split), digits.labels[split]
        a, b = tr.source[split], s.split(split)
        assert len(a) == len(b) == len(x) // 2
        assert torch.equal(tr.truth[split], thicken(a))
        # A rows are digits, B rows are thickened digits, of two disjoint halves of the split
        rows, thick = by_row(x), by_row(thicken(x))
        ia = [rows[r.numpy().tobytes()] for r in a]
        ib = [thick[r.numpy().tobytes()] for r in b]
        assert not set(ia) & set(ib)
        assert torch.equal(tr.source_labels[split], y[ia]) and torch.equal(s.labels[split], y[ib])
    # dilation adds ink: never removes any, and every digit gains some
    a = tr.source["train"]
    ta = thicken(a)
    assert (ta >= a).all() and (ta.flatten(1).sum(1) > a.flatten(1).sum(1)).all()
    ink_a, ink_b = (a > 0).float().mean(), (s.train > 0).float().mean()
    assert ink_b > ink_a + 0.2, (ink_a, ink_b)


def test_mixtures_truth_is_the_affine_map_of_the_components(tasks):
    s, task = tasks["mixtures"], mixture_task(0)
    tr = s.translation
    assert s.sizes() == MIXTURE_SIZES and s.classes == tuple("01234")
    assert torch.allclose(task.apply(task.means), task.component_means("B"))
    assert torch.allclose(task.invert(task.apply(task.means)), task.means)
    for split in SPLITS:
        assert torch.allclose(tr.truth[split], task.apply(tr.source[split]))
    a, ya, b, yb = tr.source["train"].double(), tr.source_labels["train"], s.train.double(), s.labels["train"]
    for k in range(task.k):  # T(empirical A component mean) = empirical B component mean
        assert torch.allclose(task.apply(a[ya == k].mean(0)[None])[0], b[yb == k].mean(0), atol=0.1)
        assert torch.allclose(a[ya == k].std(0), torch.full((2,), task.std, dtype=torch.float64), atol=0.03)
    # the labels are the components the rows were drawn from: the Bayes classifier agrees almost always
    assert (task.classify(a, "A") == ya).float().mean() > 0.99
    assert (task.classify(b, "B") == yb).float().mean() > 0.99
    # own weights: empirical frequencies follow each domain's stationary distribution, and they differ
    for y, dom in ((ya, "A"), (yb, "B")):
        freq = torch.bincount(y, minlength=task.k).double() / len(y)
        assert torch.allclose(freq, task.weights(dom), atol=0.03), (freq, task.weights(dom))
    assert (task.weights("A") - task.weights("B")).abs().max() > 0.05


def test_mixtures_rows_follow_the_markov_chain(tasks):
    s, task = tasks["mixtures"], mixture_task(0)
    for y, dom in ((s.translation.source_labels["train"], "A"), (s.labels["train"], "B")):
        p = task.transition(dom)
        assert torch.allclose(p.sum(1), torch.ones(task.k, dtype=p.dtype))
        assert torch.allclose(task.weights(dom) @ p, task.weights(dom))
        counts = torch.zeros(task.k, task.k, dtype=torch.float64)
        counts.index_put_((y[:-1], y[1:]), torch.ones(len(y) - 1, dtype=torch.float64), accumulate=True)
        empirical = counts / counts.sum(1, keepdim=True)
        assert (empirical - p).abs().max() < 0.05, (empirical, p)
    # shared syntax: the jump chain (transitions between different components) is the same in A and B
    pa, pb = task.transition("A"), task.transition("B")
    off = ~torch.eye(task.k, dtype=torch.bool)
    ja = pa * off / (pa * off).sum(1, keepdim=True)
    jb = pb * off / (pb * off).sum(1, keepdim=True)
    assert torch.allclose(ja, jb) and torch.allclose(ja, task.jump)
    assert not torch.allclose(pa, pb)


def test_mixture_task_seeds():
    a, b = mixture_task(0), mixture_task(0)
    assert torch.equal(a.jump, b.jump) and a.angle == b.angle and torch.equal(a.shift, b.shift)
    c = mixture_task(1)
    assert not torch.equal(a.jump, c.jump)
    assert torch.allclose(torch.linalg.det(c.linear), torch.tensor(c.scale ** 2, dtype=torch.float64))


def test_builtins_are_deterministic(tasks):
    for name in TASKS:
        again = load_translation_task(name)
        first = tasks[name]
        for split in SPLITS:
            t1, t2 = first.translation, again.translation
            assert torch.equal(first.split(split), again.split(split))
            assert torch.equal(first.labels[split], again.labels[split])
            assert torch.equal(t1.source[split], t2.source[split])
            assert torch.equal(t1.truth[split], t2.truth[split])
            assert torch.equal(t1.source_labels[split], t2.source_labels[split])


def test_builtin_labels_none_keeps_domain_a_without_its_labels():
    s = load_data("edges2digits", labels="none")
    assert not s.has_labels and s.translation is not None and s.translation.source_labels == {}
    assert s.translation.paired and torch.equal(s.translation.source["val"], edge_map(s.val))
    with pytest.raises(DataError, match="already carries"):
        load_data("digits2thick", labels="y")


def test_splits_check_domain_a(digits):
    spec = DataSpec("t", (1, 8, 8), 17)
    b = {s: digits.split(s) for s in SPLITS}

    def make(**changes):
        tr = Translation(paired=True, source={s: b[s].clone() for s in SPLITS})
        return Splits(spec, **b, translation=dataclasses.replace(tr, **changes))

    make()  # fine
    bad = {
        "shape": dict(source={**b, "val": b["val"][:-1]}),
        "dtype": dict(source={**b, "test": b["test"].double()}),
        "splits": dict(source={"train": b["train"], "val": b["val"]}),
        "levels": dict(source={**b, "train": b["train"] + 1}),
        "truth": dict(truth={"train": b["train"][:, :, :4]}),
        "labels": dict(source_labels={"train": torch.zeros(len(b["train"]), dtype=torch.int64)}),
    }
    for what, change in bad.items():
        with pytest.raises(DataError) as info:
            make(**change)
        assert "\n" not in str(info.value) and "'t" in str(info.value), (what, info.value)


def test_listed_with_paired_or_unpaired():
    listed = list_datasets()
    for name in ("edges2digits", "lowres2digits", "digits2thick", "mixtures"):
        assert name in listed
    assert "unpaired" not in listed["edges2digits"] and "unpaired" in listed["digits2thick"]
    assert "unpaired" in listed["mixtures"] and "paired" in listed["lowres2digits"]


# --------------------------------------------------------------------------- users' folders


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def write_aligned(folder, n, h=4, start=0, rgb=False):
    """n A|B images of h x 2h: image i has left half 10 i + 1, right half 10 i + 6 (B - A = 5)."""
    for i in range(start, start + n):
        a = np.full((h, 2 * h) + ((3,) if rgb else ()), 10 * i + 1)
        a[:, h:] = 10 * i + 6
        write_png(folder / f"{i:03d}.png", a)


def write_domain(folder, n, value0, h=4, w=4):
    """n plain h x w images with constant values value0, value0 + 1, ..."""
    for i in range(n):
        write_png(folder / f"{i:03d}.png", np.full((h, w), value0 + i))


def check_paired(s, n_total):
    tr = s.translation
    assert tr.paired and s.spec.levels == 256 and sum(s.sizes().values()) == n_total
    for split in SPLITS:
        b, a = s.split(split), tr.source[split]
        assert a.shape == b.shape and torch.equal(tr.truth[split], b)
        assert torch.equal(b - a, torch.full_like(b, 5.0))  # row i of A is the partner of row i of B
    values = torch.cat([tr.source[x][:, 0, 0, 0] for x in SPLITS])
    assert sorted(values.tolist()) == [10.0 * i + 1 for i in range(n_total)]  # each image once


def test_aligned_split_folders(tmp_path):
    write_aligned(tmp_path / "train", 6)
    write_aligned(tmp_path / "val", 2, start=6)
    write_aligned(tmp_path / "test", 3, start=8)
    s = load_data(f"aligned:{tmp_path}")
    check_paired(s, 11)
    assert s.sizes() == {"train": 6, "val": 2, "test": 3} and s.spec.shape == (1, 4, 4)
    assert s.spec.name == tmp_path.name and not s.has_labels
    assert s.translation.source["val"][:, 0, 0, 0].tolist() == [61.0, 71.0]  # val/ is val, in file order


def test_aligned_flat_folder_and_missing_splits(tmp_path):
    write_aligned(tmp_path / "flat", 10, rgb=True)
    s = load_data(f"aligned:{tmp_path / 'flat'}")
    check_paired(s, 10)
    assert s.sizes() == {"train": 8, "val": 1, "test": 1} and s.spec.shape == (3, 4, 4)
    write_aligned(tmp_path / "only" / "train", 10)
    write_aligned(tmp_path / "only" / "val", 2, start=10)
    s = load_data(f"aligned:{tmp_path / 'only'}")
    check_paired(s, 12)
    assert s.sizes() == {"train": 9, "val": 2, "test": 1}  # test carved out of train


def test_aligned_is_deterministic_and_canonical(tmp_path, monkeypatch):
    write_aligned(tmp_path / "d", 10)
    monkeypatch.chdir(tmp_path)
    first = load_data("aligned:d")
    canon = canonical_translation_source("aligned:d")
    assert canon == f"aligned:{tmp_path / 'd'}"
    monkeypatch.chdir("/")
    again = load_data(canon)
    for split in SPLITS:
        assert torch.equal(first.split(split), again.split(split))
        assert torch.equal(first.translation.source[split], again.translation.source[split])


def test_unaligned_folders(tmp_path):
    write_domain(tmp_path / "trainA", 6, 0)
    write_domain(tmp_path / "trainB", 9, 100)
    write_domain(tmp_path / "testA", 2, 50)
    write_domain(tmp_path / "testB", 3, 150)
    for source in (str(tmp_path), f"unaligned:{tmp_path}"):  # auto-detected, or named
        s = load_data(source)
        tr = s.translation
        assert not tr.paired and tr.truth == {} and tr.source_labels == {}
        assert s.sizes() == {"train": 5, "val": 1, "test": 2}
        for split in SPLITS:
            assert len(tr.source[split]) == len(s.split(split))
        a = torch.cat([tr.source[x] for x in SPLITS])[:, 0, 0, 0]
        b = torch.cat([s.split(x) for x in SPLITS])[:, 0, 0, 0]
        assert a.max() < 100 and b.min() >= 100  # A from the A folders, B from the B folders
        assert len(set(a.tolist())) == len(a) and len(set(b.tolist())) == len(b)  # no image twice
        assert set(tr.source["test"][:, 0, 0, 0].tolist()) == {50.0, 51.0}
        assert set(s.test[:, 0, 0, 0].tolist()) < {150.0, 151.0, 152.0}
    assert translation_source(str(tmp_path)) == ("unaligned", str(tmp_path))
    assert canonical_translation_source(str(tmp_path)) == f"unaligned:{tmp_path}"
    assert translation_source(f"images:{tmp_path}") is None  # an explicit format keeps its meaning
    again = load_data(str(tmp_path))
    assert torch.equal(again.train, s.train) and torch.equal(again.translation.source["train"], tr.source["train"])


def test_unaligned_without_test_folders(tmp_path):
    write_domain(tmp_path / "trainA", 20, 0)
    write_domain(tmp_path / "trainB", 10, 100)
    s = load_data(str(tmp_path))
    assert s.sizes() == {"train": 8, "val": 1, "test": 1}  # B: 8/1/1; A's 16/2/2 truncated to match
    assert all(len(s.translation.source[x]) == n for x, n in s.sizes().items())


def load_error(source, *words, labels=None):
    with pytest.raises(DataError) as info:
        load_data(source, labels=labels)
    msg = str(info.value)
    assert "\n" not in msg and info.value.__cause__ is None
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


def test_bad_layouts(tmp_path):
    odd = tmp_path / "odd"
    write_png(odd / "a.png", np.zeros((4, 7)))
    write_png(odd / "b.png", np.zeros((4, 7)))
    write_png(odd / "c.png", np.zeros((4, 7)))
    load_error(f"aligned:{odd}", str(odd), "7x4", "width = 2 x height")
    square = tmp_path / "square" / "train"
    write_domain(square, 3, 0, h=4, w=4)
    load_error(f"aligned:{tmp_path / 'square'}", "4x4", "width = 2 x height")
    write_aligned(tmp_path / "noval" / "val", 3)
    load_error(f"aligned:{tmp_path / 'noval'}", os.path.join("noval", "train"), "expected")
    load_error(f"aligned:{tmp_path / 'missing'}", "missing", "no such folder")
    write_aligned(tmp_path / "few", 1)
    load_error(f"aligned:{tmp_path / 'few'}", "at least 3")

    u = tmp_path / "u"
    write_domain(u / "trainA", 4, 0)
    load_error(str(u), "trainB", "no such folder", "trainA/ trainB/")
    write_domain(u / "trainB", 4, 0, h=5, w=5)
    msg = load_error(str(u), "5x5", "expected 4x4", "same size")
    assert "trainB" in msg
    (u / "trainB" / "000.png").unlink()
    write_domain(u / "trainB", 4, 0)
    write_domain(u / "testA", 2, 0)
    load_error(str(u), "testB", "but testA/ exists")
    load_error(f"unaligned:{u / 'trainA' / '000.png'}", "not a folder")
    write_domain(u / "testB", 2, 0)
    load_data(str(u))  # now complete
    load_error(str(u), "carry no class labels", labels="folders")
    one = tmp_path / "one"
    write_domain(one / "trainA", 1, 0)
    write_domain(one / "trainB", 5, 0)
    load_error(str(one), "trainA", "1 image", "at least 3")
    (tmp_path / "emptyB" / "trainB").mkdir(parents=True)
    write_domain(tmp_path / "emptyB" / "trainA", 3, 0)
    load_error(str(tmp_path / "emptyB"), "trainB", "no image files")


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = write_png(tmp_path / "outside.png", np.zeros((4, 4)))
    u = tmp_path / "u"
    write_domain(u / "trainA", 3, 0)
    write_domain(u / "trainB", 3, 0)
    os.symlink(outside, u / "trainB" / "link.png")
    load_error(str(u), "symbolic link", "outside")


def test_recorded_source_reloads_the_same_data(tmp_path, monkeypatch):
    """Once :mod:`deepgen.data.source` knows translation folders, a run's recorded source is absolute."""
    from deepgen.data import source

    if not hasattr(source, "translation_source"):
        pytest.skip("deepgen.data.source does not know translation folders yet")
    write_domain(tmp_path / "d" / "trainA", 4, 0)
    write_domain(tmp_path / "d" / "trainB", 4, 0)
    monkeypatch.chdir(tmp_path)
    assert source.canonical_source("d") == f"unaligned:{tmp_path / 'd'}"
    assert source.canonical_source("aligned:d") == f"aligned:{tmp_path / 'd'}"
    assert source.source_sha256("d") == source.source_sha256(f"unaligned:{tmp_path / 'd'}") is not None
