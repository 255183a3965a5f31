"""The mixture heads: the logistic mixture a normalized P(k) over the levels, the continuous Gaussian and
logistic mixtures densities that integrate to 1, each sampled as it says; and the default head rules."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import ContinuousMixtureOutput, LogisticMixtureOutput, make_output
from deepgen.errors import ConfigError
from deepgen.models.registry import build_model


def test_logistic_mixture_sums_to_one_over_the_levels():
    out = LogisticMixtureOutput(256, components=3)
    params = torch.randn(7, 4, 9) * 3
    lp = out.level_log_probs(params)  # (7, 4, 256)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(7, 4), atol=1e-5)
    x = torch.randint(0, 256, (7, 4)).float()
    assert torch.allclose(out.log_prob(x, params), lp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1), atol=1e-6)


def test_logistic_mixture_samples_follow_its_probabilities():
    out = LogisticMixtureOutput(8, components=2)
    params = torch.tensor([2.0, -1.0, -0.8, 0.6, -0.5, 0.3])  # w, loc, log s of the 2 components
    probs = out.level_log_probs(params).exp()
    torch.manual_seed(0)
    draws = out.sample(params.expand(40000, 6))
    freq = torch.bincount(draws.long(), minlength=8).float() / len(draws)
    assert (freq - probs).abs().max() < 0.01
    assert out.sample(params.expand(3, 6), temperature=0).eq(probs.argmax()).all()


def test_made_heads_follow_the_levels():
    assert build_model("made", DataSpec("b", (6,), levels=2)).output_kind == "bernoulli"
    assert build_model("made", DataSpec("d", (64,), levels=17)).output_kind == "categorical"
    eight_bit = build_model("made", DataSpec("img", (1, 12, 12), levels=256))
    assert eight_bit.output_kind == "logistic-mixture"
    # the head does not grow with the levels: far below the 512 x 144 x 256 categorical output layer
    assert eight_bit.num_parameters() < 5_000_000
    assert build_model("made", DataSpec("img", (1, 12, 12), levels=256), {"output": "categorical"}).num_parameters() \
        > 20_000_000


@pytest.mark.parametrize("family", ["gaussian", "logistic"])
def test_continuous_mixture_integrates_to_one_and_matches_torch(family):
    out = ContinuousMixtureOutput(3, family).double()
    params = (torch.randn(3, 9, dtype=torch.double) * 1.5)
    grid = torch.linspace(-60, 60, 240001, dtype=torch.double)
    dens = out.log_prob(grid[:, None].expand(-1, 3), params.expand(len(grid), 3, 9)).exp()
    torch.testing.assert_close(torch.trapezoid(dens, grid, dim=0), torch.ones(3, dtype=torch.double), atol=1e-4,
                               rtol=0)
    w, loc, log_s = out._split(params)
    comp = torch.distributions.Normal(loc, log_s.exp()) if family == "gaussian" else \
        torch.distributions.TransformedDistribution(
            torch.distributions.Uniform(torch.zeros_like(loc), torch.ones_like(loc)),
            [torch.distributions.SigmoidTransform().inv, torch.distributions.AffineTransform(loc, log_s.exp())])
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=w), comp)
    x = torch.randn(3, dtype=torch.double) * 2
    torch.testing.assert_close(out.log_prob(x, params), mix.log_prob(x))


def test_continuous_mixture_samples_follow_the_mixture():
    out = ContinuousMixtureOutput(2, "gaussian")
    # weights 1:e, locations -3 and 3 (raw -1 and 1 plus the fixed spread -2, +2), small scales
    params = torch.tensor([0.0, 1.0, -1.0, 1.0, -2.0, -1.0])
    assert out._split(params)[1].tolist() == [-3.0, 3.0]
    torch.manual_seed(0)
    draws = out.sample(params.expand(40000, 6))
    right = (draws > 0).float().mean().item()
    assert abs(right - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    assert abs(draws[draws > 0].mean().item() - 3) < 0.01
    assert abs(draws[draws > 0].std().item() - math.exp(-1)) < 0.01
    assert out.sample(params.expand(2, 6), temperature=0).eq(3.0).all()


def test_mixture_heads_follow_the_data():
    from deepgen.distributions import resolve_output
    cont = DataSpec("c", (2,), None)
    assert resolve_output("gaussian-mixture", cont) == "gaussian-mixture"
    assert resolve_output("logistic-mixture", cont) == "logistic-mixture"
    assert isinstance(make_output("logistic-mixture", cont, 4), ContinuousMixtureOutput)
    assert isinstance(make_output("logistic-mixture", DataSpec("d", (2,), 5), 4), LogisticMixtureOutput)
    with pytest.raises(ConfigError, match="gaussian-mixture' is a density"):
        resolve_output("gaussian-mixture", DataSpec("d", (2,), 5))
