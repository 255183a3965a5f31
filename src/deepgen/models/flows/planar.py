"""Planar flow (Rezende & Mohamed 2015): a stack of planar layers, sampled in closed form.

Sampling (latent -> data) applies, layer by layer, the closed-form map

    x = z + u_hat tanh(w.z + b),   log|det dx/dz| = log(1 + (w.u_hat) tanh'(w.z + b)),
    u_hat = u + (m(w.u) - w.u) w / |w|^2,   m(a) = -1 + softplus(a)   (so w.u_hat >= -1: invertible)

which is what variational inference needs (``sample_and_log_prob``: differentiable samples
with their exact log q).  ``log_prob`` (data -> latent) has no closed form: each layer solves
the monotone scalar equation a + (w.u_hat) tanh(a + b) = w.x for a = w.z numerically
(bracketed Newton in float64, tolerance 1e-10 (1 + |a|); gradients by the implicit function
theorem), see :mod:`deepgen.bijections.planar`.

Vectors (D,) of any D; images are flattened (after the optional logit of the dequantized
pixels), where one hyperplane per layer makes a weak model.  No context (not conditional).
:func:`elementary_flow` is the builder shared with :mod:`deepgen.models.flows.radial`.
"""

from __future__ import annotations

from typing import Callable

from deepgen.bijections import Bijection, Compose, PlanarLayer
from deepgen.data.spec import DataSpec
from deepgen.models.flows.base import Flow, vector_input_layers
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS

# planar and radial layers take no context: every Flow capability but "conditional"
UNCONDITIONAL_FLOW = Flow.capabilities - {"conditional"}


def elementary_flow(model: str, spec: DataSpec, make_layer: Callable[[int], Bijection], layers: int,
                    logit_alpha: float) -> Compose:
    """[Logit] + Flatten for images, then ``layers`` layers ``make_layer(D)`` on the (D,) vectors."""
    return Compose(vector_input_layers(model, spec, logit_alpha) + [make_layer(spec.dim) for _ in range(layers)])


class Planar(Flow):
    """Planar flow: ``layers`` planar layers x = z + u_hat tanh(w.z + b) (see the module docstring),
    initialised near the identity (u_hat ~ N(0, 0.01^2 I), |w| ~ 1, b = 0).
    """

    name = "planar"
    description = "planar flow (Rezende & Mohamed): closed-form sampling, log_prob by a numerical inverse"
    capabilities = UNCONDITIONAL_FLOW
    layer_class: type = PlanarLayer  # what one layer is (Radial sets RadialLayer)
    shape_params = {"vector": (), "image": ("logit_alpha",)}
    param_constraints = {"dequantization": DEQUANTIZATIONS,
                         "layers": ">= 1", "logit_alpha": "in [0, 0.5)"}

    def __init__(self, spec: DataSpec, layers: int = 32, logit_alpha: float = 0.05, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build a planar (radial) flow for data ``spec``.

        Args:
            layers: elementary layers (planar: x = z + u_hat tanh(w.z + b); radial: around a centre z0).
            logit_alpha: images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, layers=layers, logit_alpha=logit_alpha, dequantization=dequantization,
                         standardize=standardize)
        self._set_transform(elementary_flow(self.name, spec, self.layer_class, layers, logit_alpha))
