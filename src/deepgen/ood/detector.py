"""``Detector``: a trained generative model as an out-of-distribution detector, in PyOD's and
scikit-learn's conventions.

    det = Detector("runs/realnvp-digits", score="typicality", contamination=0.1).fit(X_train)
    det.decision_function(X)   # higher = more abnormal (PyOD)
    det.score_samples(X)       # higher = more normal = -decision_function (scikit-learn)
    det.predict(X)             # 0 inlier / 1 outlier: decision_function(X) > threshold_ (PyOD)
    det.threshold_             # the (1 - contamination) quantile of decision_scores_ (numpy's linear rule)
    det.decision_scores_       # decision_function of the data given to fit (PyOD's name)

X is on the run's data scale (digits: integers 0..16 of shape (N, 8, 8) or (N, 1, 8, 8)), a numpy
array or a tensor.  The scores are those of :mod:`deepgen.ood.scores`; :data:`SCORES` says what
each needs of the model (read from its ``capabilities``, never from hasattr).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepgen.data.context import LabelContext
from deepgen.data.spec import validate_array
from deepgen.errors import CheckpointError, ConfigError, DataError, unknown_name
from deepgen.io import read_yaml
from deepgen.models.adversarial.gan import GAN
from deepgen.models.base import GenerativeModel
from deepgen.models.pretrained import CONFIG_FILE, load_model, run_label_context
import deepgen.ood.scores as S

SCORES = {
    "nll": "negative log-likelihood, bits/dim (models with a density or a bound)",
    "likelihood-ratio": "NLL minus a background model's NLL, bits/dim (Ren et al. 2019; background=RUN)",
    "typicality": "|NLL - mean training NLL|, bits/dim (Nalisnick et al. 2019)",
    "input-complexity": "NLL minus PNG/zlib code length, bits/dim (Serra et al. 2020; discrete data)",
    "ensemble": "-(mean - variance) of log-likelihoods over several runs (WAIC, Choi et al. 2018)",
    "transform-ratio": "NLL minus the NLL the model gives x's mirror images (default hflip, vflip), bits/dim (images)",
    "composite-ratio": "NLL minus the NLL of an even mixture of the likelihood-ratio background and the mirror "
                       "images, bits/dim (images; background=RUN)",
    "discriminator": "minus the GAN discriminator's logit (no density: a heuristic)",
    "reconstruction": "mean squared reconstruction error on the data scale (models that encode)",
}
DENSITY_SCORES = ("nll", "likelihood-ratio", "typicality", "input-complexity", "ensemble", "transform-ratio",
                  "composite-ratio")
OPTIONS = {"likelihood-ratio": ("background",), "input-complexity": ("compressor",), "transform-ratio": ("transforms",),
           "composite-ratio": ("background", "transforms")}
NEEDS_BACKGROUND = ("likelihood-ratio", "composite-ratio")
MIRROR_SCORES = ("transform-ratio", "composite-ratio")
COMMON_OPTIONS = ("batch_size", "seed", "label_context")


@dataclass
class RunInfo:
    """A loaded run: its model, label context (conditional runs), training config block and directory."""

    model: object
    label_context: LabelContext | None = None
    train: dict = field(default_factory=dict)
    path: Path | None = None


def load_run(run) -> RunInfo:
    """The model of run directory ``run`` with its label context and its ``train`` config block."""
    path = Path(run)
    if path.is_file():
        path = path.parent
    model = load_model(path)
    train = read_yaml(path / CONFIG_FILE).get("train") or {}
    if not isinstance(train, dict):
        raise CheckpointError(f"{path / CONFIG_FILE}: field 'train' is {type(train).__name__}; expected a mapping")
    return RunInfo(model, run_label_context(path), train, path)


def _as_run(run_or_model, label_context=None) -> RunInfo:
    if isinstance(run_or_model, RunInfo):
        return run_or_model
    if isinstance(run_or_model, (str, Path)):
        return load_run(run_or_model)
    if isinstance(run_or_model, GenerativeModel):
        if run_or_model.context_features and label_context is None:
            raise ConfigError(f"{run_or_model.name}: a conditional model needs label_context=LabelContext(...) "
                              "(its classes and prior) to give the marginal p(x); or pass its run directory")
        return RunInfo(run_or_model, label_context)
    raise ConfigError(f"run_or_model {type(run_or_model).__name__}: expected a run directory or a deepgen model")


def has_discriminator(model) -> bool:
    """A discriminator logit for data (capability ``critic``, or one of deepgen's GANs)."""
    return "critic" in model.capabilities or isinstance(model, GAN)


def applicable_scores(model, background: bool = False) -> list[str]:
    """The single-model scores ``model`` supports (``likelihood-ratio`` and ``composite-ratio`` only when a
    background model is at hand; the mirror scores for images), in the order of :data:`SCORES`."""
    out = []
    if "log_prob" in model.capabilities and model.density != "none":
        out += ["nll"] + (["likelihood-ratio"] if background else []) + ["typicality"]
        if model.spec.levels is not None and model.spec.levels <= 256:
            out.append("input-complexity")
        if model.spec.is_image and len(model.spec.shape) == 3:
            out += ["transform-ratio"] + (["composite-ratio"] if background else [])
    if has_discriminator(model):
        out.append("discriminator")
    if "encode" in model.capabilities:
        out.append("reconstruction")
    return out


def density_label(model) -> str:
    """How to read a model's log p: exact, or a bound / estimate (said so)."""
    if model.density == "bound":
        return "log p is a lower bound (ELBO / IWAE): NLL is an upper bound"
    if model.density == "estimate":
        return "log p is a stochastic estimate"
    return "exact log p" + (" (dequantized bound)" if "dequantize" in model.capabilities
                            and model.spec.levels is not None else "")


class Detector:
    """An OOD detector from one run (or model), or from several for ``score="ensemble"``.

    ``score``: a name of :data:`SCORES`.  ``contamination``: the share of the fitted data taken to
    be outliers, in (0, 0.5] (PyOD's meaning) -- it sets ``threshold_``.  Options:
    ``background`` (likelihood-ratio: a run directory or model of the same data, trained on
    perturbed inputs, see ``deepgen.workflows.ood_background.train_background``),
    ``compressor`` (input-complexity: ``png`` for images with 1 or 3 channels, else ``zlib``),
    ``transforms`` (transform-ratio, composite-ratio: the mirror images, names of
    :data:`deepgen.ood.scores.TRANSFORMS`, default ``("hflip", "vflip")``; leave out a symmetry the
    in-distribution data have, e.g. ``hflip`` for faces),
    ``batch_size``, ``seed`` (the log-likelihood noise), ``label_context`` (a conditional model given
    as an object).
    """

    def __init__(self, run_or_model, score: str = "nll", contamination: float = 0.1, **score_options):
        if score not in SCORES:
            raise unknown_name("OOD score", str(score), SCORES)
        if isinstance(contamination, bool) or not isinstance(contamination, (int, float)) \
                or not 0 < contamination <= 0.5:
            raise ConfigError(f"contamination {contamination!r}: expected a share in (0, 0.5]")
        allowed = OPTIONS.get(score, ()) + COMMON_OPTIONS
        unknown = sorted(set(score_options) - set(allowed))
        if unknown:
            raise ConfigError(f"score '{score}' takes no option '{unknown[0]}' (options: {', '.join(allowed)})")
        self.score, self.contamination, self.options = score, float(contamination), dict(score_options)
        self.batch_size = int(score_options.get("batch_size", 256))
        self.seed = int(score_options.get("seed", 0))
        label_context = score_options.get("label_context")
        if score == "ensemble":
            if not isinstance(run_or_model, (list, tuple)) or len(run_or_model) < 2:
                raise ConfigError("score 'ensemble' needs a list of at least 2 runs (or models) of the same data")
            self.runs = [_as_run(r, label_context) for r in run_or_model]
        else:
            if isinstance(run_or_model, (list, tuple)):
                raise ConfigError(f"score '{score}' takes one run; a list of runs is for score 'ensemble'")
            self.runs = [_as_run(run_or_model, label_context)]
        self.model = self.runs[0].model
        self.spec = self.model.spec
        for r in self.runs[1:]:
            _check_same_data(self.model, r.model)
        self._check_applies()
        self.background = None
        if score in NEEDS_BACKGROUND:
            if score_options.get("background") is None:
                raise ConfigError(f"score '{score}' needs background=RUN: the same model trained on "
                                  "perturbed inputs (deepgen.workflows.ood_background.train_background)")
            self.background = _as_run(score_options["background"], label_context)
            _check_same_data(self.model, self.background.model, "background")
        given = score_options.get("transforms")
        self.transforms = S.check_transforms(S.DEFAULT_TRANSFORMS if given is None else given,
                                             self.spec.shape) if score in MIRROR_SCORES else ()
        self.compressor = score_options.get("compressor") or (
            "png" if self.spec.is_image and self.spec.shape[0] in (1, 3) else "zlib")
        if self.compressor not in S.COMPRESSORS:
            raise ConfigError(f"compressor '{self.compressor}': expected one of {', '.join(S.COMPRESSORS)}")
        self._log_p_cache: list | None = None  # see share_log_p
        self.entropy_ = None
        self.threshold_ = None
        self.decision_scores_ = None
        self.labels_ = None

    # --- what it is ---------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The score, its units and what the density is (exact, a bound or an estimate)."""
        what = SCORES[self.score]
        if self.score in DENSITY_SCORES:
            return f"{self.score}: {what}; {density_label(self.model)}"
        return f"{self.score}: {what}"

    def _check_applies(self) -> None:
        for r in self.runs:
            m = r.model
            ok = self.score in applicable_scores(m, background=True) or (
                self.score == "ensemble" and "nll" in applicable_scores(m))
            if not ok:
                have = applicable_scores(m, background=True)
                raise ConfigError(f"score '{self.score}' does not apply to model '{m.name}' (density "
                                  f"'{m.density}'); scores that do: {', '.join(have) or 'none'}")
            if self.score in ("discriminator", "reconstruction") and m.context_features:
                raise ConfigError(f"score '{self.score}' on a conditional model needs labels for the OOD data; "
                                  "train an unconditional model")

    # --- the PyOD / scikit-learn interface --------------------------------------------------------------
    def fit(self, X, y=None) -> "Detector":
        """Score ``X`` (in-distribution training data): ``decision_scores_``, ``threshold_`` (the
        (1 - contamination) quantile) and ``labels_``; ``typicality`` also sets ``entropy_`` (the mean
        NLL of ``X`` in bits/dim, the entropy estimate H_hat).  ``y`` is ignored."""
        x = self.check_data(X)
        if self.score == "typicality":
            nll = self._nll(x)
            self.entropy_ = float(nll.mean())
            self.decision_scores_ = S.typicality(nll, self.entropy_)
        else:
            self.decision_scores_ = self._decision(x)
        self.threshold_ = float(np.quantile(self.decision_scores_.numpy(), 1 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).long()
        return self

    def decision_function(self, X) -> torch.Tensor:
        """Per-example scores, higher = more abnormal, float64 (N,)."""
        if self.score == "typicality" and self.entropy_ is None:
            raise ConfigError("score 'typicality' needs the training entropy: call fit(X_train) first")
        return self._decision(self.check_data(X))

    def score_samples(self, X) -> torch.Tensor:
        """Higher = more normal: -decision_function(X) (scikit-learn's convention)."""
        return -self.decision_function(X)

    def predict(self, X) -> torch.Tensor:
        """0 (inlier) or 1 (outlier) per example: decision_function(X) > threshold_, int64 (N,)."""
        if self.threshold_ is None:
            raise ConfigError("predict needs a threshold: call fit(X_train) first")
        return (self.decision_function(X) > self.threshold_).long()

    def typicality_test(self, X, m: int, reference, alpha: float = 0.01, draws: int = 1000) -> dict:
        """The batch typicality test on consecutive batches of ``m`` examples of ``X``: the statistic
        |mean NLL - H_hat| of each batch (bits/dim), the bootstrap threshold epsilon from ``reference``
        (in-distribution data not given to fit, e.g. the validation split) and which batches are flagged
        (statistic > epsilon)."""
        if self.entropy_ is None:
            raise ConfigError("typicality_test needs the training entropy: build the detector with "
                              "score='typicality' and call fit(X_train) first")
        stats = S.typicality_batches(self._nll(self.check_data(X)), self.entropy_, m)
        eps = S.typicality_threshold(self._nll(self.check_data(reference)), self.entropy_, m, alpha=alpha,
                                     draws=draws, seed=self.seed)
        return {"statistic": stats, "epsilon": eps, "flagged": (stats > eps).long(), "m": m, "alpha": alpha}

    # --- internals ---------------------------------------------------------------------------------------
    def check_data(self, X) -> torch.Tensor:
        """X as float32 (N, *shape) on the run's data scale; (N, H, W) is taken for (N, 1, H, W)."""
        if isinstance(X, torch.Tensor):
            x = X.detach().cpu().float()
        else:
            try:
                x = torch.as_tensor(np.asarray(X, dtype=np.float32))
            except (TypeError, ValueError) as exc:
                raise DataError(f"X: expected a numeric array of examples, got {type(X).__name__} ({exc})") from None
        shape = tuple(self.spec.shape)
        if self.spec.is_image and shape[0] == 1 and x.ndim == 3 and tuple(x.shape[1:]) == shape[1:]:
            x = x[:, None]
        if x.ndim == len(shape) and tuple(x.shape) == shape:
            x = x[None]
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"X: examples of shape {tuple(x.shape[1:])}; the model was trained on {shape} "
                            f"('{self.spec.name}')")
        return validate_array(x, self.spec, "X")

    def share_log_p(self, cache: list) -> "Detector":
        """Keep every log p(x) this detector computes in ``cache`` (a list, shared by detectors of the same runs)
        and reuse what is there: ``deepgen ood`` scores one model with several density scores, each of which
        needs log p of the same sets (an IWAE estimate can take a minute).  An entry is reused only for the same
        model object, label context, seed, batch size and equal data."""
        self._log_p_cache = cache
        return self

    def _log_p(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor:
        cache = self._log_p_cache
        key = (id(run.model), id(run.label_context), self.seed, self.batch_size, tuple(x.shape))
        if cache is not None:
            for k, x_seen, (model, log_p) in cache:
                if k == key and model is run.model and (x_seen is x or torch.equal(x_seen, x)):
                    return log_p.clone()
        log_p = S.log_likelihood(run.model, x, run.label_context, batch_size=self.batch_size, seed=self.seed)
        if cache is not None:  # (the model is held too, so its id is not reused while the entry lives)
            cache.append((key, x, (run.model, log_p.clone())))
        return log_p

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        return S.nll(self._log_p(self.runs[0], x), self.spec.dim)

    def _decision(self, x: torch.Tensor) -> torch.Tensor:
        d = self.spec.dim
        if self.score == "nll":
            return self._nll(x)
        if self.score == "likelihood-ratio":
            return S.likelihood_ratio(self._log_p(self.runs[0], x), self._log_p(self.background, x), d)
        if self.score == "typicality":
            return S.typicality(self._nll(x), self.entropy_)
        if self.score == "input-complexity":
            return S.input_complexity(self._nll(x), S.code_length_bits(x, self.spec.levels, self.compressor), d)
        if self.score == "ensemble":
            return S.ensemble(torch.stack([self._log_p(r, x) for r in self.runs]), d)
        if self.score in MIRROR_SCORES:
            run = self.runs[0]
            mirrored = torch.stack([self._log_p(run, S.transform(x, t)) for t in self.transforms])
            if self.score == "transform-ratio":
                return S.transform_ratio(self._log_p(run, x), mirrored, d)
            return S.composite_ratio(self._log_p(run, x), self._log_p(self.background, x), mirrored, d)
        if self.score == "discriminator":
            return S.discriminator(self.model, x, self.batch_size)
        return S.reconstruction(self.model, x, self.batch_size)


def _check_same_data(model, other, role: str = "ensemble member") -> None:
    if tuple(other.spec.shape) != tuple(model.spec.shape) or other.spec.levels != model.spec.levels:
        raise DataError(f"{role} '{other.name}' was trained on shape {tuple(other.spec.shape)} with "
                        f"{other.spec.levels} levels; expected {tuple(model.spec.shape)} with {model.spec.levels} "
                        "levels, as the first model")
