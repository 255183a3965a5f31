"""``score``: the figures a run reports on one split, shared by training and the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from deepgen.data.spec import Splits
from deepgen.evaluation.likelihood import nll_summary, per_example_log_prob
from deepgen.io import write_text


def units(spec) -> str:
    if spec.levels is not None:
        return (f"nats per example and bits per dimension of {spec.dim}-dim data with {spec.levels} discrete "
                f"levels (log P(k) on the discrete scale)")
    return f"nats per example and bits per dimension of {spec.dim}-dim continuous data in its own units"


def score_model(model, splits: Splits, split: str = "test", seed: int = 0, batch_size: int = 256,
                csv_path=None) -> dict:
    """Mean NLL (nats), bits/dim and sample size on ``split``; per-example log p to ``csv_path``."""
    x = splits.split(split)
    result = {"model": model.name, "data": splits.spec.name, "split": split, "density": model.density}
    log_probs = per_example_log_prob(model, x, batch_size=batch_size, seed=seed)
    result.update(nll_summary(log_probs, splits.spec))
    result["units"] = units(splits.spec)
    if splits.spec.levels is not None and model.family == "flow":
        result["dequantization"] = "uniform, 1 draw per example (seeded); NLL is an upper bound on -log P(k)"
    if csv_path is not None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["index", "log_prob_nats", "nll_nats", "bits_per_dim"])
        for i, lp in enumerate(log_probs.tolist()):
            w.writerow([i, f"{lp:.6f}", f"{-lp:.6f}", f"{splits.spec.bits_per_dim(-lp):.6f}"])
        write_text(Path(csv_path), buf.getvalue())
    return result
