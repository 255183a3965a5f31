"""The synthetic "puppet" domain of PuppetGAN: digit prototypes with a known, settable rotation angle.

A puppet is a crude synthetic digit whose attribute, its rotation angle, is known exactly and can be
set (PuppetGAN, seed 000: a synthetic domain in which the manipulated attribute is under control).
Content k in 0..K-1 is a *prototype* P_k: by default the K = 10 per-class means of the ``digits``
training split (blurry, class-typical digits: a real domain gap to handwritten digits), on the data's
levels: P_k = (L - 1) / 16 * mean{x_i : y_i = k} for L levels (17 for ``digits``); or (``per_class`` = k)
the first k training digits of each class, K = 10 k (puppets closer to the real domain).

    render(k, t) = rotate(P_k, t)

Rotation of images (N, C, H, W) on levels 0..L-1 by t degrees (counter-clockwise as displayed, row 0
at the top; about the image centre) with bilinear sampling and zero ink outside the image:

    rotate(x, t)(p) = round(x~(R(t) p)),   R(t) = [[cos t, -sin t], [sin t, cos t]]

in the normalised pixel coordinates of ``torch.nn.functional.affine_grid`` (x to the right, y down,
``align_corners=False``), x~ the bilinear interpolation of x, the result rounded half up and clamped to
0..L-1.  Two renderings of the same content at angles t1, t2 are a supervised synthetic pair (the
same puppet, only the attribute changed).  :func:`rotate_digits` applies the same rotation to *real*
digits: the ground truth of "set the angle of this digit to t" for a digit drawn upright (t = 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepgen.data.digits import load_digits_images
from deepgen.errors import ConfigError

DIGITS_LEVELS = 17
MAX_ANGLE = 45.0  # degrees: puppets are drawn with angles uniform in [-MAX_ANGLE, MAX_ANGLE]


def _angles(angle, n: int, device, dtype) -> torch.Tensor:
    """``angle`` (a number, or one per example) as a float tensor (n,) of degrees."""
    a = torch.as_tensor(angle, dtype=dtype, device=device)
    if a.dim() == 0:
        a = a.expand(n)
    if tuple(a.shape) != (n,):
        raise ConfigError(f"rotate: need one angle or {n} angles (one per image), got shape {tuple(a.shape)}")
    return a


def rotate(x: torch.Tensor, angle, levels: int | None) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) rotated by ``angle`` degrees (a number or (N,)), counter-clockwise as displayed,
    bilinear, zeros outside; with ``levels`` L the result is rounded half up and clamped to 0..L-1."""
    if x.dim() != 4:
        raise ConfigError(f"rotate: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.float()
    rad = _angles(angle, len(x), x.device, x.dtype) * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(c)
    theta = torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if levels is None:
        return out
    return torch.floor(out + 0.5).clamp_(0, levels - 1)


def rotate_digits(x: torch.Tensor, angle, levels: int = DIGITS_LEVELS) -> torch.Tensor:
    """Real digits (N, 1, 8, 8) on levels 0..L-1 rotated by ``angle`` degrees: the ground truth of manipulation."""
    return rotate(x, angle, levels)


def digit_prototypes(levels: int = DIGITS_LEVELS, per_class: int = 0) -> torch.Tensor:
    """The puppet contents (K, 1, 8, 8) on ``levels`` ((L - 1) / 16 times the 0..16 values; float, not rounded:
    :func:`render` rounds after rotating).  ``per_class`` 0: the K = 10 per-class means of the ``digits``
    training split; k > 0: the first k training digits of each class (K = 10 k, class-major)."""
    d = load_digits_images()
    x, y = d.split("train"), d.labels["train"]
    if per_class < 0:
        raise ConfigError(f"puppet prototypes: per_class must be >= 0, got {per_class}")
    if per_class == 0:
        protos = torch.stack([x[y == k].mean(0) for k in range(len(d.classes))])
    else:
        protos = torch.cat([x[y == k][:per_class] for k in range(len(d.classes))])
    return protos * ((levels - 1) / (DIGITS_LEVELS - 1))


def render(content: torch.Tensor, angle, prototypes: torch.Tensor, levels: int) -> torch.Tensor:
    """Puppets (N, C, H, W) on levels 0..L-1: prototype ``content`` (int64 (N,), indices into ``prototypes``
    (K, C, H, W)) rotated by ``angle`` degrees (a number or (N,))."""
    content = torch.as_tensor(content, dtype=torch.long, device=prototypes.device)
    if content.dim() != 1 or (len(content) and (content.min() < 0 or content.max() >= len(prototypes))):
        raise ConfigError(f"render: content must be indices 0..{len(prototypes) - 1} of shape (N,), "
                          f"got {content.tolist() if content.numel() < 8 else tuple(content.shape)}")
    return rotate(prototypes[content], angle, levels)


def draw_puppets(n: int, prototypes: torch.Tensor, max_angle: float = MAX_ANGLE,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random (content, angle) pairs: content uniform over the K prototypes, angle uniform in
    [-max_angle, max_angle] degrees (from ``generator``, or torch's global RNG)."""
    device = prototypes.device
    content = torch.randint(len(prototypes), (n,), generator=generator, device=device)
    angle = (2 * torch.rand(n, generator=generator, device=device) - 1) * max_angle
    return content, angle


__all__ = ["DIGITS_LEVELS", "MAX_ANGLE", "rotate", "rotate_digits", "digit_prototypes", "render", "draw_puppets"]
