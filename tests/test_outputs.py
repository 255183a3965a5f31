"""The logistic-mixture head: a normalized P(k) over the levels, sampled as it says, and the default
head rule that keeps 8-bit data trainable."""

import torch

from deepgen.data.spec import DataSpec
from deepgen.distributions import LogisticMixtureOutput
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
