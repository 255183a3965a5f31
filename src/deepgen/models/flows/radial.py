"""Radial flow (Rezende & Mohamed 2015): a stack of radial layers, sampled in closed form.

Sampling (latent -> data) applies, layer by layer,

    x = z + beta h(r) (z - z0),   r = |z - z0|,   h = 1 / (alpha + r),
    log|det dx/dz| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),
    alpha = softplus(alpha'),   beta = -alpha + softplus(beta')   (beta >= -alpha: invertible)

which is what variational inference needs (``sample_and_log_prob``).  ``log_prob`` inverts each
layer along the ray from z0: r_x = r (1 + beta / (alpha + r)) is a quadratic in r, solved in
closed form (exact up to rounding), see :mod:`deepgen.bijections.radial`.

Each layer only contracts or expands space around one centre z0, so the model is weak beyond
low dimensions; images are flattened (after the optional logit), where it is weaker still.
No context (not conditional).  Built with :func:`~deepgen.models.flows.planar.elementary_flow`.
"""

from __future__ import annotations

from deepgen.bijections import RadialLayer
from deepgen.data.spec import DataSpec
from deepgen.models.flows.base import Flow
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.models.flows.planar import UNCONDITIONAL_FLOW, elementary_flow


class Radial(Flow):
    """Radial flow: ``layers`` radial layers x = z + beta (z - z0) / (alpha + |z - z0|) (see the
    module docstring), initialised near the identity (z0 ~ N(0, I), alpha = 1, beta ~ N(0, 0.01^2)).
    """

    name = "radial"
    description = "radial flow (Rezende & Mohamed): closed-form sampling and inverse, exact density"
    capabilities = UNCONDITIONAL_FLOW
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "layers": ">= 1", "logit_alpha": "in [0, 0.5)"}

    def __init__(self, spec: DataSpec, layers: int = 32, logit_alpha: float = 0.05, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a radial flow for data ``spec``.

        Args:
            layers: radial layers, each with its own centre z0 and scalars alpha, beta.
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, layers=layers, logit_alpha=logit_alpha, dequantization=dequantization,
                         standardize=standardize)
        self._set_transform(elementary_flow(self.name, spec, RadialLayer, layers, logit_alpha))
