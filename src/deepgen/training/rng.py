"""Random-number state of every device, so validation can never change training.

Validation draws its randomness (dequantization noise, importance samples, GAN
samples) from ``torch.manual_seed(cfg.seed)``, which reseeds the CPU *and every
CUDA device*.  :func:`get_rng_states` snapshots all of them and
:func:`set_rng_states` puts them back, so the training trajectory on a GPU is
the same with or without validation.
"""

from __future__ import annotations

import torch


def get_rng_states() -> dict:
    """The CPU generator state and, if CUDA is initialised, every CUDA device's."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
