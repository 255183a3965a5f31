"""NICE: non-linear independent components estimation (Dinh, Krueger & Bengio 2014).

``couplings`` additive coupling layers with alternating masks m (halves 1,0,1,0,...
then 0,1,0,1,...) and MLP conditioners t (``hidden`` wide, ``depth`` hidden layers)
that see the kept half and shift the other:

    y = m * x + (1 - m) * (x + t(m * x)),      log|det dy/dx| = 0     (volume preserving)

then NICE's diagonal scaling layer, the only change of volume:

    z = y * exp(s),                            log|det dz/dy| = sum_i s_i
    log p(x) = log N(z; 0, I) + sum_i s_i

Images are flattened and modelled as vectors, as in the paper (the dequantized
pixels, optionally through ``logit_alpha``'s logit first).  The conditioners' last
layers and s start at zero, so a fresh flow is the identity.
"""

from __future__ import annotations

import torch

from deepgen.bijections import AffineCoupling, Compose, DiagonalScaling, KeptToFree, alternating_mask
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow, vector_input_layers
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import MLP


class KeptToShift(KeptToFree):
    """Additive conditioner: an MLP from the kept coordinates to a shift of the free ones, laid out
    as the (B, 2D) = (s = 0, t) that ``AffineCoupling(affine=False)`` reads."""

    def scale_shift(self, x, context=None):
        t = self.net(x.index_select(1, self.kept), context)
        return torch.zeros_like(t), t

    def forward(self, x, context=None):
        out = x.new_zeros(x.shape[0], 2 * self.dim)
        out[:, self.dim + self.free] = self.scale_shift(x, context)[1]
        return out


def additive_couplings(d: int, couplings: int, hidden: int, depth: int, context_features: int) -> list:
    """NICE's coupling stack on (D,) vectors: alternating masks, MLP shifts, zero-initialised."""
    layers = []
    for i in range(couplings):
        mask = alternating_mask(d, i % 2)
        kept = int(mask.sum())
        net = MLP(kept, d - kept, hidden, depth, context_features, zero_init=True)
        layers.append(AffineCoupling(mask, KeptToShift(mask, net), affine=False))
    return layers


class NICE(Flow):
    """NICE: additive (volume-preserving) couplings, then a learned diagonal scaling exp(s).

        y = m * x + (1 - m) * (x + t(m * x)),   z = y * exp(s),   log|det dz/dx| = sum_i s_i

    ``context_features`` > 0 feeds the context to every coupling's MLP: p(x | context).
    """

    name = "nice"
    description = "NICE additive-coupling flow with diagonal scaling (exact density); vectors or flattened images"
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "couplings": ">= 1", "hidden": ">= 1", "depth": ">= 0", "logit_alpha": "in [0, 0.5)",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, couplings: int = 4, hidden: int = 128, depth: int = 2,
                 logit_alpha: float = 0.05, context_features: int = 0, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a NICE for data ``spec``.

        Args:
            couplings: additive coupling layers; the masks alternate halves (the paper: 4).
            hidden: units per hidden layer of each coupling's MLP.
            depth: hidden layers of each coupling's MLP.
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, couplings=couplings, hidden=hidden, depth=depth, logit_alpha=logit_alpha,
                         context_features=context_features, dequantization=dequantization, standardize=standardize)
        prefix = vector_input_layers(self.name, spec, logit_alpha)
        if spec.dim < 2:
            raise ConfigError(f"nice needs at least 2 dimensions, data '{spec.name}' has {spec.dim}")
        layers = additive_couplings(spec.dim, couplings, hidden, depth, context_features)
        self._set_transform(Compose(prefix + layers + [DiagonalScaling(spec.dim)]))
