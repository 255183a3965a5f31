"""Disentanglement: the Mutual Information Gap (Chen et al. 2018) between codes and known factors.

For codes z (N, J) of a model that encodes and discrete ground-truth factors v (N, K):

    I(z_j; v_k)  mutual information (nats), each code coordinate discretised into ``bins`` equal-width
                 bins over its range (the histogram estimator of Locatello et al. 2019)
    H(v_k)       the factor's empirical entropy
    MIG = 1/K sum_k ( I(z_(1); v_k) - I(z_(2); v_k) ) / H(v_k)

where z_(1), z_(2) are the two coordinates with the largest information about v_k.  MIG lies in
[0, 1]: 1 when each factor is captured by exactly one coordinate and no other coordinate knows about
it.  With one coordinate (J = 1) the gap is I(z_(1); v_k) / H(v_k).
"""

from __future__ import annotations

import torch

from deepgen.errors import ConfigError


def discretize(z: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index (int64, same shape) of every column of ``z`` (N, J) in ``bins`` equal-width bins."""
    lo, hi = z.min(0).values, z.max(0).values
    width = torch.where(hi > lo, (hi - lo) / bins, torch.ones_like(hi))
    return ((z - lo) / width).floor().clamp(0, bins - 1).long()


def mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """I(a; b) in nats of two int64 label vectors (plug-in estimate from the joint counts)."""
    _, ai = torch.unique(a, return_inverse=True)
    _, bi = torch.unique(b, return_inverse=True)
    joint = torch.zeros(int(ai.max()) + 1, int(bi.max()) + 1, dtype=torch.float64)
    joint.index_put_((ai, bi), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    nz = p > 0
    return float((p[nz] * (p[nz] / (pa @ pb)[nz]).log()).sum())


def entropy(v: torch.Tensor) -> float:
    """H(v) in nats of an int64 label vector."""
    p = torch.unique(v, return_counts=True)[1].double()
    p = p / p.sum()
    return float(-(p * p.log()).sum())


def mig(codes: torch.Tensor, factors: torch.Tensor, factor_names=None, bins: int = 20) -> dict:
    """MIG of ``codes`` (N, J) against ``factors`` (N, K): {"mig", "per_factor": {name: gap}, "mi_nats": J x K
    matrix as nested lists, "bins"}."""
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ConfigError(f"mig needs codes (N, J) and factors (N, K) with the same N; got {tuple(codes.shape)} "
                          f"and {tuple(factors.shape)}")
    names = list(factor_names or (f"factor_{k}" for k in range(factors.shape[1])))
    zb = discretize(codes.double(), bins)
    mi = [[mutual_information(zb[:, j], factors[:, k]) for k in range(factors.shape[1])]
          for j in range(codes.shape[1])]
    gaps = {}
    for k, name in enumerate(names):
        h = entropy(factors[:, k])
        top = sorted((row[k] for row in mi), reverse=True) + [0.0]
        gaps[name] = (top[0] - top[1]) / h if h > 0 else 0.0
    return {"mig": sum(gaps.values()) / len(gaps), "per_factor": gaps, "mi_nats": mi, "bins": bins}


@torch.no_grad()
def disentanglement_scores(model, splits, split: str = "train", batch_size: int = 512, bins: int = 20) -> dict:
    """MIG of ``model.encode`` codes on ``split`` of a dataset with known factors (``splits.factors``)."""
    if not model.can("encode"):
        raise ConfigError(f"{model.name} does not encode: no codes to measure disentanglement on")
    x = splits.split(split)
    if split not in splits.factors:
        raise ConfigError(f"dataset '{splits.spec.name}' has no known factors (e.g. use --data blobs)")
    model.eval()
    codes = torch.cat([model.encode(x[i:i + batch_size].to(model.device)).reshape(len(x[i:i + batch_size]), -1).cpu()
                       for i in range(0, len(x), batch_size)])
    out = mig(codes, splits.factors[split], splits.factor_names, bins)
    out.update({"metric": f"MIG (Chen et al. 2018), codes = encode(x) on the {split} split, {bins}-bin histograms",
                "split": split, "n": len(x)})
    return out
