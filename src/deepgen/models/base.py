"""The one protocol every model speaks, and what a model declares about itself.

    model.sample(n, context=None, temperature=1.0) -> Tensor     # every family
    model.log_prob(x, context=None) -> Tensor                    # per example, nats
    model.loss(batch) -> dict with "loss"                        # the training objective
    model.density    # what log_prob means (see DENSITIES)
    model.objective  # "likelihood" | "adversarial": which training adapter fits
    model.capabilities  # what else it can do (see CAPABILITIES); read these, never hasattr

Data scale.  Models receive data on the dataset's own scale (see
:mod:`deepgen.data.spec`): for discrete data, ``log_prob`` is the log of a
discrete probability, so NLLs are comparable across families.

Conditioning.  A model built with ``context_features = c > 0`` is p(x | context)
with a context of shape (B, c) (a one-hot class label when trained with
``context: label``); every protocol method takes it.  :meth:`check_context`
validates it in one place.

Staged models.  A model may build on a frozen, already trained run (a prior on a
VQ-VAE's codes, a background model, a feature network): :meth:`build_on` loads
it, freezes it, keeps it out of this model's weights and records its path and
weights hash in ``config()["builds_on"]``; loading checks the hash
(:mod:`deepgen.models.pretrained`).

Preprocessing.  On continuous data a model standardises every feature with
statistics of the training split (``standardize=True``, the default;
:meth:`fit_preprocessing`): it models y = (x - m) / s and reports

    log p_X(x) = log p_Y((x - m) / s) - sum_d log s_d

so NLLs stay in the data's own units.  m and s are buffers (saved with the
weights); ``to_model_space`` / ``from_model_space`` / ``preprocess_log_det`` are
the three calls a model makes at its data boundary.  Discrete data are left
as they are (each model maps levels to its own scale).

Models are plain ``torch.nn.Module``s, built from a :class:`DataSpec` and
keyword hyper-parameters; ``config()`` records both, which is enough to rebuild
the model exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from deepgen.data.mapped import data_moments
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.params import check_params, signature_params
from deepgen.ops import module_device

# What ``log_prob`` means.
DENSITIES = {
    "exact": "log p(x) exactly (flows, autoregressive models; for flows on discrete data the dequantized bound)",
    "bound": "a stochastic lower bound on log p(x) (ELBO, importance-weighted bound)",
    "estimate": "an unbiased stochastic estimate of log p(x) (e.g. Hutchinson traces)",
    "none": "no density: an implicit model, judged by its samples",
}

# What a model class can do besides sample() and loss().
CAPABILITIES = {
    "log_prob": "log_prob(x, context) per example in nats (density exact, bound or estimate)",
    "elbo": "elbo(x, context): the evidence lower bound per example",
    "importance_weighted": "log_prob(x, context, k) is an importance-weighted bound with k samples "
                           "(default: the model's iw_samples)",
    "encode": "encode(x, context) -> point code z, decode(z, context, mean), reconstruct(x), interpolate(x0, x1)",
    "traverse": "traverse(x, values): decode the code of x with each vector coordinate swept (code_scale() "
                "says where codes live)",
    "diagnostics": "diagnostics(x, context) -> {name: float}: model-specific figures over a whole split "
                   "(e.g. codebook perplexity), joined to the scores",
    "canvas": "canvases(n, context) -> (T, n, *shape): the canvas of n samples after each of T steps",
    "complete": "sample(n, conditioned_on=x) fills entries of x marked NaN; complete(x, context) -> (filled x, "
                "log q of the filled entries under the procedure that drew them); orderings() (M, D)",
    "dequantize": "on discrete data log_prob is a dequantized bound on log P(k)",
    "conditional": "accepts a context (context_features > 0 builds p(x | context))",
    "features": "features(x, context) -> (B, F): a learned representation of x for linear probes (e.g. a GAN "
                "discriminator's last hidden layer); models that encode are probed on encode(x) instead",
    "codes": "interpretable latent codes (InfoGAN): ``categories`` K one-hot and ``continuous`` J uniform codes, "
             "sample_codes(...) generates with given codes, code_logits(x) reads the categorical code of data",
    "truncation": "sample(n, context, truncation=t): the latent draws restricted to |z_i| <= t (the truncation "
                  "trick: fidelity for diversity)",
    "sample_log_prob": "sample_and_log_prob(n, context): differentiable samples with their log-density "
                       "(fits an unnormalised target exp(-U): variational inference)",
    "fit_data": "fit_data(splits): a closed-form or EM fit on the whole training data (all splits' fields, e.g. a "
                "translation task's ordered domain-A and domain-B sequences) before the gradient steps; called once by "
                "training, after fit_preprocessing, not on resume",
    "manipulate": "manipulate(x, **settings): x with a named attribute set to a value (e.g. angle=30), identity "
                  "kept (puppet)",
    "translate": "translate(x, reverse=False): maps domain-A examples to domain B on the data scale (reverse=True: "
                 "B -> A where the model has both directions); the context of a translator is the domain-A "
                 "example itself, shape (n, *spec.shape)",
}


class GenerativeModel(nn.Module):
    """Base class.  Subclasses set ``name``, ``family``, ``density``, ``capabilities`` and implement the protocol."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    density: ClassVar[str] = "exact"
    objective: ClassVar[str] = "likelihood"
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Hyper-parameters used only for some data shapes: {"vector": (...), "image": (...)};
    # passing one that the data's shape does not use is an error (see ``unused_params``).
    shape_params: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Which data shapes the model handles: "vector" (D,) and/or "image" (C, H, W).
    data_shapes: ClassVar[frozenset[str]] = frozenset({"vector", "image"})
    # Allowed values of hyper-parameters, checked by ``build_model`` before the constructor runs
    # (see :mod:`deepgen.models.params`): ">= 1", "> 0", "in [0, 1)", or a tuple of choices.
    param_constraints: ClassVar[dict[str, Any]] = {}
    # Hyper-parameters added after runs of the model were saved, with the value that rebuilds such a run:
    # a run's config.yaml records every hyper-parameter, so one that lacks the key predates it, and
    # :func:`~deepgen.models.pretrained.load_model` fills it in with this value, not the current default.
    params_added_later: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: DataSpec, **params: Any):
        super().__init__()
        # the same checks as build_model, for a model constructed directly from Python
        defaults = {k: p.default for k, p in signature_params(type(self)).items() if p.default is not p.empty}
        check_params(type(self), self.name or type(self).__name__,
                     {k: v for k, v in params.items() if k in defaults}, defaults)
        self.spec = spec
        self.params = dict(params)
        self.context_features = int(params.get("context_features", 0) or 0)
        if self.context_features < 0:
            raise ConfigError(f"{self.name}: context_features must be >= 0, got {self.context_features}")
        if self.context_features and "conditional" not in self.capabilities:
            raise ConfigError(f"{self.name} takes no context (context_features must be 0)")
        self._frozen: dict[str, GenerativeModel] = {}
        self._frozen_records: dict[str, dict] = {}
        self.standardize = bool(params.get("standardize", False)) and spec.levels is None
        if spec.levels is None:
            # per feature for vectors, per channel for continuous images; identity until fitted
            stat_shape = (spec.shape[0], 1, 1) if spec.is_image else tuple(spec.shape)
            self.register_buffer("data_loc", torch.zeros(stat_shape))
            self.register_buffer("data_scale", torch.ones(stat_shape))

    # --- preprocessing (continuous data) ----------------------------------------
    @torch.no_grad()
    def fit_preprocessing(self, x: torch.Tensor) -> None:
        """Set the standardisation m, s from training data ``x`` (N, *shape): a tensor, or a memory-mapped
        split read in chunks (:func:`~deepgen.data.mapped.data_moments`); a no-op when ``standardize`` is off
        or the data are discrete.  A feature with (near) zero spread gets s = 1."""
        if not self.standardize:
            return
        dims = (0, 2, 3) if self.spec.is_image else (0,)
        loc, scale = data_moments(x, dims, like=self.data_loc)
        loc = loc.reshape(self.data_loc.shape)
        scale = scale.reshape(self.data_scale.shape) if len(x) > 1 else torch.ones_like(loc)
        scale = torch.where(torch.isfinite(scale) & (scale > 1e-12 * (1 + loc.abs())), scale, torch.ones_like(scale))
        self.data_loc.copy_(torch.where(torch.isfinite(loc), loc, torch.zeros_like(loc)))
        self.data_scale.copy_(scale)

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the space the model is fitted in: (x - m) / s (unchanged for discrete data, and
        without ``standardize``: m = 0, s = 1 then, and no work is done)."""
        if self.spec.levels is not None or not self.standardize:
            return x
        return (x - self.data_loc) / self.data_scale

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_space`: y s + m."""
        if self.spec.levels is not None or not self.standardize:
            return y
        return y * self.data_scale + self.data_loc

    def preprocess_log_det(self) -> torch.Tensor | float:
        """log |det d to_model_space / dx| = -sum_d log s_d (0 for discrete data); add it to the
        model-space log-density to get the density of the data."""
        if self.spec.levels is None and self.standardize:
            per = 1 if not self.spec.is_image else self.spec.shape[1] * self.spec.shape[2]
            return -per * torch.log(self.data_scale).sum()
        return 0.0

    # --- protocol -------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Default objective: mean negative log-likelihood per example (nats)."""
        x, context = unpack_batch(batch)
        nll = -self.log_prob(x, context).mean()
        return {"loss": nll, "nll": nll.detach()}

    def loss_and_gradients(self, batch) -> dict[str, torch.Tensor] | None:
        """``loss(batch)`` with the gradient of its ``loss`` already accumulated into every parameter's ``.grad``
        (what ``loss(batch)["loss"].backward()`` gives), for a model that can compute it without autograd's
        graph; None (nothing computed, nothing drawn) where it cannot: the caller then runs ``loss`` and
        ``backward``.  The training loop of one process uses it (see :class:`~deepgen.models.flows.base.Flow`)."""
        return None

    # --- declarations ---------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        """True when this instance models p(x | context)."""
        return self.context_features > 0

    def can(self, capability: str) -> bool:
        """Whether this instance has ``capability``: a declared one, or ``classify``
        (a conditional model with a density is a generative classifier via argmax_y p(x | y) p(y))."""
        if capability == "classify":
            return self.is_conditional and self.density != "none"
        if capability == "conditional":
            return self.is_conditional
        return capability in self.capabilities

    @classmethod
    def unused_params(cls, spec: DataSpec) -> frozenset[str]:
        """Hyper-parameters this model ignores on data of ``spec``'s shape."""
        if not cls.shape_params:
            return frozenset()
        kind = "image" if spec.is_image else "vector"
        used = set(cls.shape_params.get(kind, ()))
        return frozenset(n for names in cls.shape_params.values() for n in names if n not in used)

    def check_context(self, context: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The context on this model's device, after checking it fits: (n, context_features) or None."""
        c = self.context_features
        if c == 0:
            if context is not None:
                raise ConfigError(f"{self.name}: got a context but the model is unconditional (context_features=0)")
            return None
        if context is None:
            raise ConfigError(f"{self.name}: this model is conditional (context_features={c}); pass a context "
                              f"of shape ({n}, {c}) (e.g. a one-hot label)")
        if tuple(context.shape) != (n, c):
            raise ConfigError(f"{self.name}: context must have shape ({n}, {c}), got {tuple(context.shape)}")
        return context.to(self.device)

    # --- staged models: building on a frozen trained run ------------------------
    def build_on(self, role: str, run_dir) -> None:
        """Load the trained run ``run_dir`` frozen (eval mode, no gradients) as this model's ``role``.

        Reach it with ``self.frozen(role)`` (do not store it in an attribute: that would make it
        a submodule whose weights are saved and trained).  It is kept out of this model's
        state_dict (its weights stay in its own run) but follows ``.to(device)`` and ``.double()``;
        ``config()["builds_on"][role]`` records its absolute path, model name and the SHA-256 of
        its weights file.
        """
        from deepgen.models.pretrained import load_frozen

        model, record = load_frozen(run_dir)
        self._frozen[role] = model.to(self.device)
        self._frozen_records[role] = record

    def frozen(self, role: str) -> "GenerativeModel":
        return self._frozen[role]

    def builds_on(self) -> dict[str, dict]:
        """{role: {"run", "model", "weights_sha256"}} of every frozen run this model builds on."""
        return {k: dict(v) for k, v in self._frozen_records.items()}

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for m in self._frozen.values():
            m._apply(fn, recurse)
        return self

    # --- bookkeeping ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        cfg = {"model": self.name, "params": dict(self.params), "data": self.spec.to_dict()}
        if self._frozen_records:
            cfg["builds_on"] = self.builds_on()
        return cfg

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return module_device(self)

    def save_pretrained(self, directory) -> None:
        from deepgen.models.pretrained import save_model

        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory) -> "GenerativeModel":
        from deepgen.models.pretrained import load_model

        return load_model(directory)


def unpack_batch(batch):
    """(x, context) from a batch that is a tensor, a 1-tuple or an (x, context) pair."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if len(batch) == 1:
        return batch[0], None
    return batch[0], batch[1]
