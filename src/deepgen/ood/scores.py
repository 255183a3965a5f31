"""Out-of-distribution scores, one function each.  Every score is *higher for more abnormal* inputs
(PyOD's ``decision_function`` convention); densities are per dimension in bits (D = prod(shape)).

    nll               NLL(x) = -log p(x) / (D ln 2)                                   bits/dim
    likelihood-ratio  -(log p(x) - log p_bg(x)) / (D ln 2), p_bg: the same model trained on
                      perturbed inputs (Ren et al. 2019)                              bits/dim
    typicality        |NLL(x) - H_hat|, H_hat the mean NLL of the training data: an estimate of the
                      entropy rate (Nalisnick et al. 2019)                            bits/dim
    input-complexity  NLL(x) - L(x) / D, L(x) the code length of x under a lossless compressor
                      (PNG or zlib; Serra et al. 2020)                                bits/dim
    ensemble          -(mean_k log p_k(x) - var_k log p_k(x)) / (D ln 2) over K models: the negative
                      WAIC (Choi et al. 2018), log p in nats
    transform-ratio   -(log p(x) - log p_T(x)) / (D ln 2), p_T(x) = (1/K) sum_k p(T_k x): the model's own
                      density of x's mirror images T_1 x .. T_K x (default hflip, vflip) as the
                      background; a generative analogue of transformation-based detectors (Golan &
                      El-Yaniv 2018)                                                  bits/dim
    composite-ratio   -(log p(x) - log[(p_bg(x) + p_T(x)) / 2]) / (D ln 2): the likelihood ratio
                      against the mixture of both backgrounds                        bits/dim
    discriminator     -l(x), l the discriminator's logit ("real"), for GANs without a density
    reconstruction    mean over values of (reconstruct(x) - x)^2, for models that encode

A conditional model's density is its marginal log p(x) = logsumexp_y [log p(x | y) + log p(y)]
(:mod:`deepgen.evaluation.conditional`).  Log-likelihoods are drawn under a fixed seed (the same
dequantization / importance-sampling noise every call), so every score is deterministic.
"""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
import torch

from deepgen.data.context import LabelContext
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.conditional import class_log_likelihoods
from deepgen.evaluation.likelihood import per_example_log_prob
from deepgen.evaluation.restoration import mse_per_image

LN2 = math.log(2)
COMPRESSORS = ("png", "zlib")


# --- densities ------------------------------------------------------------------------------------
def log_likelihood(model, x: torch.Tensor, label_context: LabelContext | None = None, batch_size: int = 256,
                   seed: int = 0) -> torch.Tensor:
    """log p(x_n) in nats, float64 (N,): the marginal over the classes for a conditional model."""
    if label_context is None:
        return per_example_log_prob(model, x, batch_size=batch_size, seed=seed)
    joint = class_log_likelihoods(model, x, label_context, batch_size=batch_size, seed=seed)
    return torch.logsumexp(joint + label_context.log_prior(), 1)


def nll(log_p: torch.Tensor, dim: int) -> torch.Tensor:
    """NLL in bits/dim from log p in nats: -log p / (D ln 2)."""
    return -log_p.double() / (dim * LN2)


def likelihood_ratio(log_p: torch.Tensor, log_p_background: torch.Tensor, dim: int) -> torch.Tensor:
    """-(log p(x) - log p_bg(x)) / (D ln 2): low when the model explains x much better than a model of
    perturbed inputs does (the background statistics cancel)."""
    return -(log_p.double() - log_p_background.double()) / (dim * LN2)


# --- mirror images ---------------------------------------------------------------------------------
TRANSFORMS = {
    "hflip": "mirrored left-right",
    "vflip": "mirrored upside down",
    "rot180": "turned by 180 degrees",
    "rot90": "turned by 90 degrees counter-clockwise (square images)",
    "rot270": "turned by 90 degrees clockwise (square images)",
    "transpose": "mirrored about the main diagonal (square images)",
}
DEFAULT_TRANSFORMS = ("hflip", "vflip")
SQUARE_ONLY = ("rot90", "rot270", "transpose")


def check_transforms(transforms, shape) -> tuple[str, ...]:
    """``transforms`` (names of :data:`TRANSFORMS`, a list or a comma-separated string) as a tuple, checked
    against the images' shape (C, H, W); a one-line ConfigError otherwise."""
    names = tuple(t.strip() for t in transforms.split(",") if t.strip()) if isinstance(transforms, str) \
        else tuple(transforms)
    if not names:
        raise ConfigError(f"transforms: expected at least one of {', '.join(TRANSFORMS)}")
    for t in names:
        if t not in TRANSFORMS:
            raise ConfigError(f"transform '{t}': expected one of {', '.join(TRANSFORMS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"transforms: '{', '.join(names)}' names a transform twice")
    if len(shape) != 3:
        raise ConfigError(f"transforms mirror images (C, H, W); the data's examples have shape {tuple(shape)}")
    square = [t for t in names if t in SQUARE_ONLY]
    if square and shape[1] != shape[2]:
        raise ConfigError(f"transform '{square[0]}' needs square images; these are {shape[1]}x{shape[2]}")
    return names


def transform(x: torch.Tensor, name: str) -> torch.Tensor:
    """x (N, C, H, W) under the mirror or rotation ``name`` of :data:`TRANSFORMS` (a permutation of the
    pixels, so densities need no Jacobian)."""
    if name == "hflip":
        return x.flip(-1)
    if name == "vflip":
        return x.flip(-2)
    if name == "rot180":
        return x.flip(-1, -2)
    if name == "rot90":
        return x.rot90(1, (-2, -1))
    if name == "rot270":
        return x.rot90(-1, (-2, -1))
    return x.transpose(-1, -2)


def mirror_log_likelihood(log_p_transformed: torch.Tensor) -> torch.Tensor:
    """log p_T(x) = log (1/K) sum_k p(T_k x) from the (K, N) log-likelihoods of the K mirror images, nats."""
    if log_p_transformed.ndim != 2 or len(log_p_transformed) < 1:
        raise ConfigError("the mirror background needs the log-likelihoods of at least one transform, (K, N)")
    return torch.logsumexp(log_p_transformed.double(), 0) - math.log(len(log_p_transformed))


def transform_ratio(log_p: torch.Tensor, log_p_transformed: torch.Tensor, dim: int) -> torch.Tensor:
    """-(log p(x) - log p_T(x)) / (D ln 2): high when the model likes x's mirror images better than x.
    In-distribution images that are not mirror-symmetric score far below 0; a mirrored image scores
    about minus its original's score, since p(T x') = p(x) for x' = T x (T an involution)."""
    return -(log_p.double() - mirror_log_likelihood(log_p_transformed)) / (dim * LN2)


def composite_ratio(log_p: torch.Tensor, log_p_background: torch.Tensor, log_p_transformed: torch.Tensor,
                    dim: int) -> torch.Tensor:
    """-(log p(x) - log[(p_bg(x) + p_T(x)) / 2]) / (D ln 2): the likelihood ratio against a background that is
    the even mixture of the perturbed-input model and the mirror images, so x is abnormal when either
    explains it better than the model does.  It lies between max(both ratios) - 1/D bits/dim and their max."""
    both = torch.stack([log_p_background.double(), mirror_log_likelihood(log_p_transformed)])
    return -(log_p.double() - (torch.logsumexp(both, 0) - math.log(2))) / (dim * LN2)


# --- typicality -----------------------------------------------------------------------------------
def typicality(nll_bits: torch.Tensor, entropy_bits: float) -> torch.Tensor:
    """|NLL(x) - H_hat| per example (bits/dim)."""
    return (nll_bits.double() - float(entropy_bits)).abs()


def typicality_batches(nll_bits: torch.Tensor, entropy_bits: float, m: int) -> torch.Tensor:
    """The batch test statistic |mean of M NLLs - H_hat| for consecutive batches of ``m`` examples
    (a last, shorter batch is dropped): (N // m,) bits/dim."""
    m = _batch_size(m, len(nll_bits))
    n = len(nll_bits) // m * m
    return (nll_bits[:n].double().reshape(-1, m).mean(1) - float(entropy_bits)).abs()


def typicality_threshold(nll_bits_reference: torch.Tensor, entropy_bits: float, m: int, alpha: float = 0.01,
                         draws: int = 1000, seed: int = 0) -> float:
    """The bootstrap threshold epsilon of the batch test (Nalisnick et al. 2019, alg. 1): the (1 - alpha)
    quantile of |mean of M NLLs - H_hat| over ``draws`` batches of ``m`` drawn with replacement from
    in-distribution NLLs (held-out ones, ideally).  A batch whose statistic exceeds epsilon is flagged."""
    m = _batch_size(m, len(nll_bits_reference))
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha {alpha!r}: expected a level in (0, 1)")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(nll_bits_reference), (int(draws), m), generator=g)
    stats = (nll_bits_reference.double()[idx].mean(1) - float(entropy_bits)).abs()
    return float(np.quantile(stats.numpy(), 1 - alpha))


def _batch_size(m, n: int) -> int:
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ConfigError(f"batch size M {m!r}: expected an integer >= 1")
    if m > n:
        raise DataError(f"batch size M = {m} but only {n} examples; expected M <= N")
    return m


# --- input complexity -----------------------------------------------------------------------------
def code_length_bits(x: torch.Tensor, levels: int, compressor: str = "png") -> torch.Tensor:
    """L(x): bits of each example's lossless code, float64 (N,).  The example is written as its integer
    levels 0..L-1 in bytes (L <= 256; uint8): ``png`` compresses a (C, H, W) image as a grey (C = 1) or
    RGB (C = 3) PNG (Pillow, optimize), ``zlib`` the raw bytes at level 9.  Both include the format's
    fixed overhead (headers), which shifts every score alike and so changes no ranking."""
    if compressor not in COMPRESSORS:
        raise ConfigError(f"compressor '{compressor}': expected one of {', '.join(COMPRESSORS)}")
    if levels is None or levels > 256:
        raise ConfigError(f"input-complexity needs discrete data with at most 256 levels, got "
                          f"{levels or 'continuous'} levels")
    a = x.detach().cpu().numpy().astype(np.uint8)
    if compressor == "png":
        if a.ndim != 4 or a.shape[1] not in (1, 3):
            raise ConfigError(f"compressor 'png' needs images (C, H, W) with C = 1 or 3, got examples of shape "
                              f"{tuple(a.shape[1:])}; use compressor 'zlib'")
        from PIL import Image

        def size(img):
            buf = io.BytesIO()
            Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(buf, "PNG", optimize=True)
            return buf.getbuffer().nbytes
    else:
        def size(img):
            return len(zlib.compress(np.ascontiguousarray(img).tobytes(), 9))
    return torch.tensor([8.0 * size(img) for img in a], dtype=torch.float64)


def input_complexity(nll_bits: torch.Tensor, code_bits: torch.Tensor, dim: int) -> torch.Tensor:
    """S(x) = NLL(x) - L(x) / D in bits/dim: the model's code length minus a generic compressor's."""
    return nll_bits.double() - code_bits.double() / dim


# --- several models -------------------------------------------------------------------------------
def ensemble(log_ps: torch.Tensor, dim: int) -> torch.Tensor:
    """-WAIC / (D ln 2) from (K, N) log-likelihoods in nats: -(mean_k - var_k) (unbiased variance)."""
    if log_ps.ndim != 2 or len(log_ps) < 2:
        raise ConfigError(f"ensemble needs the log-likelihoods of at least 2 models, got {len(log_ps)}")
    log_ps = log_ps.double()
    return -(log_ps.mean(0) - log_ps.var(0, unbiased=True)) / (dim * LN2)


# --- models without a density ---------------------------------------------------------------------
@torch.no_grad()
def discriminator(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """-l(x): minus the discriminator's (critic's) logit for data on the data's scale, (N,) float64.

    A GAN's D was trained to tell data from samples, not data from other data: this is a heuristic,
    labelled as such, for models that offer nothing else."""
    was_training = model.training
    model.eval()
    out = [-_critic(model, x[i:i + batch_size].to(model.device)).double().cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def _critic(model, x: torch.Tensor) -> torch.Tensor:
    """The discriminator's logits of data ``x``: ``model.critic(x)`` where the model declares the
    ``critic`` capability; otherwise a GAN's ``discriminate(to_d_scale(x))``."""
    if "critic" in model.capabilities:
        return model.critic(x)
    return model.discriminate(model.to_d_scale(x))


@torch.no_grad()
def reconstruction(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Mean over values of (reconstruct(x) - x)^2 on the data's scale, (N,) float64."""
    was_training = model.training
    model.eval()
    out = [mse_per_image(model.reconstruct(x[i:i + batch_size].to(model.device)), x[i:i + batch_size].to(model.device)).cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)
