"""What every latent-variable model shares: a point code, a decoder, and the maps built on them.

A subclass (AE, DAE, VAE, VQ-VAE, DRAW) gives

    encode(x, context) -> z          (B, latent): the point code of x (a VAE's posterior mean)
    decode(z, context, mean) -> x    on the data's scale; a draw from p(x | z), or E[x | z] with mean=True

and this base derives

    reconstruct(x) = decode(encode(x), mean=True)
    interpolate(x0, x1):  decode((1 - t) z0 + t z1)  for t evenly in [0, 1]
    traverse(x, values):  decode(z with one coordinate j replaced by loc_j + v scale_j), every j

where ``code_scale() -> (loc, scale)`` says where codes live: N(0, I) for a model with that prior
(the default), the statistics of the training codes for a deterministic autoencoder.
"""

from __future__ import annotations

import torch

from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel


class LatentModel(GenerativeModel):
    """Base of the latent family: ``encode`` / ``decode`` in, ``reconstruct`` / ``interpolate`` /
    ``traverse`` out.  Subclasses set ``self.latent`` (the code's size)."""

    family = "latent"
    latent: int

    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def code_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale), each (latent,): where codes live (default: the N(0, I) prior's 0 and 1)."""
        z = torch.zeros(self.latent, device=self.device)
        return z, torch.ones_like(z)

    def reconstruct(self, x: torch.Tensor, context: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """decode(encode(x)): E[x | z = code(x)] by default, or a draw with ``mean=False``."""
        return self.decode(self.encode(x, context), context, mean=mean)

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8,
                    context: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """Decode z_t = (1 - t) code(x0) + t code(x1) for ``steps`` values of t evenly in [0, 1].

        ``x0``, ``x1``: one example each (the data shape) or matching batches (B, *shape).
        Returns (steps, *shape) or (steps, B, *shape); the endpoints are reconstruct(x0), reconstruct(x1).
        """
        if steps < 2:
            raise ConfigError(f"interpolate needs steps >= 2, got {steps}")
        single = tuple(x0.shape) == tuple(self.spec.shape)
        if single:
            x0, x1 = x0.unsqueeze(0), x1.unsqueeze(0)
            context = None if context is None else context.reshape(1, -1)
        z0, z1 = self.encode(x0, context), self.encode(x1, context)
        t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None, None]
        z = ((1 - t) * z0 + t * z1).reshape(steps * len(x0), *z0.shape[1:])
        cs = None if context is None else context.repeat(steps, 1)
        out = self.decode(z, cs, mean=mean).reshape(steps, len(x0), *self.spec.shape)
        return out[:, 0] if single else out

    def traverse(self, x: torch.Tensor, values: torch.Tensor | None = None,
                 context: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """Latent traversals of one example ``x`` (the data shape): for every code coordinate j and
        every v in ``values`` (default 9 values evenly in [-3, 3]), decode the code of x with
        z_j = loc_j + v scale_j (see :meth:`code_scale`), the others fixed.

        Returns (latent, len(values), *shape).
        """
        values = torch.linspace(-3, 3, 9) if values is None else torch.as_tensor(values, dtype=torch.float32)
        if tuple(x.shape) != tuple(self.spec.shape):
            raise ConfigError(f"traverse takes one example of shape {tuple(self.spec.shape)}, got {tuple(x.shape)}")
        context = None if context is None else context.reshape(1, -1)
        z = self.encode(x.unsqueeze(0), context)[0]  # (latent,)
        loc, scale = self.code_scale()
        values = values.to(z)
        d, v = len(z), len(values)
        zs = z.repeat(d, v, 1)  # (latent, values, latent)
        idx = torch.arange(d, device=z.device)
        zs[idx, :, idx] = loc[:, None] + values[None, :] * scale[:, None]
        cs = None if context is None else context.repeat(d * v, 1)
        return self.decode(zs.reshape(d * v, d), cs, mean=mean).reshape(d, v, *self.spec.shape)
