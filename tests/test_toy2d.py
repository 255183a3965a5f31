"""Built-in 2-D densities: fixed splits, shapes, scale, the mode benchmarks, and component labels."""

import math
import os
import subprocess
import sys

import pytest
import torch

from deepgen.data.spec import Splits
from deepgen.data.toy2d import MODES, TOY_CLASSES, TOY_DATASETS, load_toy, sample_toy, sample_toy_labelled
from deepgen.errors import ConfigError

NAMES = ["moons", "circles", "ring8", "grid25", "checkerboard", "spirals", "pinwheel", "rings", "swissroll"]


def test_registry_names():
    assert sorted(TOY_DATASETS) == sorted(NAMES)
    assert all(isinstance(d, str) and d for d in TOY_DATASETS.values())


@pytest.mark.parametrize("name", NAMES)
def test_splits_shapes_scale_and_determinism(name):
    s = load_toy(name)
    assert isinstance(s, Splits)
    assert s.sizes() == {"train": 10000, "val": 2000, "test": 2000}
    assert s.spec.name == name and s.spec.shape == (2,) and s.spec.levels is None
    assert s.spec.description == TOY_DATASETS[name]
    for split in ("train", "val", "test"):
        x = s.split(split)
        assert x.dtype == torch.float32 and x.shape[1:] == (2,)
        assert torch.isfinite(x).all()
        assert x.abs().max() <= 6.0
        assert x.std(0).min() > 0.3  # not collapsed to a point
    again = load_toy(name)
    for split in ("train", "val", "test"):
        assert torch.equal(s.split(split), again.split(split))
    assert not torch.equal(s.val, s.test)
    assert not torch.equal(s.train[:2000], s.test)


def test_different_datasets_differ():
    firsts = {name: load_toy(name).test[:5] for name in NAMES}
    for a in NAMES:
        for b in NAMES:
            if a < b:
                assert not torch.allclose(firsts[a], firsts[b]), (a, b)


def test_splits_identical_in_another_process():
    code = "from deepgen.data.toy2d import load_toy; print(repr(load_toy('pinwheel').val[:3].tolist()))"
    env_path = ":".join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": env_path, "PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert out == repr(load_toy("pinwheel").val[:3].tolist())


@pytest.mark.parametrize("name,k", [("ring8", 8), ("grid25", 25)])
def test_mode_datasets_sit_on_their_centers(name, k):
    centers, std = MODES[name]
    assert centers.shape == (k, 2)
    x = load_toy(name).train
    dist, nearest = torch.cdist(x, centers).min(1)
    assert (dist < 4 * std).float().mean() > 0.99
    counts = torch.bincount(nearest, minlength=k).float()
    assert counts.min() > 0.5 * len(x) / k  # every mode is populated, roughly equally


def test_mode_centers_geometry():
    ring, std = MODES["ring8"]
    assert std == 0.02
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.sort(torch.atan2(ring[:, 1], ring[:, 0]) % (2 * torch.pi)).values
    assert torch.allclose(angles.diff(), torch.full((7,), 2 * torch.pi / 8), atol=1e-5)
    grid, std = MODES["grid25"]
    assert std == 0.05
    values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    assert {tuple(p) for p in grid.tolist()} == {(a, b) for a in values.tolist() for b in values.tolist()}


@pytest.mark.parametrize("name", NAMES)
def test_sample_toy_uses_generator(name):
    a = sample_toy(name, 7, torch.Generator().manual_seed(1))
    b = sample_toy(name, 7, torch.Generator().manual_seed(1))
    c = sample_toy(name, 7, torch.Generator().manual_seed(2))
    assert a.shape == (7, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_checkerboard_lies_on_dark_squares():
    x = load_toy("checkerboard").train
    cell = torch.floor(x / 2).long()  # 2x2 squares indexed -2..1
    parity = (cell[:, 0] + cell[:, 1]) % 2
    assert (parity == parity[0]).all()
    assert x.min() >= -4 and x.max() <= 4


def test_unknown_name_suggests():
    with pytest.raises(ConfigError, match="did you mean 'moons'"):
        load_toy("moon")
    with pytest.raises(ConfigError, match="unknown dataset"):
        sample_toy("nope", 3, torch.Generator())


# ----------------------------------------------------------------------------- points unchanged by labels

# Per split: float64 column sums and the first 3 rows, recorded with the code from before the
# datasets carried labels (commit 60146e7).  Adding labels must not change a single draw.
CHECKSUMS = {
    ("moons", "train"): (-100.99367988109589, 4.826639324426651, [[0.8156888484954834, -0.2589528262615204], [0.6834980249404907, -1.0592533349990845], [0.6152681112289429, 0.6381242275238037]]),
    ("moons", "val"): (28.690601408481598, -20.405475467443466, [[-1.1802959442138672, 1.6390283107757568], [2.252537488937378, -1.067844271659851], [-3.431649923324585, -0.3302688002586365]]),
    ("moons", "test"): (50.59228324890137, -27.693529158830643, [[0.38677120208740234, 1.194000005722046], [0.4254060983657837, -1.0538160800933838], [-2.1852927207946777, 1.093515396118164]]),
    ("circles", "train"): (125.7266958844848, 57.278390274732374, [[-0.924787700176239, 1.1975206136703491], [-2.9756834506988525, 0.4983649253845215], [1.324168086051941, 0.6253296732902527]]),
    ("circles", "val"): (-127.65988545678556, 19.369464156683534, [[1.4732158184051514, 0.458829402923584], [-1.412036418914795, -0.2511231303215027], [-1.3997803926467896, 0.5772000551223755]]),
    ("circles", "test"): (-47.11513277050108, -159.75362846069038, [[-2.224374532699585, -2.046823024749756], [0.8592554926872253, -1.3550196886062622], [-1.1202274560928345, -0.9814350605010986]]),
    ("ring8", "train"): (94.24820733211916, -28.927957164645704, [[-0.009713171049952507, 1.9923735857009888], [-1.9727517366409302, -0.01991996355354786], [1.4085806608200073, -1.390687346458435]]),
    ("ring8", "val"): (12.05152678167724, -83.87209312737286, [[1.433090329170227, -1.4172766208648682], [1.4173352718353271, 1.4117196798324585], [2.0188963413238525, -0.017714189365506172]]),
    ("ring8", "test"): (145.86663473371482, 93.6685632149456, [[1.4310753345489502, -1.4400360584259033], [1.9821594953536987, 0.005694941617548466], [-0.01828952506184578, 2.0116045475006104]]),
    ("grid25", "train"): (-84.61724740909631, -303.0715941343552, [[4.05208683013916, 2.0264699459075928], [-4.010265827178955, 1.9897037744522095], [4.037409782409668, 2.0240654945373535]]),
    ("grid25", "val"): (-3.33127483172575, -114.37138281646185, [[2.050105333328247, -4.016805648803711], [-2.074772596359253, 1.9357435703277588], [-3.9905812740325928, 1.9199466705322266]]),
    ("grid25", "test"): (93.02436260927061, -164.0112381830113, [[-3.9739537239074707, -4.031190872192383], [0.03532581403851509, 2.048945426940918], [1.9627841711044312, 4.041912078857422]]),
    ("checkerboard", "train"): (422.34999656677246, 15.137161135673523, [[3.6000728607177734, -0.9664418697357178], [-3.5044193267822266, -3.3800296783447266], [1.7521319389343262, 1.8703526258468628]]),
    ("checkerboard", "val"): (-74.46082496643066, 39.50098443031311, [[1.5876049995422363, -2.2550978660583496], [3.442142963409424, 3.336611747741699], [-2.814601421356201, -2.0428342819213867]]),
    ("checkerboard", "test"): (-133.37693071365356, 111.46744358539581, [[3.410689353942871, 3.005826950073242], [-1.5329394340515137, 2.479398727416992], [-0.7004899978637695, 3.098818302154541]]),
    ("spirals", "train"): (-139.92508572293445, 7.876732658129185, [[0.9953113198280334, 2.700875759124756], [2.1470284461975098, -0.25757288932800293], [1.1708145141601562, -0.021398592740297318]]),
    ("spirals", "val"): (102.68491834960878, 112.59389135660604, [[1.3420414924621582, -0.09132426232099533], [-1.0028878450393677, -0.06327629089355469], [1.2083170413970947, -0.7702269554138184]]),
    ("spirals", "test"): (-120.39830895885825, -126.14195272419602, [[-0.06937836110591888, 0.7178354263305664], [1.5928611755371094, 0.515998899936676], [-0.4255182147026062, -1.3950953483581543]]),
    ("pinwheel", "train"): (-119.84078986942768, 251.82749907206744, [[0.7449871301651001, -0.8372812867164612], [-1.8745591640472412, 0.34943729639053345], [1.5005913972854614, 1.2369086742401123]]),
    ("pinwheel", "val"): (-98.1233936175704, 9.507804084569216, [[3.005462884902954, -0.28114837408065796], [2.538306713104248, -0.7764944434165955], [1.9186947345733643, -0.9755653738975525]]),
    ("pinwheel", "test"): (-25.850239170715213, -48.84113057330251, [[0.9397751688957214, 1.0517528057098389], [-1.4987167119979858, 0.37628206610679626], [2.1697311401367188, -0.9960485100746155]]),
    ("rings", "train"): (-122.78547282423824, -114.57895740307868, [[1.023522138595581, -2.172257661819458], [-1.422003149986267, -0.8192576169967651], [0.7402807474136353, 0.10267382860183716]]),
    ("rings", "val"): (-26.94493939075619, 65.25943274237216, [[0.04793080687522888, 0.7452942132949829], [1.392495036125183, -0.322397381067276], [-1.519591212272644, 0.20931722223758698]]),
    ("rings", "test"): (149.16201046982314, -63.06482591899112, [[-3.036912679672241, -0.3121737241744995], [-0.6876124143600464, -1.4879051446914673], [1.7697995901107788, -1.1819411516189575]]),
    ("swissroll", "train"): (4754.341776622459, 411.1565825829748, [[-0.9020828008651733, 1.691954493522644], [0.6709903478622437, -2.505178928375244], [1.3769478797912598, 0.29349228739738464]]),
    ("swissroll", "val"): (988.2461466640234, 115.06087978184223, [[-2.648685932159424, 0.1473393738269806], [-0.3935997188091278, 2.015632390975952], [1.1633806228637695, 0.9932291507720947]]),
    ("swissroll", "test"): (1036.4877003338188, 71.09777399152517, [[1.2971450090408325, 2.0119621753692627], [3.2546114921569824, 1.2038379907608032], [2.3516860008239746, 2.0844497680664062]]),
}


@pytest.mark.parametrize("name", NAMES)
def test_points_unchanged_since_before_labels(name):
    # Exact on the machine they were recorded on; the tolerance only allows last-bit differences of
    # vectorized sin/cos/exp/log between CPUs.  Any change of draws or their order moves the sums by
    # O(10) or more and the rows by O(1).
    s = load_toy(name)
    for split in ("train", "val", "test"):
        x = s.split(split)
        sum0, sum1, rows = CHECKSUMS[(name, split)]
        assert x.double().sum(0).tolist() == pytest.approx([sum0, sum1], abs=1e-3), split
        torch.testing.assert_close(x[:3], torch.tensor(rows), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_labelled_sampler_draws_the_same_points(name):
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x, k = sample_toy_labelled(name, 101, g1)
    assert torch.equal(x, sample_toy(name, 101, g2))
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))  # same number of draws
    if name == "swissroll":
        assert k is None
    else:
        assert k.dtype == torch.int64 and k.shape == (101,)
        assert 0 <= k.min() and k.max() < len(TOY_CLASSES[name])


# ----------------------------------------------------------------------------- labels match the geometry


def _all(name):
    s = load_toy(name)
    return torch.cat([s.train, s.val, s.test]), torch.cat([s.split_labels(p) for p in ("train", "val", "test")])


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mode_labels_are_the_nearest_centre(name):
    x, y = _all(name)
    assert torch.equal(torch.cdist(x, MODES[name][0]).argmin(1), y)


def test_circles_and_rings_labels_are_radii():
    x, y = _all("circles")
    assert torch.equal((x.norm(dim=1) < 2.25).long(), y)  # 0 outer (r = 3), 1 inner (r = 1.5)
    x, y = _all("rings")
    assert torch.equal((x.norm(dim=1) / 0.75 - 1).round().clamp(0, 3).long(), y)  # r = 0.75 (k + 1)


def test_moons_labels_are_arcs():
    x, y = _all("moons")
    t = torch.linspace(0, math.pi, 2000).unsqueeze(1)
    arc = torch.cat([t.cos(), t.sin()], 1)
    upper = 2 * (arc - torch.tensor([0.5, 0.25]))
    lower = 2 * (torch.tensor([1.0, 0.5]) - arc - torch.tensor([0.5, 0.25]))
    nearest_lower = torch.cdist(x, lower).min(1).values < torch.cdist(x, upper).min(1).values
    assert (nearest_lower.long() == y).float().mean() > 0.995  # noise overlaps only at the arc ends
    assert x[y == 0, 1].mean() > 0.5 > -0.5 > x[y == 1, 1].mean()


def test_spirals_labels_are_arms():
    x, y = _all("spirals")
    t = (torch.linspace(0, 1, 4000).sqrt() * 3 * math.pi).unsqueeze(1)
    arm = (torch.cat([-t * t.cos(), t * t.sin()], 1) + 0.25) / 3  # arm 0 with its mean offset
    nearest_mirror = torch.cdist(x, -arm).min(1).values < torch.cdist(x, arm).min(1).values
    assert (nearest_mirror.long() == y).float().mean() > 0.995  # arms meet only at the centre


def test_pinwheel_labels_are_arms():
    x, y = _all("pinwheel")
    means = []
    for k in range(5):  # rotating arm k back by 2 pi k / 5 lands it on arm 0
        a = -2 * math.pi * k / 5
        rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        means.append((x[y == k] @ rot.T).mean(0))
    means = torch.stack(means)
    assert (means - means[0]).abs().max() < 0.1
    raw = torch.stack([x[y == k].mean(0) for k in range(5)])
    assert torch.cdist(raw, raw).add(torch.eye(5) * 9).min() > 1.5


def test_checkerboard_labels_are_squares():
    x, y = _all("checkerboard")
    column = torch.floor(x[:, 0] / 2).long() + 2  # 0..3, left to right
    cell_y = torch.floor(x[:, 1] / 2).long()  # -2..1
    row = (cell_y - (column % 2 - 2)) // 2  # lower (0) or upper (1) dark square of the column
    assert set(row.tolist()) == {0, 1}
    assert torch.equal(2 * column + row, y)
