"""What every translator (pix2pix, CycleGAN) shares: the protocol, the data scale of each domain, the nets.

Protocol (capability ``translate``).  A translator maps examples of domain A to domain B,
both on the dataset's own scale and of the same :class:`DataSpec` (shape and levels):

    model.translate(a)                 # (n, *shape) domain A -> domain B
    model.translate(b, reverse=True)   # B -> A (models with both directions: cyclegan)
    model.sample(n, context=a)         # = translate(a), n = len(a): the context IS the input

Translation runs in eval mode (the model's modes are restored afterwards) and is
deterministic.  A translator defines no density (``log_prob`` raises DensityError).

Batches.  Training batches are ``(x_B, x_A)``: ``batch[0]`` holds domain-B examples,
``batch[1]`` domain-A examples passed where other models take a context, with the data's
shape (n, *spec.shape), not a (n, c) vector (:meth:`Translator.check_context`).  For paired
data row i of A is the partner of row i of B; unpaired data carry no correspondence.

Data scale (as the GAN's, :class:`~deepgen.models.adversarial.gan.GAN`).  Discrete data
with L levels reach the networks dequantized, (k + u) / L with u ~ U[0, 1) in training
and u = 1/2 in eval mode; generators end in a sigmoid, and their output g maps back to the
levels as floor(L g) clamped to 0..L-1.  Continuous data are standardised per feature
(per channel for images) with the training statistics of *each domain*: (x - m_B) / s_B
for B (the base model's ``data_loc`` / ``data_scale``) and (x - m_A) / s_A for A
(``source_loc`` / ``source_scale``; :meth:`Translator.fit_preprocessing`); generators
output standardised values of their target domain.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
from torch import nn

from deepgen.data.dequantize import quantize
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.models.base import GenerativeModel
from deepgen.nets import FlatMLP, MLPDiscriminator
from deepgen.nets.patchgan import PatchGAN, patch_downsamples

DOMAINS = ("A", "B")


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Run a block with ``module`` in eval mode; every submodule's own mode is restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


class Translator(GenerativeModel):
    """Base class of the translators: data scales of both domains, the protocol, the MLP / PatchGAN nets.

    Subclasses build their networks, declare ``players()`` and implement ``generate(h, reverse)`` (the
    generator of one direction on the networks' scale, sigmoid included), ``adversarial_forward``,
    ``player_loss`` and ``figures(batch)`` (the detached figures ``loss`` reports).
    """

    family = "translation"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"translate", "fit_data"})
    # True when the model translates both ways (translate(..., reverse=True)).
    bidirectional: ClassVar[bool] = False
    # True when training needs paired data (row i of A is the partner of row i of B).
    needs_pairs: ClassVar[bool] = False

    def __init__(self, spec: DataSpec, **params):
        super().__init__(spec, **params)
        if spec.levels is not None and spec.levels < 2:
            raise ConfigError(f"{self.name}: data '{spec.name}' has {spec.levels} level; need at least 2")
        if spec.levels is None:
            self.register_buffer("source_loc", torch.zeros_like(self.data_loc))
            self.register_buffer("source_scale", torch.ones_like(self.data_scale))

    # --- data scale of each domain -------------------------------------------------
    @torch.no_grad()
    def fit_preprocessing(self, x: torch.Tensor, source: torch.Tensor | None = None) -> None:
        """Standardisation statistics of domain B from ``x`` and of domain A from ``source`` (the training
        split of each; without ``source`` A gets B's).  A no-op for discrete data or ``standardize=False``."""
        if not self.standardize:
            return
        super().fit_preprocessing(x if source is None else source)
        self.source_loc.copy_(self.data_loc)
        self.source_scale.copy_(self.data_scale)
        if source is not None:
            super().fit_preprocessing(x)

    def fit_data(self, splits) -> None:
        """Before training: domain A's standardisation statistics from the task's training sources (domain B's
        came from ``fit_preprocessing`` on the training split)."""
        translation = getattr(splits, "translation", None)
        if translation is not None:
            self.fit_preprocessing(splits.train, source=translation.source["train"])

    def _stats(self, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.source_loc, self.source_scale) if domain == "A" else (self.data_loc, self.data_scale)

    def to_net(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """Data of ``domain`` ("A" or "B") -> the networks' scale: (k + u) / L (u ~ U[0, 1) in training, 1/2 in
        eval mode) for L levels; (x - m) / s with that domain's statistics for continuous data."""
        if self.spec.levels is not None:
            u = torch.rand_like(x) if self.training else torch.full_like(x, 0.5)
            return (x + u) / self.spec.levels
        if not self.standardize:
            return x
        loc, scale = self._stats(domain)
        return (x - loc) / scale

    def from_net(self, h: torch.Tensor, domain: str) -> torch.Tensor:
        """The networks' scale -> data of ``domain``: floor(L h) clamped to 0..L-1, or h s + m."""
        if self.spec.levels is not None:
            return quantize(h, self.spec.levels)
        if not self.standardize:
            return h
        loc, scale = self._stats(domain)
        return h * scale + loc

    def recode(self, h: torch.Tensor, source: str, target: str) -> torch.Tensor:
        """Examples on the networks' scale of domain ``source`` re-expressed with ``target``'s statistics
        (the same data values): the identity for discrete data and when both domains share statistics."""
        if self.spec.levels is not None or not self.standardize or source == target:
            return h
        (m_s, s_s), (m_t, s_t) = self._stats(source), self._stats(target)
        return (h * s_s + m_s - m_t) / s_t

    def generator_output(self, raw: torch.Tensor) -> torch.Tensor:
        """A generator's raw output on the networks' scale: sigmoid for discrete data (in [0, 1]), as is otherwise."""
        return torch.sigmoid(raw) if self.spec.levels is not None else raw

    # --- networks ---------------------------------------------------------------------
    def mlp_generator(self, hidden: int, depth: int) -> nn.Module:
        """Vector -> vector of the data's shape: an MLP with ``depth`` ReLU layers of ``hidden`` units."""
        return FlatMLP(self.spec.dim, self.spec.shape, hidden, depth, 0)

    def mlp_discriminator(self, in_features: int, hidden: int, depth: int) -> nn.Module:
        """An MLP with LeakyReLU(0.2) to one logit / score per example (no normalisation)."""
        return MLPDiscriminator(in_features, hidden, depth, leaky_slope=0.2)

    def patch_discriminator(self, in_channels: int, channels: int, patch: int) -> PatchGAN:
        """A :class:`PatchGAN` whose scores see ``patch`` x ``patch`` pixels (rounded up to 7 2^n - 2)."""
        _, h, w = self.spec.shape
        return PatchGAN(in_channels, channels, patch_downsamples(patch, h, w, f"{self.name}: patch"))

    # --- protocol -----------------------------------------------------------------------
    def check_context(self, context: torch.Tensor | None, n: int) -> torch.Tensor:
        """The domain-A examples on this model's device, after checking their shape is (n, *spec.shape)."""
        shape = (n, *self.spec.shape)
        if context is None:
            raise ConfigError(f"{self.name}: a translator needs domain-A inputs of shape {shape} as its context "
                              "(sample(n, context=a) = translate(a); from the command line: `deepgen translate`)")
        if not isinstance(context, torch.Tensor) or tuple(context.shape) != shape:
            got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise ConfigError(f"{self.name}: domain-A inputs must have shape {shape} (examples of data "
                              f"'{self.spec.name}'), got {got}")
        context = context.to(self.device)
        return context if context.is_floating_point() else context.float()

    def unpack(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_B, x_A) of a training batch ``(x_B, x_A)``, on this model's device."""
        if isinstance(batch, torch.Tensor) or len(batch) < 2:
            raise ConfigError(f"{self.name}: a translator trains on batches (x_B, x_A) of both domains; got "
                              "domain B only (train it on a translation dataset, e.g. edges2digits)")
        b = batch[0]
        return b, self.check_context(batch[1], len(b))

    def generate(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """The generator A -> B (B -> A with ``reverse``) on the networks' scale, output squashed as data need."""
        raise NotImplementedError

    def translate(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Domain-A examples ``x`` (n, *shape) on the data scale -> domain B on the data scale (integers 0..L-1
        for discrete data); ``reverse=True``: B -> A.  Eval mode and no gradients: deterministic."""
        if reverse and not self.bidirectional:
            raise ConfigError(f"{self.name}: translates A -> B only; reverse=True (B -> A) needs a model trained "
                              "in both directions (cyclegan)")
        x = self.check_context(x, len(x))
        source, target = ("B", "A") if reverse else ("A", "B")
        with evaluating(self), torch.no_grad():
            h = self.generate(self.to_net(x, source), reverse)
            return self.from_net(h, target)

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """translate(context): the domain-B images of the n domain-A examples ``context`` (``temperature`` is
        ignored: a translator draws no noise at translation time)."""
        self.check_context(context, n)
        return self.translate(context)

    def log_prob(self, x, context=None):
        raise DensityError(f"{self.name}: a translator is an implicit map A -> B and defines no density; judge it by "
                           "its translations (error against the truth T(A), label preservation, Frechet distance)")

    def figures(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """The figures of the game on a batch (x_B, x_A), without gradients and without changing any training
        state (the image pools): ``loss`` is the generators' objective, the other keys its terms and D's."""
        with torch.no_grad():
            return {k: v.detach() for k, v in self.figures(batch).items()}
