"""FVSBN: the autoregressive property, exact normalisation, the per-dimension logistic regressions it
claims to be, completion, save/load and learning."""

import pytest
import torch
from autoregressive_checks import check_autoregressive, check_completion, check_normalised, fit_briefly, random_inputs

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model


def fvsbn(levels, shape, **params):
    return build_model("fvsbn", DataSpec("t", tuple(shape), levels), params)


@pytest.mark.parametrize("levels,shape,params", [
    (2, (1, 3, 3), {}), (3, (5,), {"order": "random"}), (None, (4,), {}), (4, (3, 2, 2), {}),
    (2, (4,), {"context_features": 2}),
])
def test_every_conditional_sees_exactly_the_earlier_dims(levels, shape, params):
    model = fvsbn(levels, shape, **params)
    ctx = torch.randn(1, 2, dtype=torch.double) if params.get("context_features") else None
    check_autoregressive(model, ctx, full=True)  # a full lower triangle: no blind spot, no leak
    if len(shape) == 3 and shape[0] > 1:  # channels inside a pixel: red before green before blue
        order = model.ordering().tolist()
        h, w = shape[1:]
        assert order[:3] == [0, h * w, 2 * h * w]


@pytest.mark.parametrize("levels,shape,params", [
    (2, (1, 3, 3), {}), (2, (1, 3, 3), {"order": "random"}), (3, (1, 2, 2), {}), (3, (4,), {"order": "random"}),
])
def test_probabilities_sum_to_one(levels, shape, params):
    check_normalised(fvsbn(levels, shape, **params))


def test_normalised_for_each_context():
    model = fvsbn(2, (3,), context_features=2)
    for c in torch.randn(3, 1, 2):
        check_normalised(model, c)


def test_binary_conditionals_are_logistic_regressions_on_the_past():
    model = fvsbn(2, (5,), order="random").double()
    with torch.no_grad():
        model.linear.weight.normal_()
    x = random_inputs(model.spec, 7)
    w, b = model.linear.weight * model.linear.mask[0], model.linear.bias
    order, lp = model.ordering().tolist(), torch.zeros(7, dtype=torch.double)
    for t, d in enumerate(order):
        past = order[:t]
        logit = b[d] + (2 * x[:, past] - 1) @ w[d, past]  # inputs scaled to [-1, 1]
        lp += torch.distributions.Bernoulli(logits=logit).log_prob(x[:, d])
    torch.testing.assert_close(model.log_prob(x), lp)


def test_completion_and_sampling():
    model = fvsbn(3, (1, 3, 3), order="random")
    x = random_inputs(model.spec, 6).float()
    check_completion(model, x, torch.rand(x.shape) < 0.5)
    s = model.sample(5, temperature=0)
    assert torch.equal(s, model.sample(5, temperature=0))  # T = 0: every conditional's mode
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-1)


def test_save_load_reproduces_log_prob_and_ordering(tmp_path):
    model = fvsbn(3, (1, 2, 3), order="random", seed=4)
    with torch.no_grad():
        model.linear.weight.normal_()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    x = random_inputs(model.spec, 9).float()
    assert torch.equal(loaded.ordering(), model.ordering())
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_training_beats_the_independent_baseline():
    model = build_model("fvsbn", load_data("digits-binary").spec, {})
    final, baseline = fit_briefly(model, "digits-binary", steps=300, lr=1e-2)
    assert final < baseline - 3, (final, baseline)
