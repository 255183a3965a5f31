"""Translation figures (MAE, PSNR, label preservation, cycle error, FD, mixture alignment), their baselines,
the table, the picture and alignment for training, with stand-in translators whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.alignment_training import alignment_for_training, alignment_table
from deepgen.evaluation.restoration import PSNR_CAP_DB
from deepgen.evaluation.sample_quality import accuracy, digits_feature_net
from deepgen.evaluation.translation import (
    can_reverse,
    component_means,
    image_errors,
    translation_grid,
    translation_scores,
    translation_table,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class Stand(nn.Module):
    """A translator made of two functions: G (A -> B) and optionally F (B -> A; else refused like pix2pix)."""

    capabilities = frozenset({"translate"})

    def __init__(self, spec, forward, backward=None, name="stand-in"):
        super().__init__()
        self.spec, self.name, self.forward_map, self.backward_map = spec, name, forward, backward

    def translate(self, x, reverse=False):
        if reverse:
            if self.backward_map is None:
                raise ConfigError(f"{self.name} maps A -> B only")
            return self.backward_map(x)
        return self.forward_map(x)


@pytest.fixture(scope="module")
def thick():
    from deepgen.data.translation import load_translation_task

    return load_translation_task("digits2thick")


@pytest.fixture(scope="module")
def edges():
    from deepgen.data.translation import load_translation_task

    return load_translation_task("edges2digits")


@pytest.fixture(scope="module")
def mixtures():
    from deepgen.data.translation import load_mixtures

    return load_mixtures()


def identity(spec):
    return Stand(spec, lambda x: x.clone(), lambda x: x.clone(), name="identity-map")


def oracle(splits, split="test"):
    """G = T by looking each source up among the split's sources (T need not have a formula)."""
    tr = splits.translation
    a, t = tr.source[split].reshape(len(tr.source[split]), -1), tr.truth[split]

    def forward(x):
        rows = torch.cdist(x.reshape(len(x), -1).double(), a.double()).argmin(1)
        return t[rows].clone()

    return Stand(splits.spec, forward, name="oracle-map")


# --- the figures by hand ----------------------------------------------------------------------------------
def test_mae_and_psnr_by_hand_on_both_scales():
    spec = DataSpec("t", (1, 2, 2), 17)
    out, truth = torch.zeros(1, 1, 2, 2), torch.tensor([[[[8.0, 16.0], [0.0, 8.0]]]])
    e = image_errors(out, truth, spec)  # on [0, 1]: |diff| = .5, 1, 0, .5
    assert e["mae"] == pytest.approx(0.5)
    assert e["psnr_db"] == pytest.approx(10 * math.log10(1 / 0.375))
    cont = DataSpec("c", (1, 1, 2), None)  # raw units, peak = truth max - min = 2
    e = image_errors(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 3.0]]]]), cont)
    assert e["mae"] == pytest.approx(2.0)
    assert e["psnr_db"] == pytest.approx(10 * math.log10(4 / 5))
    assert image_errors(truth, truth, spec) == {"mae": 0.0, "psnr_db": PSNR_CAP_DB}


def test_baselines_identity_and_oracle(thick):
    tr = thick.translation
    a, t, y = tr.source["test"], tr.truth["test"], tr.source_labels["test"]
    s = translation_scores(identity(thick.spec), thick)
    rows = s["rows"]
    assert set(rows) == {"model", "identity", "oracle"} and s["n"] == len(a)
    assert rows["identity"]["mae"] == pytest.approx((a - t).abs().mean().item() / 16)
    assert rows["model"] == rows["identity"]  # the identity translator is the identity baseline
    assert rows["oracle"]["mae"] == 0.0 and rows["oracle"]["psnr_db"] == PSNR_CAP_DB
    net = digits_feature_net().net
    assert rows["oracle"]["label_preservation"] == pytest.approx(accuracy(net, t, y))
    assert rows["identity"]["label_preservation"] == pytest.approx(accuracy(net, a, y))
    # thickened real B and T(A) are the same distribution; thin digits are not
    assert rows["oracle"]["frechet_distance"] < rows["identity"]["frechet_distance"] / 3
    assert rows["identity"]["cycle_error"] == 0.0 and rows["oracle"]["cycle_error"] is None
    # the same figures for an oracle translator as for the oracle baseline
    assert translation_scores(oracle(thick), thick)["rows"]["model"] == rows["oracle"]


def test_paired_oracle_has_fd_zero_against_its_own_b(edges):
    rows = translation_scores(oracle(edges), edges)["rows"]
    assert rows["oracle"]["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert rows["model"]["mae"] == 0.0
    assert rows["identity"]["frechet_distance"] > 50  # edge maps are far from digits


def test_label_flipping_map_preserves_no_labels(thick):
    """G(a) = a real thick digit of class y(a) + 1: on the data (low FD) but every label wrong."""
    tr, net = thick.translation, digits_feature_net().net
    t, y = tr.truth["test"], tr.source_labels["test"]
    predicted = net(t).argmax(1)
    protos = torch.stack([t[(y == c) & (predicted == c)][0] for c in range(10)])
    a = tr.source["test"].reshape(len(y), -1)

    def flip(x):
        rows = torch.cdist(x.reshape(len(x), -1).double(), a.double()).argmin(1)
        return protos[(y[rows] + 1) % 10].clone()

    rows = translation_scores(Stand(thick.spec, flip), thick)["rows"]
    assert rows["model"]["label_preservation"] == 0.0
    assert rows["oracle"]["label_preservation"] > 0.5  # the shipped classifier reads thick digits poorly


def test_cycle_error_exact_inverse_zero_and_otherwise_measured(thick):
    invert = lambda x: 16 - x  # noqa: E731
    s = translation_scores(Stand(thick.spec, invert, invert), thick)
    assert s["rows"]["model"]["cycle_error"] == 0.0
    a = thick.translation.source["test"]
    s = translation_scores(Stand(thick.spec, invert, lambda x: x.clone()), thick)  # F = identity
    assert s["rows"]["model"]["cycle_error"] == pytest.approx((16 - 2 * a).abs().mean().item() / 16)
    one_way = Stand(thick.spec, invert)
    assert not can_reverse(one_way)
    assert translation_scores(one_way, thick)["rows"]["model"]["cycle_error"] is None


def test_scores_refuse_non_translators_and_plain_data(thick, digits):
    plain = nn.Linear(1, 1)
    with pytest.raises(ConfigError, match="cannot translate"):
        translation_scores(plain, thick)
    with pytest.raises(DataError, match="not a translation task"):
        translation_scores(identity(digits.spec), digits)


# --- mixtures ---------------------------------------------------------------------------------------------
def test_mixture_map_error_and_component_accuracy(mixtures):
    from deepgen.data.translation import mixture_task

    task = mixture_task(0)
    tr = mixtures.translation
    a = tr.source["test"]
    s = translation_scores(Stand(mixtures.spec, task.apply, task.invert), mixtures)
    rows = s["rows"]
    assert rows["model"]["map_error"] == pytest.approx(0.0, abs=1e-9)
    assert rows["model"]["cycle_error"] == pytest.approx(0.0, abs=1e-5)
    assert rows["model"]["component_accuracy"] > 0.97
    assert rows["identity"]["map_error"] == pytest.approx((a.double() - task.apply(a).double()).pow(2).sum(1).mean()
                                                          .item(), rel=1e-6)
    # a map onto the right ring that sends component k to k + 1: on the data, every component wrong
    centre = task.apply(torch.zeros(1, 2))
    turn = 2 * math.pi / task.k
    rot = torch.tensor([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    shifted = Stand(mixtures.spec, lambda x: (task.apply(x) - centre) @ rot.T + centre)
    wrong = translation_scores(shifted, mixtures)["rows"]["model"]
    assert wrong["component_accuracy"] < 0.03 and wrong["map_error"] > 1.0
    # the true component means agree with those estimated from the labelled B examples
    y, b = mixtures.labels["train"], mixtures.train
    estimated = torch.stack([b[y == k].mean(0) for k in range(task.k)]).double()
    assert torch.allclose(component_means(mixtures), estimated, atol=0.05)
    table = translation_table(s)
    assert "component accuracy" in table and "| oracle T | 0.0000 |" in table


# --- table and picture ------------------------------------------------------------------------------------
def test_table_has_three_rows_and_marks_missing_figures(thick):
    s = translation_scores(Stand(thick.spec, lambda x: 16 - x), thick)
    table = translation_table(s)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 3
    assert lines[0] == "| map | MAE | PSNR (dB) | label preservation | cycle error | FD |"
    assert lines[2].startswith("| stand-in |") and lines[2].split("|")[5].strip() == "—"  # no cycle: one-way
    assert lines[4].startswith("| oracle T | 0.0000 | 100.00 |")
    assert "[0, 1] scale" in table


def test_grid_rows(tmp_path, thick, mixtures):
    invert = lambda x: 16 - x  # noqa: E731
    fig = translation_grid(Stand(thick.spec, invert, invert), thick, tmp_path / "both.png", n=8)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and titles[0].startswith("input a") and titles[3].startswith("reconstruction")
    assert (tmp_path / "both.png").stat().st_size > 1000
    fig = translation_grid(Stand(thick.spec, invert), thick, tmp_path / "one.png", n=8)
    assert [ax.get_title().split(" ")[0] for ax in fig.axes] == ["input", "translation", "truth"]
    fig = translation_grid(identity(mixtures.spec), mixtures, tmp_path / "points.png")
    assert (tmp_path / "points.png").is_file() and "data units" in fig.axes[0].get_xlabel()


# --- alignment for training -------------------------------------------------------------------------------
def test_alignment_for_training_learns_from_translations(edges):
    """Edge maps alone teach little about digits; edges plus their exact translations (the digits) do."""
    r = alignment_for_training(oracle(edges, "train"), edges, steps=150)
    assert 0 <= r["a_only"] <= 1 and r["n_train_a"] == len(edges.train)
    assert r["a_plus_translated"] > r["a_only"] + 0.2
    assert r["a_plus_translated"] >= r["b_only"] - 0.05
    assert "real digits (reference)" in alignment_table(r)
    again = alignment_for_training(oracle(edges, "train"), edges, steps=150, reference=False)
    assert again["a_only"] == r["a_only"] and "b_only" not in again  # seeded


def test_unknown_truth_leaves_error_figures_and_oracle_out(thick):
    """Users' unpaired folders: no T, so no MAE / PSNR and no oracle row; labels and FD still measured."""
    from deepgen.data.spec import Splits, Translation

    tr = thick.translation
    users = Splits(thick.spec, thick.train, thick.val, thick.test, labels=thick.labels, classes=thick.classes,
                   translation=Translation(paired=False, source=tr.source, source_labels=tr.source_labels,
                                           domains=tr.domains))
    s = translation_scores(identity(thick.spec), users)
    assert s["rows"]["oracle"] is None and s["rows"]["model"]["mae"] is None
    assert s["rows"]["model"]["label_preservation"] > 0.9 and s["rows"]["model"]["frechet_distance"] > 100
    assert translation_table(s).splitlines()[-1] == "| oracle T | — | — | — | — | — |"
