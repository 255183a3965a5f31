"""Distributions: base densities (N(0, I)) and per-dimension output distributions
(Bernoulli, categorical, discretized logistic and its mixture, Gaussian and Gaussian/logistic mixtures) shared by every family."""

from deepgen.distributions.base import (
    StandardNormal, gaussian_kl, gaussian_log_prob, standard_normal_log_prob,
)
from deepgen.distributions.outputs import (
    OUTPUTS, BernoulliOutput, CategoricalOutput, ContinuousMixtureOutput, DiscretizedLogisticOutput, GaussianOutput, LearnedScaleGaussianOutput,
    LogisticMixtureOutput, OutputDistribution, make_output, resolve_output,
)

__all__ = [
    "StandardNormal", "gaussian_kl", "gaussian_log_prob", "standard_normal_log_prob",
    "OUTPUTS", "OutputDistribution", "BernoulliOutput", "CategoricalOutput", "ContinuousMixtureOutput", "DiscretizedLogisticOutput",
    "GaussianOutput", "LearnedScaleGaussianOutput", "LogisticMixtureOutput", "make_output", "resolve_output",
]
