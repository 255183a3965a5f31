"""Bijections: the building blocks of normalizing flows (see :mod:`deepgen.bijections.base`)."""

from deepgen.bijections.base import Bijection, Compose, Inverse
from deepgen.bijections.coupling import AffineCoupling, KeptToFree, alternating_mask, channel_mask, checkerboard_mask
from deepgen.bijections.elementwise import Affine, Logit
from deepgen.bijections.multiscale import FactorOut, Squeeze

__all__ = [
    "Bijection", "Compose", "Inverse", "AffineCoupling", "KeptToFree", "Affine", "Logit", "Squeeze", "FactorOut",
    "alternating_mask", "checkerboard_mask", "channel_mask",
]
