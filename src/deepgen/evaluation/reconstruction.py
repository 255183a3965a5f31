"""Reconstruction figures of a model that encodes: mean squared error and PSNR on the data's scale.

    MSE  = 1/(N D) sum_i ||x_i - x_hat_i||^2          (x_hat = reconstruct(x): decode(encode(x)), mean)
    PSNR = 10 log10(peak^2 / MSE_i) dB, averaged over images,

with peak = L - 1 for data on L discrete levels and the split's max - min for continuous data.
"""

from __future__ import annotations

import math

import torch


def peak_value(spec, x: torch.Tensor) -> float:
    """The PSNR peak of data ``spec``: levels - 1, or the range of ``x`` for continuous data."""
    if spec.levels is not None:
        return float(spec.levels - 1)
    return float(x.max() - x.min()) or 1.0


def psnr_db(mse_per_image: torch.Tensor, peak: float) -> torch.Tensor:
    """10 log10(peak^2 / MSE) per image (inf where the MSE is 0)."""
    return 10 * torch.log10(peak ** 2 / mse_per_image.double())


@torch.no_grad()
def reconstruction_scores(model, x: torch.Tensor, spec, context: torch.Tensor | None = None,
                          batch_size: int = 256) -> dict:
    """{"mse", "psnr_db", "peak", "n"}: reconstruct(x) against x, per value and per image (see module doc).
    PSNR is the mean over images with a finite value (a perfect reconstruction is reported as its count)."""
    model.eval()
    errors = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(model.device)
        cb = None if context is None else context[i:i + batch_size]
        rec = model.reconstruct(xb, cb)
        errors.append(((rec - xb).double() ** 2).reshape(len(xb), -1).mean(1).cpu())
    mse = torch.cat(errors)
    peak = peak_value(spec, x)
    psnr = psnr_db(mse, peak)
    finite = torch.isfinite(psnr)
    out = {"mse": float(mse.mean()), "psnr_db": float(psnr[finite].mean()) if finite.any() else math.inf,
           "peak": peak, "n": len(x),
           "units": "mean squared error per value on the data's scale; PSNR in dB, mean over images"}
    if not finite.all():
        out["perfect_images"] = int((~finite).sum())
    return out
