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

from deepgen.bijections import Inverse
from deepgen.models.flows.maf import MAF


class IAF(MAF):
    """IAF: a stack of inverted MADE-conditioned affine autoregressive layers, soft-clamped
    log-scales B tanh(a / B), zero-initialised (the flow starts as the identity).

        x_i = (z_i - mu_i(z_<i)) exp(-alpha_i(z_<i)),   log|det dx/dz| = -sum_i alpha_i

    ``sample`` and ``sample_and_log_prob``: one pass per layer; ``log_prob``: D passes per layer
    (see :class:`MAF` for the opposite trade).  ``context_features`` > 0 feeds the context to every
    MADE: p(x | context).
    """

    name = "iaf"
    description = "Inverse autoregressive flow (one-pass sampling with log q; density: D passes); vectors, flat images"

    @staticmethod
    def direction(steps: list) -> list:
        """Every MAF layer inverted: the MADE reads the latent side, so sampling is one pass per layer."""
        return [Inverse(s) for s in steps]
