"""``deepgen complete``: hide part of each test example, let a trained run fill it in, and say how well
it predicts what was hidden.

Writes ``--out`` (a picture for images: originals, the masked inputs with hidden pixels in red, and
``completions`` rows of completions; or ``.npz`` with ``original``, ``missing`` and ``completions`` for any
data) and beside it ``<out>.json`` with the hidden-part NLL of the whole split
(:mod:`deepgen.evaluation.completion`), which is also returned.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from deepgen.errors import ConfigError
from deepgen.evaluation.completion import hidden_log_likelihood, parse_mask
from deepgen.evaluation.plots import plot_image_rows
from deepgen.io import atomic_path, strict_json, write_text
from deepgen.models.pretrained import load_model
from deepgen.workflows.runs import check_picture_out, run_split

def complete_run(run, out, data: str | None = None, mask: str = "bottom-half", n: int = 16, split: str = "test",
                 seed: int = 0, completions: int = 3, samples: int = 32, temperature: float = 1.0,
                 labels: str | None = None, batch_size: int = 256) -> dict:
    """Complete ``split`` of ``data`` (default: the run's) with ``mask`` hidden; picture ``n`` examples with
    ``completions`` completions each (at ``temperature``) into ``out``, score the hidden part of every example
    (``samples`` importance samples where it is not exact, always at temperature 1).  Returns the figures."""
    for name, value, low in (("-n", n, 1), ("--completions", completions, 1), ("--samples", samples, 1),
                             ("--batch-size", batch_size, 1)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"--temperature must be a finite number >= 0, got {temperature}")
    out = Path(out)
    model = load_model(run)
    if not model.can("complete"):
        raise ConfigError(f"run '{run}': model {model.name} cannot complete partly observed data (its capabilities: "
                          f"{', '.join(sorted(model.capabilities)) or 'none'}); autoregressive models can")
    fmt = check_picture_out(out, model.spec)
    part = run_split(run, model.spec, data, labels, split)
    x, context, spec = part.x, part.context, part.splits.spec
    missing = parse_mask(mask, spec, len(x), seed)
    scores = hidden_log_likelihood(model, x, missing, context, samples=samples, batch_size=batch_size, seed=seed)
    hidden_dims = missing.reshape(len(x), -1).sum(1).double()
    nll = -scores["hidden_log_lik"]
    result = {
        "model": model.name, "data": spec.name, "split": split, "mask": mask, "n": len(x),
        "hidden_dims_mean": hidden_dims.mean().item(),
        "hidden_nll_nats": nll.mean().item(),
        "hidden_nll_nats_sem": (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan"),
        "hidden_bits_per_dim": (nll.sum() / hidden_dims.sum().clamp_min(1) / math.log(2)).item(),
        "nll_nats": -scores["log_p"].mean().item(),
        "observed_nll_nats": -scores["log_p_observed"].mean().item(),
        "estimator": scores["estimator"], "samples": scores["samples"],
        "units": ("nats per example: -log P(hidden | observed) of discrete levels" if spec.levels is not None
                  else "nats per example: -log p(hidden | observed), a density on the data's own scale"),
    }
    if part.label_context is not None:
        result["conditional_on"] = "true labels"
    shown = slice(0, min(n, len(x)))
    xs, ms = x[shown].to(model.device), missing[shown].to(model.device)
    cs = None if context is None else context[shown].to(model.device)
    holed = torch.where(ms, torch.full_like(xs, float("nan")), xs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        filled = [model.complete(holed, cs, temperature)[0].cpu() for _ in range(completions)]
    if fmt == ".npz":
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, original=xs.cpu().numpy(), missing=ms.cpu().numpy(),
                     completions=torch.stack(filled, 1).numpy())
    else:
        title = (f"{model.name} on {spec.name} ({split}), mask {mask}: hidden NLL {result['hidden_nll_nats']:.2f} "
                 f"nats ({result['estimator']})" + (f", T={temperature:g}" if temperature != 1 else ""))
        rows = [("original", xs.cpu()), ("observed (red: hidden)", xs.cpu(), ms.cpu())]
        rows += [(f"completion {i + 1}", f) for i, f in enumerate(filled)]
        plot_image_rows(rows, out, spec.levels, ncol=len(xs), title=title)
    result["picture" if fmt != ".npz" else "arrays"] = str(out)
    json_path = out.with_suffix(".json")
    write_text(json_path, strict_json(result) + "\n")
    result["json"] = str(json_path)
    return result
