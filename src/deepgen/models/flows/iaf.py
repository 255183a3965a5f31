"""IAF: inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016).

The inverse of a MAF-style layer (``bijections.Inverse``): the MADE conditioner
(:class:`~deepgen.nets.made.MaskedMLP`, K = 2) reads the *latent* side, so sampling
is one pass per layer and density evaluation D passes:

    sampling:  x_i = (z_i - mu_i(z_<o i)) exp(-alpha_i(z_<o i)),   alpha = B tanh(a / B)
               log|det dx/dz| = -sum_i alpha_i                        (one pass)
    density:   z_i = x_i exp(alpha_i(z_<i)) + mu_i(z_<i)               (D passes: z_<i first)
    log p(x) = log N(z; 0, I) - sum_layers log|det dx/dz|

``sample_and_log_prob`` (variational inference: the IAF paper's use) runs the
sampling direction only, one pass per layer.  Orderings (``order``: reversed or
random between layers), zero-initialised last layers (a fresh flow is the
identity), images flattened: as in :mod:`deepgen.models.flows.maf`.
"""

from __future__ import annotations

from deepgen.bijections import Compose, Inverse
from deepgen.data.spec import DataSpec
from deepgen.models.flows.base import Flow, vector_input_layers
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.models.flows.maf import autoregressive_layers


class IAF(Flow):
    """IAF: a stack of inverted MADE-conditioned affine autoregressive layers, soft-clamped
    log-scales B tanh(a / B), zero-initialised (the flow starts as the identity).

        x_i = (z_i - mu_i(z_<i)) exp(-alpha_i(z_<i)),   log|det dx/dz| = -sum_i alpha_i

    ``sample`` and ``sample_and_log_prob``: one pass per layer; ``log_prob``: D passes per layer
    (see :class:`MAF` for the opposite trade).  ``context_features`` > 0 feeds the context to every
    MADE: p(x | context).
    """

    name = "iaf"
    description = "Inverse autoregressive flow (one-pass sampling with log q; density: D passes); vectors, flat images"
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "layers": ">= 1", "hidden": ">= 1", "depth": ">= 0", "order": ("reversed", "random"),
                         "scale_bound": "> 0", "logit_alpha": "in [0, 0.5)", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, layers: int = 5, hidden: int = 128, depth: int = 2, order: str = "reversed",
                 scale_bound: float = 3.0, seed: int = 0, logit_alpha: float = 0.05, context_features: int = 0,
                 dequantization: str = "uniform",
                 standardize: bool = True):
        """Build an IAF for data ``spec``.

        Args:
            layers: inverse autoregressive layers, each with its own MADE and ordering.
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
        self._set_transform(Compose(prefix + [Inverse(s) for s in steps]))
