"""``deepgen compare``: same split and budget for every model, one table, one picture."""

from __future__ import annotations

import csv
import json

import math

import pytest
import torch

from deepgen.data import load_data
from deepgen.data.spec import DataSpec, Splits
from deepgen.evaluation.baselines import independent_log_prob, independent_nll
from deepgen.errors import ConfigError
from deepgen.io import parse_value
from deepgen.workflows.compare import compare, nll_caption, parse_model_entry, run_dir_name


def test_compare_trains_each_model_and_writes_one_table(tmp_path):
    rows = compare("ring8", ["realnvp", "gan"], steps=30, out=tmp_path, progress=False,
                   extra={"eval_every": 30, "batch_size": 64})
    assert [r["model"] for r in rows] == ["realnvp", "gan"]
    for name in ("compare.md", "compare.csv", "samples.png"):
        assert (tmp_path / name).is_file(), name
    flow = json.loads((tmp_path / "realnvp" / "scores.json").read_text())
    assert rows[0]["test_nll_nats"] == flow["nll_nats"]  # the table shows each run's own test figure
    assert rows[0]["figure"] == "exact" and rows[1]["figure"] == "none (implicit model)"
    assert rows[1]["test_nll_nats"] is None
    # ring8 has known modes: every model's mode coverage is a column
    gan = json.loads((tmp_path / "gan" / "scores.json").read_text())
    assert rows[1]["modes_covered"] == gan["modes"]["modes_covered"]
    assert rows[1]["high_quality_pct"] == gan["modes"]["high_quality_pct"]
    assert all(r["steps"] == 30 and r["sample_per_s"] > 0 and r["parameters"] > 0 for r in rows)
    table = list(csv.DictReader(open(tmp_path / "compare.csv")))
    assert [t["model"] for t in table] == ["realnvp", "gan", "independent"]
    md = (tmp_path / "compare.md").read_text()
    assert "| realnvp |" in md and "| gan |" in md and "nats" in md and "high quality %" in md
    # the independent-dimension baseline closes the table, with its exact test NLL
    splits = load_data("ring8")
    assert float(table[2]["test_nll_nats"]) == independent_nll(splits)
    assert "| independent | baseline |" in md
    table = table[:2]
    # the budget: steps, batch size, and each model's wall time next to its parameter count
    assert "30 training steps of batch size 64 per model" in md and "train time (s)" in md
    assert all(float(t["train_time_s"]) > 0 and t["batch_size"] == "64" and t["steps"] == "30" for t in table)
    # the sample grids are captioned with each model's test NLL
    assert nll_caption(rows[0]) == (f"test NLL {flow['nll_nats']:.3f} nats, "
                                    f"{flow['bits_per_dim']:.3f} bits/dim")
    assert nll_caption(rows[1]).startswith("no density")


def test_model_entries_with_hyper_parameters(tmp_path):
    assert parse_model_entry("vae") == ("vae", {}, "vae")
    assert parse_model_entry("vae:beta=4:posterior=iaf:lr_like=1e-3") == (
        "vae", {"beta": 4, "posterior": "iaf", "lr_like": 1e-3}, "vae:beta=4:posterior=iaf:lr_like=1e-3")
    assert run_dir_name("vae:beta=4") == "vae-beta-4"
    assert parse_value("true") is True and parse_value("0.5") == 0.5 and parse_value("a b") == "a b"
    for bad in ("vae:beta", "vae:=3"):
        with pytest.raises(ConfigError, match="NAME:key=value"):
            parse_model_entry(bad)
    with pytest.raises(ConfigError, match="unknown model"):
        parse_model_entry("vea:beta=4")
    # two variants of one model: two rows, two run directories, each with its own parameter
    rows = compare("moons", ["vae:beta=1:hidden=16:iw_samples=2", "vae:beta=4:hidden=16:iw_samples=2"], steps=5, out=tmp_path, progress=False,
                   iw_samples=5, extra={"eval_every": 5, "batch_size": 32})
    assert [r["model"] for r in rows] == ["vae:beta=1:hidden=16:iw_samples=2", "vae:beta=4:hidden=16:iw_samples=2"]
    for beta, name in ((1, "vae-beta-1-hidden-16-iw_samples-2"), (4, "vae-beta-4-hidden-16-iw_samples-2")):
        cfg = (tmp_path / name / "config.yaml").read_text()
        assert f"beta: {beta}" in cfg and "hidden: 16" in cfg
    assert all(isinstance(r["test_elbo_nats"], float) and r["mig"] is None for r in rows)
    assert "test ELBO (nats)" in (tmp_path / "compare.md").read_text()


def test_independent_baseline_is_the_smoothed_product_of_marginals():
    train = torch.tensor([[0.0, 2.0], [0.0, 1.0], [1.0, 2.0], [0.0, 2.0]])
    x = torch.tensor([[1.0, 0.0]])
    # dim 0: counts (3, 1, 0) + 1/2 over N + 3/2; dim 1: counts (0, 1, 3) + 1/2
    expect = math.log(1.5 / 5.5) + math.log(0.5 / 5.5)
    assert abs(independent_log_prob(train, x, 3).item() - expect) < 1e-12
    # a proper distribution: sums to 1 over all 9 configurations
    grid = torch.tensor([[a, b] for a in range(3) for b in range(3)], dtype=torch.float)
    assert abs(independent_log_prob(train, grid, 3).exp().sum().item() - 1) < 1e-12
    cont = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 0.5]) + 1
    lp = independent_log_prob(cont, cont, None)
    ref = torch.distributions.Normal(cont.double().mean(0), cont.double().std(0, unbiased=False)).log_prob(
        cont.double()).sum(1)
    torch.testing.assert_close(lp, ref)
    splits = Splits(DataSpec("t", (2,), 3), train, train, train.flip(0))
    assert independent_nll(splits) == -independent_log_prob(train, train.flip(0), 3).mean().item()


def test_bound_without_importance_sampling_is_scored_as_is(tmp_path):
    """A VQ-VAE's bound takes no k: compare scores it without --iw-samples (it used to stop the whole table)."""
    entry = "vqvae:codes=8:code_dim=4:channels=8:depth=1:prior_channels=8:prior_blocks=1:prior_kernel=3:vq_steps=2"
    rows = compare("digits", [entry, "vae:hidden=8:channels=8:iw_samples=2"], steps=4, out=tmp_path, progress=False,
                   iw_samples=3, extra={"eval_every": 4, "batch_size": 32})
    assert rows[0]["figure"] == "bound" and rows[1]["figure"] == "estimate (IWAE, k=3)"
    assert all(r["test_nll_nats"] > 0 for r in rows)
