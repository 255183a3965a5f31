"""Image restoration with a trained model: corruptions, simple baselines, two restoration algorithms, and
the figures that compare them.

Corruptions (every draw from a seeded ``torch.Generator``), of images x (N, C, H, W) on the data's scale
with range [low, high] (``data_range``: 0 .. L-1 for L discrete levels, the clean split's min .. max for
continuous data):

* denoise:  y = clip(x + sigma e, low, high), e ~ N(0, I), sigma = noise (high - low); rounded to the
  nearest level for discrete data, so y is a valid data point.
* inpaint:  a square block of side b (default half the shorter side), all channels, at a uniformly random
  position inside each image, is hidden.  The corrupted image scored as such has the block black (= low).
* upscale:  the mean of each f x f block, y_low = down(x)  (f = ``factor``, dividing H and W), shown as
  the nearest-neighbour upsampled image up(y_low), which has the same block means as x.

Baselines: denoise, the 3x3 median of each channel (edges replicated); inpaint, the block filled with the
training split's mean image; upscale, nearest-neighbour upsampling (= the corrupted image as shown).

Restoration by a model with capability "encode" (AE, DAE, VAE: r(x) = decode(encode(x), mean=True)),
``steps`` times from a start x_0 (denoise: y; inpaint: the baseline; upscale: up(y_low)):

    denoise:  x_{t+1} = r(x_t)
    inpaint:  x_{t+1} = r(x_t) on the block, the observed pixels elsewhere
    upscale:  x_{t+1} = r(x_t) + up(y_low - down(r(x_t)))      (block means equal the observation's)

and the result is clipped to [low, high] (which can only lower the error: the clean image lies inside).
Restoration by a model with capability "complete" (autoregressive), inpaint only: the mean of K completions
x^k ~ q(block | observed), a Monte-Carlo estimate of the posterior mean, the estimate of least expected MSE.
Restored images are real-valued estimates, not rounded to the levels (rounding would raise the MSE).

Figures: per image MSE_i = mean over pixels of (x_hat - x)^2 on the data's scale; ``mse`` is the mean of
MSE_i over images, and PSNR = 10 log10(peak^2 / mse) (peak = high - low) of that mean, i.e. of all images'
pixels pooled; an MSE of 0 gives :data:`PSNR_CAP_DB` instead of infinity (JSON has no infinity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepgen.errors import ConfigError

TASKS = ("denoise", "inpaint", "upscale")
PSNR_CAP_DB = 100.0  # reported for a perfect restoration (MSE 0): an MSE 1e-10 of peak^2
# Reconstruction steps of an "encode" model by default, per task, measured on digits with a VAE (3000 steps;
# restored PSNR in dB after 1 / 2 / 3 / 5 / 10 / 20 / 50 steps): denoise 17.8 / 17.5 / 17.1 / 16.3 / 14.8 /
# 13.2 / 11.8 (each further pass drifts from the observation towards a prototype digit: one pass is best);
# inpaint 17.6 / 18.2 / 18.5 / 18.7 / 18.9 / 18.7 / 18.5; upscale 11.55 / 11.55 / 11.56 / 11.5 / 11.2 / 10.8 / 10.5.
DEFAULT_STEPS = {"denoise": 1, "inpaint": 10, "upscale": 3}
BASELINES = {"denoise": "3x3 median filter", "inpaint": "block filled with the training mean image",
             "upscale": "nearest-neighbour upsampling"}
CORRUPTIONS = {"denoise": "Gaussian noise of std {noise} x the data range, clipped (and rounded to the levels)",
               "inpaint": "a {block}x{block} block hidden at a random position (scored as black)",
               "upscale": "{factor}x{factor} block means, shown nearest-neighbour upsampled"}


# --- corruptions ----------------------------------------------------------------------------------------
def data_range(levels: int | None, clean: torch.Tensor) -> tuple[float, float]:
    """(low, high) of the data: (0, L - 1) for L discrete levels, else the min and max of ``clean``."""
    if levels is not None:
        return 0.0, float(levels - 1)
    return float(clean.min()), float(clean.max())


def add_noise(x: torch.Tensor, std: float, low: float, high: float, levels: int | None,
              generator: torch.Generator) -> torch.Tensor:
    """x + N(0, std^2) noise, clipped to [low, high] and, for discrete data, rounded to the nearest level."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    y = (x + std * noise).clamp(low, high)
    return y.round() if levels is not None else y


def default_block(shape) -> int:
    """Half the shorter side of (C, H, W) images (at least 1)."""
    return max(1, min(shape[1:]) // 2)


def check_block(shape, block: int) -> None:
    if not 1 <= block <= min(shape[1:]):
        raise ConfigError(f"--block {block}: expected a side in 1..{min(shape[1:])} for images of shape "
                          f"{tuple(shape)}")


def block_masks(n: int, shape, block: int, generator: torch.Generator) -> torch.Tensor:
    """(n, C, H, W) bool, True on one block x block square per image (every channel), its top-left corner
    uniform over the positions that keep it inside the image."""
    check_block(shape, block)
    c, h, w = shape
    top = torch.randint(h - block + 1, (n,), generator=generator)
    left = torch.randint(w - block + 1, (n,), generator=generator)
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + block)  # (n, h)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + block)  # (n, w)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None].expand(n, c, h, w).clone()


def check_factor(shape, factor: int) -> None:
    h, w = shape[1:]
    if factor < 2 or h % factor or w % factor:
        raise ConfigError(f"--factor {factor}: expected an integer >= 2 that divides the image size {h}x{w}")


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of each factor x factor block: (N, C, H, W) -> (N, C, H/f, W/f)."""
    return F.avg_pool2d(x, factor)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling: each pixel repeated into a factor x factor block."""
    return x.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


# --- baselines ------------------------------------------------------------------------------------------
def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median filter of each channel of (N, C, H, W) images, borders replicated."""
    n, c, h, w = x.shape
    padded = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    patches = F.unfold(padded, 3)  # (n c, 9, h w)
    return patches.median(1).values.reshape(n, c, h, w)


def mean_fill(x: torch.Tensor, missing: torch.Tensor, mean_image: torch.Tensor) -> torch.Tensor:
    """x with its ``missing`` pixels replaced by those of ``mean_image`` (the training split's mean)."""
    return torch.where(missing, mean_image.to(x).expand_as(x), x)


# --- restoration ----------------------------------------------------------------------------------------
@torch.no_grad()
def restore_by_reconstruction(model, task: str, start: torch.Tensor, observed: torch.Tensor,
                              steps: int, low: float, high: float, missing: torch.Tensor | None = None,
                              factor: int = 0, context: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` passes of x <- r(x) with what is known re-imposed after each (see the module docstring).

    ``observed``: denoise, the noisy images; inpaint, the images (their ``missing`` pixels ignored);
    upscale, the low-resolution block means y_low (N, C, H/f, W/f)."""
    x = start
    for _ in range(steps):
        r = model.reconstruct(x, context)
        if task == "inpaint":
            x = torch.where(missing, r, observed)
        elif task == "upscale":
            x = r + upsample(observed - downsample(r, factor), factor)
        else:
            x = r
    return x.clamp(low, high)


@torch.no_grad()
def restore_by_completion(model, holed: torch.Tensor, completions: int,
                          context: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``completions`` completions of ``holed`` (NaN where missing): the observed pixels unchanged."""
    total = torch.zeros_like(holed)
    for _ in range(completions):
        total += model.complete(holed, context)[0]
    return total / completions


# --- figures --------------------------------------------------------------------------------------------
def mse_per_image(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(N,) float64: mean over pixels of (estimate - clean)^2."""
    diff = estimate.double() - clean.double()
    return diff.pow(2).reshape(len(diff), -1).mean(1)


def psnr_db(mse: float, peak: float) -> float:
    """10 log10(peak^2 / mse) in dB, :data:`PSNR_CAP_DB` where the MSE is 0 (or the ratio would exceed it)."""
    if not peak > 0:
        raise ConfigError(f"PSNR needs a peak > 0 (the data's range), got {peak}")
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(peak ** 2 / mse))
