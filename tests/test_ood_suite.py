"""The built-in OOD sets, user OOD files, the ``deepgen ood`` suite on a tiny trained run, and the
likelihood-ratio background."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from deepgen.data import load_data
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.ood_metrics import auroc
from deepgen.ood.sets import IMAGE_SETS, default_sets, make_set
from deepgen.ood.suite import KEYS, ood_command
from deepgen.training.config import TrainConfig
from deepgen.workflows.ood_background import perturb
from deepgen.workflows.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
BUILTIN = [n for n in IMAGE_SETS if n != "heldout-classes"]


@pytest.mark.parametrize("name", BUILTIN)
def test_each_image_set_is_on_the_data_scale_and_deterministic(digits, name):
    x = make_set(name, digits, seed=3)
    assert x.shape == digits.test.shape and x.dtype == torch.float32
    assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 16
    assert torch.equal(x, make_set(name, digits, seed=3))
    if name in ("noise", "constant"):
        assert not torch.equal(x, make_set(name, digits, seed=4))


def test_image_sets_transform_the_test_split(digits):
    t = digits.test
    assert torch.equal(make_set("inverted", digits), 16 - t)
    assert torch.equal(make_set("hflip", digits)[:, :, :, 0], t[:, :, :, 7])
    assert torch.equal(make_set("vflip", digits)[:, :, 0], t[:, :, 7])
    shifted = make_set("shift", digits)
    assert torch.equal(shifted[:, :, 2:, 2:], t[:, :, :6, :6]) and shifted[:, :, :2].abs().sum() == 0
    const = make_set("constant", digits)
    assert (const.flatten(1).std(1) == 0).all() and len(const.flatten(1)[:, 0].unique()) > 5
    flat = make_set("blur", type(digits)(digits.spec, t, t, torch.full_like(t, 7.0)))
    assert (flat == 7).all()  # a box filter leaves a flat image flat, edges included
    blurred = make_set("blur", digits)
    # one inner pixel by hand: the rounded mean of its 3x3 neighbourhood
    assert blurred[0, 0, 3, 3] == t[0, 0, 2:5, 2:5].mean().round()


def test_heldout_classes_needs_a_run_without_those_classes(digits):
    with pytest.raises(ConfigError, match="--exclude-classes"):
        make_set("heldout-classes", digits)
    x = make_set("heldout-classes", digits, exclude_classes=[5, 6, 7, 8, 9])
    labels = digits.split_labels("test")
    assert torch.equal(x, digits.test[labels >= 5])
    assert torch.equal(x, make_set("heldout-classes", digits, exclude_classes=["5", "6", "7", "8", "9"]))  # names
    assert "heldout-classes" not in default_sets(digits.spec) and "heldout-classes" in default_sets(digits.spec, [5])


def test_toy_sets():
    moons = load_data("moons")
    shifted = make_set("shifted", moons)
    assert torch.allclose(shifted - moons.test, (3 * moons.train.std(0)).expand_as(shifted))
    other = make_set("toy:circles", moons, seed=1)
    assert other.shape == moons.test.shape and torch.equal(other, make_set("toy:circles", moons, seed=1))
    assert default_sets(moons.spec) == ["shifted", "toy:checkerboard"]
    with pytest.raises(ConfigError, match="own data"):
        make_set("toy:moons", moons)
    with pytest.raises(ConfigError, match="unknown toy dataset 'nope'"):
        make_set("toy:nope", moons)
    with pytest.raises(ConfigError, match="not for data 'moons'"):
        make_set("hflip", moons)


def test_user_files(digits, tmp_path):
    good = tmp_path / "mine.npy"
    np.save(good, digits.test[:30, 0].numpy().astype(np.int64))  # (N, 8, 8) integers 0..16
    x = make_set(str(good), digits)
    assert x.shape == (30, 1, 8, 8)
    assert torch.equal(x.sort(0).values, digits.test[:30].sort(0).values)  # all its examples, every split
    bytes_ = tmp_path / "bytes.npy"
    np.save(bytes_, (digits.test[:30, 0].numpy() * 15).astype(np.uint8))
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((30, 8, 9), dtype=np.int64))
    for path, match in ((bytes_, "256 levels.*expected integers in 0..16"), (wide, "shape \\(1, 8, 9\\)"),
                        (tmp_path / "missing.npy", "missing.npy")):
        with pytest.raises(DataError, match=match) as e:
            make_set(str(path), digits)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown OOD set 'nosie'; did you mean 'noise'"):
        make_set("nosie", digits)


def test_perturb_replaces_the_right_share():
    x = torch.full((2000, 1, 8, 8), 3.0)
    y = perturb(x, 17, 0.2, torch.Generator().manual_seed(0))
    changed = (y != x).float().mean().item()
    assert abs(changed - 0.2 * 16 / 17) < 0.01  # a replacement draws the old level 1/17 of the time
    assert torch.equal(y, y.round()) and y.max() <= 16 and y.min() >= 0
    assert torch.equal(perturb(x, 17, 0.0, torch.Generator()), x)


def tiny_run(out, steps=50):
    cfg = TrainConfig.from_dict(dict(model="realnvp", data="digits", steps=steps, batch_size=64, warmup_steps=5,
                                     eval_every=steps, log_every=25, progress=False, lr=3e-3,
                                     model_params={"scales": 1, "channels": 16}))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before the one_thread fixture
    try:
        train(cfg, out)
    finally:
        torch.set_num_threads(before)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("ood") / "run")


def test_suite_lines_files_and_defaults(run, capsys):
    lines = ood_command(run, ["noise", "hflip", "constant"])
    printed = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert printed == lines
    defaults = ("nll", "typicality", "input-complexity", "transform-ratio")
    assert [(d["score"], d["ood"]) for d in lines] == [(s, o) for s in defaults for o in ("noise", "hflip", "constant")]
    for d in lines:
        assert tuple(d) == KEYS and d["n_in"] == 270 and d["n_out"] == 270
        assert 0 <= d["auroc"] <= 1 and 0 <= d["aupr"] <= 1 and 0 <= d["fpr_at_95_tpr"] <= 1
    by = {(d["score"], d["ood"]): d["auroc"] for d in lines}
    assert by[("nll", "noise")] > 0.99  # even a 50-step flow gives uniform noise a low likelihood
    table = (run / "ood" / "table.csv").read_text().splitlines()
    assert table[0].split(",")[:7] == list(KEYS) and len(table) == 1 + len(lines)
    for s in defaults:
        assert (run / "ood" / f"hist_{s}.png").stat().st_size > 1000
    assert not list((run / "ood").glob("*.tmp"))


def test_suite_is_deterministic_and_writes_where_asked(run, tmp_path):
    a = ood_command(run, ["noise", "blur"], ["typicality"], seed=1, out=tmp_path / "o", verbose=False)
    b = ood_command(run, ["noise", "blur"], ["typicality"], seed=1, out=tmp_path / "o", verbose=False)
    assert a == b and (tmp_path / "o" / "table.md").is_file()


def test_suite_refusals_are_one_line(run, tmp_path):
    cases = [(dict(ood=["nosie"]), ConfigError, "did you mean 'noise'"),
             (dict(ood=["heldout-classes"]), ConfigError, "exclude-classes"),
             (dict(ood=[str(tmp_path / "none.npy")]), DataError, "none.npy"),
             (dict(ood=["noise"], scores=["likelihood-ratio"]), ConfigError, "train_background"),
             (dict(ood=["noise"], scores=["discriminator"]), ConfigError, "does not apply"),
             (dict(ood=["noise"], scores=["ensemble"]), ConfigError, "at least 2"),
             (dict(ood=["noise", "noise"]), ConfigError, "named twice"),
             (dict(ood=["noise"], scores=["nll"], transforms="hflip"), ConfigError, "--transforms is for the scores"),
             (dict(ood=["noise"], scores=["transform-ratio"], transforms="rot45"), ConfigError, "transform 'rot45'"),
             (dict(ood=["noise"], scores=["composite-ratio"]), ConfigError, "composite-ratio' needs a background")]
    for kwargs, cls, match in cases:
        with pytest.raises(cls, match=match) as e:
            ood_command(run, out=tmp_path / "o", verbose=False, **kwargs)
        assert "\n" not in str(e.value)


def test_the_mirror_score_takes_the_transforms_given(run, tmp_path):
    from deepgen.ood.detector import Detector

    lines = ood_command(run, ["hflip", "vflip"], ["transform-ratio"], transforms="hflip", out=tmp_path / "o",
                        verbose=False)
    det = Detector(run, score="transform-ratio", transforms=("hflip",))
    x = load_data("digits").test
    by = {d["ood"]: d["auroc"] for d in lines}
    assert by["hflip"] == auroc(det.decision_function(x), det.decision_function(x.flip(-1)))
    assert by["vflip"] == auroc(det.decision_function(x), det.decision_function(x.flip(-2)))


def test_heldout_classes_uses_the_trained_classes_as_in_distribution(run, tmp_path, digits):
    partial = tmp_path / "partial"
    shutil.copytree(run, partial, ignore=shutil.ignore_patterns("ood"))
    cfg = yaml.safe_load((partial / "config.yaml").read_text())
    cfg["train"]["exclude_classes"] = [5, 6, 7, 8, 9]
    (partial / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = ood_command(partial, ["heldout-classes", "noise"], ["nll"], verbose=False)
    labels = digits.split_labels("test")
    assert [d["n_in"] for d in lines] == [int((labels < 5).sum())] * 2
    # the shifted sets are made from the in-distribution test split: the kept classes only
    assert lines[0]["n_out"] == int((labels >= 5).sum()) and lines[1]["n_out"] == int((labels < 5).sum())


def test_ensemble_over_two_runs(run, tmp_path):
    other = tiny_run(tmp_path / "other", steps=20)
    lines = ood_command(run, ["noise"], ["ensemble"], ensemble=[other], out=tmp_path / "o", verbose=False)
    assert lines[0]["score"] == "ensemble" and lines[0]["auroc"] > 0.9


@pytest.mark.slow
def test_likelihood_ratio_with_a_trained_background(run):
    from deepgen.workflows.ood_background import DATA_FILE, train_background

    bg = train_background(run, mu=0.2, steps=30)
    spec = load_data(str(bg / DATA_FILE), labels="none").spec
    assert tuple(spec.shape) == (1, 8, 8) and spec.levels == 17
    lines = ood_command(run, ["noise", "constant"], None, verbose=False)
    assert {"likelihood-ratio", "composite-ratio"} <= {d["score"] for d in lines}  # found at RUN/ood/background
    assert bg == run / "ood" / "background" and json.loads((bg / "background.json").read_text())["mu"] == 0.2


def test_the_suite_computes_log_p_once_per_set_whatever_the_number_of_density_scores(run, monkeypatch):
    """nll, typicality and input-complexity all need log p of the train split, the test split and each set: with
    the shared cache each is computed once (3 + 2 sets = 4 calls, not 12), and the table is the same."""
    import deepgen.ood.detector as detector

    real, calls = detector.S.log_likelihood, []
    monkeypatch.setattr(detector.S, "log_likelihood", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    scores = ["nll", "typicality", "input-complexity"]
    lines = ood_command(run, ["noise", "hflip"], scores, verbose=False, out=run / "o1")
    assert sorted(calls) == sorted([1257, 270, 270, 270])
    uncached = []
    for s in scores:  # the same figures, each score on its own (no sharing)
        uncached += ood_command(run, ["noise", "hflip"], [s], verbose=False, out=run / "o2")
    assert lines == uncached and len(calls) == 4 + 3 * 4


def test_a_shared_log_p_is_reused_only_for_equal_data(run, monkeypatch):
    import deepgen.ood.detector as detector
    from deepgen.ood.detector import Detector

    calls = []  # a stand-in log p that says what it was asked: -sum(x)
    monkeypatch.setattr(detector.S, "log_likelihood",
                        lambda model, x, *a, **k: calls.append(1) or -x.flatten(1).sum(1).double())
    det = Detector(run, score="nll").share_log_p(cache := [])
    a, b = torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)
    assert torch.equal(det._log_p(det.runs[0], a), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(det._log_p(det.runs[0], b), torch.full((4,), -64.0, dtype=torch.float64))  # not a's entry
    assert torch.equal(det._log_p(det.runs[0], a.clone()), torch.zeros(4, dtype=torch.float64))  # a's entry
    other = Detector(run, score="nll", seed=1).share_log_p(cache)  # another seed: another estimate
    other._log_p(other.runs[0], a)
    assert len(calls) == 3 and len(cache) == 3


def test_the_command_line_prints_one_json_line_per_score_and_set(run, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "deepgen", "ood", str(run), *args], capture_output=True,
                              text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})

    done = cli("--ood", "hflip", "--ood", "noise", "--score", "nll,transform-ratio", "--transforms", "vflip",
               "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(s) for s in done.stdout.splitlines() if s.startswith("{")]
    assert [(d["score"], d["ood"]) for d in lines] == [("nll", "hflip"), ("nll", "noise"),
                                                       ("transform-ratio", "hflip"), ("transform-ratio", "noise")]
    assert lines == ood_command(run, ["hflip", "noise"], ["nll", "transform-ratio"], transforms="vflip",
                                out=tmp_path / "p", verbose=False)
    bad = cli("--ood", "noise", "--score", "transform-ratio", "--transforms", "rot45", "--out", str(tmp_path / "q"))
    assert bad.returncode == 2 and "transform 'rot45'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
