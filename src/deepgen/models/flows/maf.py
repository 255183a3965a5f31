"""MAF: masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017).

``layers`` masked affine autoregressive bijections, each with its own MADE
conditioner (:class:`~deepgen.nets.made.MaskedMLP`, ``hidden`` units in ``depth``
hidden layers, K = 2 outputs per dimension) and its own ordering o:

    mu, a = MADE(x),   alpha = B tanh(a / B)
    z_i = (x_i - mu_i(x_<o i)) exp(-alpha_i(x_<o i)),   log|det dz/dx| = -sum_i alpha_i
    log p(x) = log N(z; 0, I) + sum_layers log|det|

Density in one MADE pass per layer; sampling x_i = z_i exp(alpha_i) + mu_i needs the
dims in order: D passes per layer.  Orderings alternate natural / reversed between
layers (``order="reversed"``) or are random permutations (``"random"``, from ``seed``);
they are buffers, saved with the weights.  The conditioners' last layers are
zero-initialised, so a fresh flow is the identity.  Images are flattened (the
dequantized pixels, optionally through ``logit_alpha``'s logit first) and modelled as
vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.bijections import Compose, MaskedAutoregressive
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow, vector_input_layers
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import MaskedMLP


class MADEConditioner(nn.Module):
    """(x (B, D), context) -> (B, D, 2) = (shift, unbounded log-scale) of each dim given the dims
    before it in ``ordering`` (ordering[t] = the dim at position t); last layer zero-initialised."""

    def __init__(self, d: int, hidden: int, depth: int, ordering: torch.Tensor, seed: int, context_features: int):
        super().__init__()
        self.net = MaskedMLP(d, 2, hidden, depth, num_masks=1, order="natural", direct=True, seed=seed,
                             context_features=context_features)
        with torch.no_grad():
            self.net.orders.copy_(ordering[None])
            nn.init.zeros_(self.net.layers[-1].weight)
            nn.init.zeros_(self.net.layers[-1].bias)
            if self.net.direct is not None:
                nn.init.zeros_(self.net.direct.weight)
        self.net.install_masks()

    @property
    def ordering(self) -> torch.Tensor:
        return self.net.orders[0]

    def fused_parts(self):
        """(layers, direct) for :func:`~deepgen.bijections.fused_autoregressive.fused_made_affine`: each masked
        layer's (weight, mask in the weight's dtype or None where every connection is on, bias), and the direct
        connections' (weight, mask) or None."""
        net = self._modules["net"]  # (the per-step path: no nn.Module attribute lookups)
        if net.k != 2 or net.num_masks != 1:
            return None
        modules = net._modules
        layers = [layer.fused_triple(0) for layer in modules["layers"]._modules.values()]
        direct = modules.get("direct")
        return layers, None if direct is None else direct.fused_triple(0)[:2]

    def forward(self, x, context=None):
        return self.net(x, 0, context)


def layer_orderings(d: int, layers: int, order: str, seed: int) -> list[torch.Tensor]:
    """One ordering per layer: natural, reversed, natural, ... or random permutations from ``seed``."""
    if order == "reversed":
        return [torch.arange(d) if i % 2 == 0 else torch.arange(d - 1, -1, -1) for i in range(layers)]
    if order == "random":
        g = torch.Generator().manual_seed(seed)
        return [torch.randperm(d, generator=g) for _ in range(layers)]
    raise ConfigError(f"order must be 'reversed' or 'random', got {order!r}")


def autoregressive_layers(d: int, layers: int, hidden: int, depth: int, order: str, scale_bound: float,
                          seed: int, context_features: int) -> list[MaskedAutoregressive]:
    """``layers`` MAF-style bijections on (D,) vectors, each with its own MADE and ordering."""
    return [MaskedAutoregressive(MADEConditioner(d, hidden, depth, o, seed + i, context_features), scale_bound)
            for i, o in enumerate(layer_orderings(d, layers, order, seed))]


class MAF(Flow):
    """MAF: a stack of MADE-conditioned affine autoregressive layers, soft-clamped log-scales
    B tanh(a / B), zero-initialised (the flow starts as the identity).

        z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)),   log|det dz/dx| = -sum_i alpha_i

    ``log_prob``: one pass per layer; ``sample``: D passes per layer (see :class:`IAF` for the
    opposite trade).  ``context_features`` > 0 feeds the context to every MADE: p(x | context).
    """

    name = "maf"
    description = "Masked autoregressive flow (exact density, one pass; sampling D passes); vectors or flattened images"
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "layers": ">= 1", "hidden": ">= 1", "depth": ">= 0", "order": ("reversed", "random"),
                         "scale_bound": "> 0", "logit_alpha": "in [0, 0.5)", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, layers: int = 5, hidden: int = 128, depth: int = 2, order: str = "reversed",
                 scale_bound: float = 3.0, seed: int = 0, logit_alpha: float = 0.05, context_features: int = 0,
                 dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a MAF for data ``spec``.

        Args:
            layers: autoregressive layers, each with its own MADE and ordering.
            hidden: units per hidden layer of each MADE.
            depth: hidden layers of each MADE.
            order: orderings between layers: "reversed" (natural, reversed, ...) or "random" permutations.
            scale_bound: bound B of the log-scales, soft-clamped to B tanh(a / B).
            seed: seed of the random orderings and of the MADEs' hidden degrees (saved with the weights).
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, layers=layers, hidden=hidden, depth=depth, order=order, scale_bound=scale_bound,
                         seed=seed, logit_alpha=logit_alpha, context_features=context_features,
                         dequantization=dequantization, standardize=standardize)
        prefix = vector_input_layers(self.name, spec, logit_alpha)
        steps = autoregressive_layers(spec.dim, layers, hidden, depth, order, scale_bound, seed, context_features)
        self._set_transform(Compose(prefix + self.direction(steps)))

    @staticmethod
    def direction(steps: list) -> list:
        """The layers as used: MAF keeps the density direction one pass (IAF inverts them)."""
        return steps
