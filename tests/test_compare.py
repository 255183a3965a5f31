"""``deepgen compare``: same split and budget for every model, one table, one picture."""

from __future__ import annotations

import csv
import json

from deepgen.workflows.compare import compare


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
