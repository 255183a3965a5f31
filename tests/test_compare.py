"""``deepgen compare``: same split and budget for every model, one table, one picture."""

from __future__ import annotations

import csv
import json

from deepgen.workflows.compare import compare, nll_caption


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
    assert all(r["steps"] == 30 and r["sample_per_s"] > 0 and r["parameters"] > 0 for r in rows)
    table = list(csv.DictReader(open(tmp_path / "compare.csv")))
    assert [t["model"] for t in table] == ["realnvp", "gan"]
    md = (tmp_path / "compare.md").read_text()
    assert "| realnvp |" in md and "| gan |" in md and "nats" in md
    # the budget: steps, batch size, and each model's wall time next to its parameter count
    assert "30 training steps of batch size 64 per model" in md and "train time (s)" in md
    assert all(float(t["train_time_s"]) > 0 and t["batch_size"] == "64" and t["steps"] == "30" for t in table)
    # the sample grids are captioned with each model's test NLL
    assert nll_caption(rows[0]) == (f"test NLL {flow['nll_nats']:.3f} nats, "
                                    f"{flow['bits_per_dim']:.3f} bits/dim")
    assert nll_caption(rows[1]).startswith("no density")
