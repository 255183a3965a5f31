"""FFJORD (Grathwohl et al. 2019): a continuous normalizing flow trained by maximum likelihood.

``blocks`` stacked CNFs (:class:`~deepgen.bijections.CNF`), each the time-T flow of
dz/dt = f(t, z [, c]) with a concat-squash dynamics network (:mod:`deepgen.nets.odenet`):

    log p(x) = log N(z(T); 0, I) + int_0^T tr(df/dz)(t, z(t)) dt,     z(0) = x

integrated with an adaptive solver (``solver``, ``rtol``, ``atol``); sampling integrates the
same ODE backwards from z ~ N(0, I).

* ``trace="exact"`` computes tr(df/dz) with D vector-Jacobian products: ``density`` is "exact",
  meaning exact up to the ODE solver's tolerance (the figures are those of the numerical solution);
* ``trace="hutchinson"`` uses e^T (df/dz) e with one noise vector e per example held fixed during a
  solve: ``density`` is "estimate" (log_prob is an unbiased estimate of log p(x); so is the NLL);
* ``trace="auto"`` (default) is exact for D <= 10 and Hutchinson above.

Vectors (D,) use MLP dynamics (``hidden`` wide, ``depth`` hidden layers); images (C, H, W) use
3x3 conv dynamics (``channels``, ``depth``) and, on discrete images, the logit preprocessing
(``logit_alpha``).  The number of function evaluations (NFE) of the last solves is
``model.last_nfe``; ``model.loss`` reports it per training step (``train/nfe_forward``).
``kinetic`` and ``jacobian`` > 0 add RNODE's regularisers (Finlay et al. 2020), which keep the
dynamics simple and the NFE low.
"""

from __future__ import annotations

import math

import torch

from deepgen.bijections import CNF, Compose, Logit
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.base import unpack_batch
from deepgen.models.flows.base import Flow
from deepgen.models.flows.dequantizer import DEQUANTIZATIONS
from deepgen.nets import ConvODENet, ODENet

EXACT_TRACE_MAX_DIM = 10  # trace="auto": exact trace up to this many dimensions, Hutchinson above


class FFJORD(Flow):
    """FFJORD: stacked CNF blocks, exact or Hutchinson trace, adaptive ODE solver (see the module docstring).

    ``density`` is set per instance: "exact" (exact trace, up to the solver tolerance) or "estimate"
    (Hutchinson).  The dynamics' last layer is zero-initialised, so a fresh model is the identity.
    """

    name = "ffjord"
    description = "FFJORD continuous normalizing flow (ODE; exact trace, or Hutchinson estimate for large D)"
    density = "exact"  # per instance: "estimate" with the Hutchinson trace
    shape_params = {"vector": ("hidden",), "image": ("channels", "logit_alpha")}
    # moons, 400 steps: val NLL 2.52 at lr 5e-3 vs ~3.0 at 1e-3 (the dynamics learn slowly)
    train_defaults = {"lr": 5e-3}
    param_constraints = {
        "dequantization": DEQUANTIZATIONS,
        "hidden": ">= 1", "depth": ">= 0", "channels": ">= 1", "blocks": ">= 1", "time": "> 0",
        "trace": ("auto", "exact", "hutchinson"), "noise": ("rademacher", "gaussian"),
        "activation": ("tanh", "softplus", "elu", "swish"),
        "solver": ("dopri5", "bosh3", "adaptive_heun", "dopri8", "fehlberg2", "rk4", "midpoint", "euler"),
        "rtol": "> 0", "atol": "> 0", "step_size": "in (0, 1]", "kinetic": ">= 0", "jacobian": ">= 0",
        "logit_alpha": "in [0, 0.5)", "context_features": ">= 0",
    }

    def __init__(self, spec: DataSpec, hidden: int = 64, depth: int = 3, channels: int = 32, blocks: int = 1,
                 time: float = 0.5, learn_time: bool = True, trace: str = "auto", noise: str = "rademacher",
                 activation: str = "tanh", solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 step_size: float = 0.1, adjoint: bool = False, kinetic: float = 0.0, jacobian: float = 0.0,
                 logit_alpha: float = 0.05, context_features: int = 0, dequantization: str = "uniform",
                 standardize: bool = True):
        """Build an FFJORD for data ``spec``.

        Args:
            hidden: units per hidden layer of each block's dynamics MLP (vectors).
            depth: hidden concat-squash layers of each block's dynamics network.
            channels: channels of each block's 3x3 conv dynamics network (images).
            blocks: stacked CNFs, each with its own dynamics network and time.
            time: integration time T of each block (its initial value if learn_time).
            learn_time: learn each block's T (parameterised as log T).
            trace: "exact" (D vector-Jacobian products), "hutchinson" (unbiased estimate) or "auto" (exact for D <= 10).
            noise: Hutchinson noise, drawn once per solve: "rademacher" (+-1) or "gaussian".
            activation: nonlinearity of the dynamics network (smooth ones suit adaptive solvers).
            solver: torchdiffeq method; adaptive (dopri5, bosh3, adaptive_heun, dopri8, fehlberg2) or fixed-grid.
            rtol: relative tolerance of adaptive solvers (training, evaluation and sampling alike).
            atol: absolute tolerance of adaptive solvers.
            step_size: step of fixed-grid solvers (rk4, midpoint, euler) in rescaled time [0, 1].
            adjoint: gradients by the adjoint method (O(1) memory, a backward ODE solve) instead of backprop.
            kinetic: weight of RNODE's kinetic-energy regulariser int ||f||^2 dt (0: off).
            jacobian: weight of RNODE's Jacobian Frobenius regulariser int ||e^T df/dz||^2 dt (0: off).
            logit_alpha: discrete images: model logit(alpha + (1 - 2 alpha) y) of the dequantized pixels (0: off).
            context_features: size of the context vector of a conditional flow p(x | c) (0: unconditional).
            dequantization: discrete data: "uniform" noise u, or "variational": a learned q(u | k) (Flow++).
            standardize: continuous data: model (x - mean) / std per feature, Jacobian counted.
        """
        super().__init__(spec, hidden=hidden, depth=depth, channels=channels, blocks=blocks, time=time,
                         learn_time=learn_time, trace=trace, noise=noise, activation=activation, solver=solver,
                         rtol=rtol, atol=atol, step_size=step_size, adjoint=adjoint, kinetic=kinetic,
                         jacobian=jacobian, logit_alpha=logit_alpha, context_features=context_features,
                         dequantization=dequantization, standardize=standardize)
        dim = math.prod(spec.shape)
        if trace == "auto":
            trace = "exact" if dim <= EXACT_TRACE_MAX_DIM else "hutchinson"
        self.trace = trace
        self.density = "exact" if trace == "exact" else "estimate"
        self.kinetic, self.jacobian = float(kinetic), float(jacobian)
        self.adjoint = bool(adjoint)
        layers = []
        if spec.is_image:
            if logit_alpha > 0:
                if spec.levels is None:
                    raise ConfigError("ffjord: logit_alpha > 0 needs discrete images in [0, levels); "
                                      "set logit_alpha: 0")
                layers.append(Logit(logit_alpha))

            def dynamics():
                return ConvODENet(spec.shape[0], channels, depth, context_features, activation)
        elif len(spec.shape) == 1:
            def dynamics():
                return ODENet(dim, hidden, depth, context_features, activation)
        else:
            raise ConfigError(f"ffjord expects vectors (D,) or images (C, H, W), got shape {spec.shape}")
        for _ in range(blocks):
            layers.append(CNF(dynamics(), time=time, learn_time=learn_time, trace=trace, noise=noise,
                              rtol=rtol, atol=atol, solver=solver, step_size=step_size, adjoint=adjoint,
                              regularize=kinetic > 0 or jacobian > 0))
        self._set_transform(Compose(layers))

    # --- NFE and regularisers ----------------------------------------------------
    @property
    def cnf_blocks(self) -> list[CNF]:
        return [m for m in self.transform.modules() if isinstance(m, CNF)]

    @property
    def last_nfe(self) -> int:
        """Dynamics evaluations of the last forward or inverse pass (all blocks): the NFE of one
        log_prob or sample call."""
        return sum(b.last_nfe for b in self.cnf_blocks)

    @property
    def last_nfe_backward(self) -> int:
        """With ``adjoint``: dynamics evaluations of the backward pass (the adjoint solves) of the
        previous training step (0 before the first one, after an evaluation, or without the adjoint:
        backpropagating through the solver makes no evaluations)."""
        return sum(b.last_nfe_backward for b in self.cnf_blocks)

    def integration_times(self) -> list[float]:
        """T of every block."""
        return [float(b.time.detach()) for b in self.cnf_blocks]

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Mean NLL (nats; a Hutchinson estimate when density is "estimate") + RNODE terms, with the NFE:

            loss = NLL + kinetic * mean_x E + jacobian * mean_x F

        ``nfe_forward``: dynamics evaluations of this step's forward solves (all blocks);
        ``nfe_backward`` (adjoint only): those of the previous step's backward pass.
        """
        x, context = unpack_batch(batch)
        nll = -self.log_prob(x, context).mean()
        out = {"loss": nll, "nll": nll.detach()}
        blocks = self.cnf_blocks
        regs = [b.last_regularization for b in blocks if b.last_regularization is not None]
        if regs:
            kin = sum(r[0] for r in regs).mean()
            jac = sum(r[1] for r in regs).mean()
            out["loss"] = nll + self.kinetic * kin + self.jacobian * jac
            out["kinetic"], out["jacobian"] = kin.detach(), jac.detach()
        out["nfe_forward"] = torch.tensor(float(self.last_nfe))
        if self.adjoint:
            out["nfe_backward"] = torch.tensor(float(self.last_nfe_backward))
        out["time"] = torch.tensor(sum(self.integration_times()))
        return out
