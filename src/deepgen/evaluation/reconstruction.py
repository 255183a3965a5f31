"""Reconstruction figures of a model that encodes: mean squared error and PSNR on the data's scale,
defined as for restoration (:mod:`deepgen.evaluation.restoration`):

    MSE  = mean over images of MSE_i,  MSE_i = mean over values of (x_hat - x)^2,  x_hat = reconstruct(x)
    PSNR = 10 log10(peak^2 / MSE) dB, peak = L - 1 for L discrete levels, the split's max - min otherwise.
"""

from __future__ import annotations

import torch

from deepgen.evaluation.restoration import data_range, mse_per_image, psnr_db


@torch.no_grad()
def reconstruction_scores(model, x: torch.Tensor, spec, context: torch.Tensor | None = None,
                          batch_size: int = 256) -> dict:
    """{"mse", "psnr_db", "peak", "n", "units"}: reconstruct(x) against x (see the module docstring)."""
    model.eval()
    errors = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(model.device)
        cb = None if context is None else context[i:i + batch_size]
        errors.append(mse_per_image(model.reconstruct(xb, cb), xb).cpu())
    mse = float(torch.cat(errors).mean())
    low, high = data_range(spec.levels, x)
    return {"mse": mse, "psnr_db": psnr_db(mse, high - low), "peak": high - low, "n": len(x),
            "units": "mean squared error per value on the data's scale; PSNR in dB of that mean"}
