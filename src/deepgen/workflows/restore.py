"""``deepgen restore``: corrupt test images (noise, a hidden block, a lower resolution), restore them with a
trained run, and compare the restored images' MSE and PSNR with the corrupted input's and a simple baseline's.

The corruptions, baselines, algorithms and figures are in :mod:`deepgen.evaluation.restoration`.  A run whose
model can ``encode`` (AE, DAE, VAE) restores every task by repeated reconstruction; one that can ``complete``
(autoregressive) inpaints with the mean of several completions (preferred for inpainting when a model can do
both).  Writes ``--out`` (a picture: rows clean, corrupted, baseline, restored; or ``.npz`` with those arrays
and ``missing``) and beside it ``<out>.json`` with the figures, which are also returned.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from deepgen.errors import ConfigError
from deepgen.evaluation import restoration as R
from deepgen.evaluation.plots import plot_image_rows
from deepgen.io import atomic_path, strict_json, write_text
from deepgen.models.pretrained import load_model
from deepgen.workflows.runs import check_picture_out, run_split

SHOWN = 12  # images in the picture


def _method(model, task: str, run) -> str:
    """"complete" or "reconstruct": how ``model`` restores ``task``; a one-line ConfigError when it cannot."""
    can_encode, can_complete = model.can("encode"), model.can("complete")
    if task == "inpaint" and can_complete:
        return "complete"
    if can_encode:
        return "reconstruct"
    caps = ", ".join(sorted(model.capabilities)) or "none"
    if can_complete:
        raise ConfigError(f"run '{run}': model {model.name} can only fill in hidden pixels (--task inpaint); "
                          f"{task} needs a model that reconstructs images (capability encode: ae, dae, vae)")
    raise ConfigError(f"run '{run}': model {model.name} can neither reconstruct (capability encode) nor complete "
                      f"hidden pixels (capability complete); its capabilities: {caps}")


def restore(run, data: str | None = None, task: str = "denoise", out=None, n: int | None = None,
            split: str = "test", seed: int = 0, noise: float = 0.2, block: int | None = None, factor: int = 4,
            steps: int | None = None, completions: int = 8, labels: str | None = None,
            batch_size: int = 256) -> dict:
    """Corrupt the first ``n`` images (default: all) of ``split`` of ``data`` (default: the run's) for
    ``task`` (denoise: noise std ``noise`` x the data range; inpaint: a ``block``-sided square; upscale:
    ``factor`` x ``factor`` block means), restore them with the run (``steps`` reconstruction passes, default
    per task :data:`~deepgen.evaluation.restoration.DEFAULT_STEPS`; or the mean of ``completions``
    completions), and return MSE and PSNR of corrupted, baseline and restored images.  With ``out``, write
    the picture (or .npz) there and the figures to ``out`` with suffix .json."""
    if task not in R.TASKS:
        raise ConfigError(f"--task {task!r}: expected one of {', '.join(R.TASKS)}")
    for name, value, low in (("-n", n, 1), ("--completions", completions, 1), ("--steps", steps, 1),
                             ("--batch-size", batch_size, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"--noise must be a finite number >= 0 (a fraction of the data range), got {noise}")
    out = None if out is None else Path(out)
    model = load_model(run)
    method = _method(model, task, run)
    if not model.spec.is_image:
        raise ConfigError(f"run '{run}': data '{model.spec.name}' are vectors of {model.spec.dim} features; "
                          "restore works on images")
    fmt = None if out is None else check_picture_out(out, model.spec)
    shape = tuple(model.spec.shape)
    block = R.default_block(shape) if block is None else block
    if task == "inpaint":
        R.check_block(shape, block)
    if task == "upscale":
        R.check_factor(shape, factor)
    steps = R.DEFAULT_STEPS[task] if steps is None else steps

    part = run_split(run, model.spec, data, labels, split)
    data_name, splits, whole, spec = part.data_name, part.splits, part.x, part.splits.spec
    low, high = R.data_range(spec.levels, whole)
    if not high > low:
        raise ConfigError(f"{data_name}: the {split} split is constant ({low:g}); PSNR needs a range")
    count = len(whole) if n is None else min(n, len(whole))
    clean = whole[:count].to(model.device, next(model.parameters()).dtype)
    context = None if part.context is None else part.context[:count].to(model.device)

    g = torch.Generator().manual_seed(seed)
    missing = None
    if task == "denoise":
        corrupted = R.add_noise(clean, noise * (high - low), low, high, spec.levels, g)
        baseline = R.median3(corrupted)
        observed, start, shown = corrupted, corrupted, corrupted
    elif task == "inpaint":
        missing = R.block_masks(count, shape, block, g).to(clean.device)
        corrupted = torch.where(missing, torch.full_like(clean, low), clean)
        baseline = R.mean_fill(clean, missing, splits.split("train").mean(0))
        observed, start, shown = clean, baseline, corrupted
    else:
        observed = R.downsample(clean, factor)
        corrupted = baseline = start = shown = R.upsample(observed, factor)

    restored = []
    with torch.random.fork_rng(devices=[] if model.device.type != "cuda" else [model.device]):
        torch.manual_seed(seed)
        for i in range(0, count, batch_size):
            sl = slice(i, i + batch_size)
            cb = None if context is None else context[sl]
            if method == "complete":
                holed = torch.where(missing[sl], torch.full_like(clean[sl], float("nan")), clean[sl])
                restored.append(R.restore_by_completion(model, holed, completions, cb))
            else:
                restored.append(R.restore_by_reconstruction(
                    model, task, start[sl], observed[sl], steps, low, high,
                    missing=None if missing is None else missing[sl], factor=factor, context=cb))
    restored = torch.cat(restored)

    peak = high - low
    mse = {name: R.mse_per_image(est, clean).mean().item()
           for name, est in (("corrupted", corrupted), ("baseline", baseline), ("restored", restored))}
    settings = {"seed": seed, "method": method}
    if task == "denoise":
        settings.update(noise=noise, noise_std=noise * peak)
    elif task == "inpaint":
        settings["block"] = block
    else:
        settings["factor"] = factor
    if method == "complete":
        settings["completions"] = completions
    else:
        settings["steps"] = steps
    result = {
        "task": task, "n": count, "model": model.name, "data": spec.name, "split": split,
        "mse": mse, "psnr_db": {k: R.psnr_db(v, peak) for k, v in mse.items()}, "peak": peak,
        "corruption": R.CORRUPTIONS[task].format(noise=noise, block=block, factor=factor),
        "baseline": R.BASELINES[task],
        "averaging": ("mse: mean over the n images of each image's mean squared error (data scale); psnr_db: "
                      f"10 log10(peak^2 / mse) of that mean, {R.PSNR_CAP_DB:g} dB where mse is 0"),
        "settings": settings,
    }
    if part.label_context is not None:
        result["conditional_on"] = "true labels"
    if out is not None:
        k = min(SHOWN, count)
        cpu = [t[:k].cpu() for t in (clean, shown, baseline, restored)]
        if fmt == ".npz":
            with atomic_path(out) as tmp, open(tmp, "wb") as f:
                arrays = dict(zip(("clean", "corrupted", "baseline", "restored"), (t.numpy() for t in cpu)))
                if missing is not None:
                    arrays["missing"] = missing[:k].cpu().numpy()
                np.savez(f, **arrays)
        else:
            ps = result["psnr_db"]
            title = (f"{model.name} on {spec.name} ({split}), {task}: PSNR corrupted {ps['corrupted']:.1f}, "
                     f"baseline {ps['baseline']:.1f}, restored {ps['restored']:.1f} dB")
            corrupted_row = (("corrupted (red: hidden)", cpu[1], missing[:k].cpu()) if missing is not None
                             else ("corrupted", cpu[1]))
            rows = [("clean", cpu[0]), corrupted_row, (f"baseline: {R.BASELINES[task]}", cpu[2]),
                    (f"restored ({method})", cpu[3])]
            plot_image_rows(rows, out, spec.levels, ncol=k, title=title)
        result["picture" if fmt != ".npz" else "arrays"] = str(out)
        json_path = out.with_suffix(".json")
        write_text(json_path, strict_json(result) + "\n")
        result["json"] = str(json_path)
    return result
