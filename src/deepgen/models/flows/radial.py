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
No context (not conditional).  A :class:`~deepgen.models.flows.planar.Planar` with radial layers.
"""

from __future__ import annotations

from deepgen.bijections import RadialLayer
from deepgen.models.flows.planar import Planar


class Radial(Planar):
    """Radial flow: ``layers`` radial layers x = z + beta (z - z0) / (alpha + |z - z0|) (see the
    module docstring), initialised near the identity (z0 ~ N(0, I), alpha = 1, beta ~ N(0, 0.01^2)).
    The same parameters as :class:`~deepgen.models.flows.planar.Planar`; only the layer differs.
    """

    name = "radial"
    description = "radial flow (Rezende & Mohamed): closed-form sampling and inverse, exact density"
    layer_class = RadialLayer
