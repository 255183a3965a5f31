"""Neural spline flow (Durkan, Bekasov, Murray & Papamakarios 2019): rational-quadratic splines.

Every layer transforms coordinates with monotone rational-quadratic splines on [-B, B]
(``tail_bound``; identity outside, see :mod:`deepgen.bijections.spline`) whose 3K - 1
parameters per coordinate (``bins`` = K) come from a network:

* ``variant="coupling"``: the alternating half of the coordinates passes through and an MLP
  (``hidden`` wide, ``depth`` hidden layers) on that half gives the other half's splines,

      y_kept = x_kept,    y_free = g(x_free; MLP(x_kept, c));

  the masks alternate between layers so every coordinate gets transformed;
* ``variant="autoregressive"``: a MADE network gives every coordinate's spline from the ones
  before it, z_d = g(x_d; MADE(x_<d, c)); the ordering is reversed from one layer to the next.
  Density evaluation is one pass; sampling takes D passes per layer.

    log p(x) = log N(f(x); 0, I) + sum_layers sum_d log g'_d

The conditioners' last layers are zero-initialised: equal bins and unit derivatives, so a fresh
flow is the identity.  The splines live on [-B, B], so data must be roughly standardised:
continuous data are (``standardize``); images are flattened, and dequantized discrete images in
[0, 1) go through the logit preprocessing ``logit_alpha`` (Jacobian counted), which lands them in
about [-3, 3].  ``transforms=3, hidden=64, depth=2, bins=8, variant="autoregressive",
tail_bound=5`` is the layer structure of ``zuko.flows.NSF(transforms=3, hidden_features=(64, 64),
bins=8)``.
"""

from __future__ import annotations

import torch

from deepgen.bijections import Compose, Flatten, Logit, SplineAutoregressive, SplineCoupling, alternating_mask
from deepgen.bijections.spline import spline_param_count
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import MLP, MaskedMLP


def coupling_layers(d: int, transforms: int, hidden: int, depth: int, bins: int, tail_bound: float,
                    context_features: int):
    """Spline couplings on (D,) vectors with alternating masks and kept-to-free MLP conditioners."""
    layers = []
    for i in range(transforms):
        mask = alternating_mask(d, i % 2)
        kept = int(mask.sum())
        net = MLP(kept, (d - kept) * spline_param_count(bins), hidden, depth, context_features, zero_init=True)
        layers.append(SplineCoupling(mask, net, bins, tail_bound))
    return layers


def autoregressive_layers(d: int, transforms: int, hidden: int, depth: int, bins: int, tail_bound: float,
                          context_features: int):
    """Autoregressive splines on (D,) vectors with MADE conditioners, orderings natural / reversed in turn."""
    layers = []
    for i in range(transforms):
        net = MaskedMLP(d, spline_param_count(bins), hidden, depth, num_masks=1,
                        order="natural" if i % 2 == 0 else "reversed", direct=False, seed=i,
                        context_features=context_features)
        with torch.no_grad():  # zero last layer: raw spline parameters 0, the identity
            net.layers[-1].weight.zero_()
            net.layers[-1].bias.zero_()
        layers.append(SplineAutoregressive(net, bins, tail_bound))
    return layers


class NSF(Flow):
    """Rational-quadratic neural spline flow, coupling or autoregressive (see the module docstring).

        z_d = g(x_d; theta_d(x_kept or x_<d, context)),   log|det| = sum_d log g'(x_d)

    ``context_features`` > 0 makes every conditioner see the context: a conditional flow p(x | c).
    """

    name = "nsf"
    description = "Rational-quadratic neural spline flow (exact density); coupling or autoregressive"
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "variant": ("coupling", "autoregressive"), "transforms": ">= 1", "hidden": ">= 1",
                         "depth": ">= 0", "bins": ">= 2", "tail_bound": "> 0", "logit_alpha": "in [0, 0.5)",
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, variant: str = "autoregressive", transforms: int = 5, hidden: int = 64,
                 depth: int = 2, bins: int = 8, tail_bound: float = 5.0, logit_alpha: float = 0.05,
                 context_features: int = 0, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a neural spline flow for data ``spec``.

        Args:
            variant: "coupling" (half the coordinates condition the other half) or "autoregressive" (MADE).
            transforms: spline layers; masks alternate / orderings reverse between layers.
            hidden: units per hidden layer of each conditioner (MLP or MADE).
            depth: hidden layers of each conditioner.
            bins: spline bins K per coordinate (3K - 1 parameters each).
            tail_bound: the splines act on [-B, B]; identity (linear tails) outside.
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, variant=variant, transforms=transforms, hidden=hidden, depth=depth, bins=bins,
                         tail_bound=tail_bound, logit_alpha=logit_alpha, context_features=context_features,
                         dequantization=dequantization, standardize=standardize)
        shape = tuple(spec.shape)
        if len(shape) not in (1, 3):
            raise ConfigError(f"nsf expects vectors (D,) or images (C, H, W), got shape {shape}")
        d = 1
        for n in shape:
            d *= n
        if d < 2:
            raise ConfigError(f"nsf needs at least 2 dimensions, data '{spec.name}' has {d}")
        build = coupling_layers if variant == "coupling" else autoregressive_layers
        layers = build(d, transforms, hidden, depth, bins, tail_bound, context_features)
        if spec.is_image:
            layers.insert(0, Flatten(shape))
            if logit_alpha > 0:
                if spec.levels is None:
                    raise ConfigError("nsf: logit_alpha > 0 needs discrete images in [0, levels); set logit_alpha: 0")
                layers.insert(0, Logit(logit_alpha))
        self._set_transform(Compose(layers))
