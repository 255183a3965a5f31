"""Plots people can read: the file format of the suffix, training curves on a grid with units and
no duplicate panels, a colour bar on the density map, pair plots of 1..16 features."""

from __future__ import annotations

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.evaluation.plots import (
    curve_panels, plot_2d, plot_pairs, plot_training_curves, save_figure, subplots,
)
from deepgen.models.registry import build_model
from deepgen.training.metrics import MetricsTable

# metrics.csv columns as the trainers write them (realnvp / made, vae, gan), two rows each
FLOW = [{"step": 1, "train/loss": 3.8, "train/nll": 3.8, "lr": 2e-5, "time_s": 0.1},
        {"step": 25, "train/loss": 3.6, "train/nll": 3.6, "lr": 2e-4, "time_s": 0.3},
        {"step": 30, "val/nll_nats": 3.5, "val/bits_per_dim": 2.5}]
VAE = [{"step": 1, "train/loss": 400.0, "train/elbo": -400.0, "train/kl": 0.05, "train/rec": -399.95, "lr": 2e-5},
       {"step": 25, "train/loss": 377.0, "train/elbo": -377.0, "train/kl": 0.14, "train/rec": -376.86, "lr": 2e-4},
       {"step": 30, "val/nll_nats": 329.4, "val/bits_per_dim": 7.4}]
GAN = [{"step": s, "train/discriminator_loss": 1.38 - s / 100, "train/discriminator_d_real": 0.5 + s / 200,
        "train/discriminator_d_fake": 0.5 - s / 300, "train/generator_loss": 0.69 + s / 100,
        "train/generator_d_fake": 0.5 - s / 250, "lr": 1e-3 - s * 1e-5, "time_s": s / 10} for s in (1, 25)]
GAN += [{"step": 30, "val/energy_distance": 1.77, "val/modes_covered": 0.0, "val/high_quality_pct": 0.0},
        {"step": 60, "val/energy_distance": 1.71, "val/modes_covered": 1.0, "val/high_quality_pct": 0.72}]


def panels_of(fig):
    """(row, column, title, y label, lines as (x, y) tuples) of each panel that has lines."""
    out = []
    for ax in fig.axes:
        if ax.lines:
            spec = ax.get_subplotspec()
            lines = tuple((tuple(ln.get_xdata()), tuple(ln.get_ydata())) for ln in ax.lines)
            out.append((spec.rowspan.start, spec.colspan.start, ax.get_title(), ax.get_ylabel(), lines))
    return out


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF-"), (".svg", b"<svg")])
def test_save_figure_writes_the_format_of_the_suffix(tmp_path, suffix, magic):
    fig, ax = subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / f"f{suffix.upper()}")
    assert magic in (tmp_path / f"f{suffix.upper()}").read_bytes()[:400]


def test_save_figure_refuses_other_suffixes(tmp_path):
    fig, _ = subplots()
    with pytest.raises(ConfigError, match=r"\.png, \.pdf, \.svg"):
        save_figure(fig, tmp_path / "f.jpg")
    assert list(tmp_path.iterdir()) == []


def test_gan_curves_are_a_grid_with_units_and_titles(tmp_path):
    fig = plot_training_curves(MetricsTable(GAN), tmp_path / "c.png", "gan on ring8")
    assert (tmp_path / "c.png").is_file() and fig._suptitle.get_text() == "gan on ring8"
    panels = panels_of(fig)
    rows = {p[0] for p in panels}
    assert len(rows) > 1 and max(p[1] for p in panels) <= 2  # several rows, at most 3 columns
    units = {p[2]: p[3] for p in panels}
    assert units["player losses"] == "loss" and units["learning rate"] == "learning rate"
    assert all(p[3] for p in panels)  # every panel has a y label


@pytest.mark.parametrize("rows", [FLOW, VAE, GAN], ids=["flow", "vae", "gan"])
def test_no_two_panels_or_lines_are_the_same(tmp_path, rows):
    fig = plot_training_curves(MetricsTable(rows), tmp_path / "c.png", "m on d")
    panels = panels_of(fig)
    assert len({p[4] for p in panels}) == len(panels)  # no two identical panels
    lines = [ln for p in panels for ln in p[4]]
    assert len(set(lines)) == len(lines)  # no series drawn twice


def test_flow_loss_and_nll_are_one_series_in_nats(tmp_path):
    panels = curve_panels(MetricsTable(FLOW))
    titles = [p[0] for p in panels]
    loss = panels[0]
    assert loss[1] == "nats/example" and [s[0] for s in loss[2]] == ["train/loss = train/nll", "val/nll_nats"]
    assert ("bits/dim", "bits/dim") in [(p[0], p[1]) for p in panels] and titles[-1] == "learning rate"
    vae = curve_panels(MetricsTable(VAE))
    assert vae[0][2][0][0] == "train/loss = -train/elbo"  # -ELBO is the loss when beta = 1: one line
    assert {p[1] for p in vae} == {"nats/example", "bits/dim", "learning rate"}


def test_no_curves_no_file(tmp_path):
    assert plot_training_curves(MetricsTable(), tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_density_map_has_a_colour_bar(tmp_path):
    torch.manual_seed(0)
    data = torch.randn(200, 2)
    flow = build_model("realnvp", DataSpec("v", (2,)), {"couplings": 2, "hidden": 8})
    fig = plot_2d(flow, data, torch.randn(50, 2), tmp_path / "d.png", "flow")
    assert len(fig.axes) == 3 and "p(x)" in fig.axes[2].get_ylabel()  # data, density, colour bar
    gan = build_model("gan", DataSpec("v", (2,)), {"hidden": 8})
    assert len(plot_2d(gan, data, torch.randn(50, 2), tmp_path / "g.png").axes) == 2  # no density, no bar
    no_data = plot_2d(flow, None, torch.randn(50, 2), tmp_path / "n.png")
    assert no_data.axes[0].get_title().startswith("model samples (no data)")


def test_pair_plot_names_every_feature(tmp_path):
    data, samples = torch.randn(300, 3), torch.randn(100, 3)
    fig = plot_pairs(data, samples, tmp_path / "p.svg", "pairs", names=["a", "b", "c"])
    assert (tmp_path / "p.svg").is_file() and len(fig.axes) == 9 + 3  # 3 x 3 panels, histograms on twin axes
    bottom = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    left = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert bottom == ["a", "b", "c"] and left == ["a", "b", "c"]
    scatters = [ax for ax in fig.axes if ax.collections]
    assert len(scatters) == 6 and all(len(ax.collections) == 2 for ax in scatters)  # data and samples
    histograms = [ax for ax in fig.axes if ax.patches]
    assert len(histograms) == 3 and all(len(ax.patches) == 2 for ax in histograms)


def test_pair_plot_of_one_feature_is_a_histogram_and_17_are_refused(tmp_path):
    fig = plot_pairs(torch.randn(100, 1), torch.randn(50, 1), tmp_path / "h.png", names=["height"])
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "height" and len(fig.axes[0].patches) == 2
    with pytest.raises(ConfigError, match="16"):
        plot_pairs(None, torch.randn(10, 17), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
