"""Bijections: the building blocks of normalizing flows (see :mod:`deepgen.bijections.base`)."""

from deepgen.bijections.base import Bijection, Compose, Inverse
from deepgen.bijections.coupling import AffineCoupling, KeptToFree, alternating_mask, channel_mask, checkerboard_mask
from deepgen.bijections.elementwise import Affine, Logit
from deepgen.bijections.multiscale import FactorOut, Flatten, Squeeze
from deepgen.bijections.autoregressive import MaskedAutoregressive
from deepgen.bijections.scaling import DiagonalScaling
from deepgen.bijections.spline import SplineAutoregressive, SplineCoupling, rational_quadratic_spline
from deepgen.bijections.actnorm import ActNorm
from deepgen.bijections.invconv import InvertibleConv1x1
from deepgen.bijections.prior import ConditionalPrior
from deepgen.bijections.cnf import CNF
from deepgen.bijections.planar import PlanarLayer, planar_map
from deepgen.bijections.radial import RadialLayer

__all__ = [
    "Bijection", "Compose", "Inverse", "AffineCoupling", "KeptToFree", "Affine", "Logit", "Squeeze", "FactorOut",
    "Flatten",
    "alternating_mask", "checkerboard_mask", "channel_mask",
    "MaskedAutoregressive", "DiagonalScaling",
    "SplineCoupling", "SplineAutoregressive", "rational_quadratic_spline",
    "ActNorm", "InvertibleConv1x1", "ConditionalPrior",
    "CNF",
    "PlanarLayer", "planar_map", "RadialLayer",
]
