"""mixture-align: EM and Baum-Welch recover known mixtures and chains, the permutation search finds the true
map on the built-in mixtures task (with sequences; without them the ring's symmetry leaves it to the weights),
the map inverts, saves and trains, and log_prob is a normalised density."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.data.translation import load_mixtures, mixture_task
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.alignment import alignment_scores, task_of
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.models.translation import mixture_align as ma

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mixtures():
    return load_data("mixtures")


@pytest.fixture(scope="module")
def fitted(mixtures):
    """The default model (affine map, sequences) fitted to the built-in task."""
    torch.manual_seed(0)
    model = build_model("mixture-align", mixtures.spec)
    model.fit_data(mixtures)
    return model


def match_to_truth(fitted_means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """perm with fitted component perm[k] closest to true component k (Hungarian on squared distances)."""
    from scipy.optimize import linear_sum_assignment

    _, cols = linear_sum_assignment(((true_means[:, None] - fitted_means[None]) ** 2).sum(2))
    return cols


def test_em_recovers_a_known_mixture():
    rng = np.random.default_rng(1)
    means = np.array([[-3.0, 0.0], [2.0, 2.0], [1.0, -3.0]])
    covs = np.array([[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 0.6]], [[0.4, -0.1], [-0.1, 0.4]]])
    weights = np.array([0.2, 0.5, 0.3])
    comp = rng.choice(3, size=6000, p=weights)
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in comp])
    w, m, s, _ = ma.fit_gmm(x, 3, "full", np.random.default_rng(0))
    perm = match_to_truth(m, means)
    np.testing.assert_allclose(m[perm], means, atol=0.05)
    np.testing.assert_allclose(w[perm], weights, atol=0.02)
    np.testing.assert_allclose(s[perm], covs, atol=0.05)
    # spherical: the same means, each covariance s_k^2 I
    _, m2, s2, _ = ma.fit_gmm(x, 3, "spherical", np.random.default_rng(0))
    np.testing.assert_allclose(m2[match_to_truth(m2, means)], means, atol=0.06)
    assert np.allclose(s2[:, 0, 1], 0) and np.allclose(s2[:, 0, 0], s2[:, 1, 1])


def test_baum_welch_recovers_the_chain():
    task = mixture_task(0)
    x, _ = task.sample_sequence("A", 20000, torch.Generator().manual_seed(3))
    x = x.double().numpy()
    gmm = ma.fit_gmm(x, 5, "full", np.random.default_rng(0))
    trans, w, m, _, _ = ma.fit_hmm(x, *gmm[:3], "full", iters=5)
    perm = match_to_truth(m, task.means.numpy())
    truth = task.transition("A").numpy()
    assert np.abs(trans[np.ix_(perm, perm)] - truth).max() < 0.03
    np.testing.assert_allclose(w[perm], task.weights("A").numpy(), atol=0.02)
    # the jump part: off-diagonal, rows renormalised, is the shared Q
    assert np.abs(ma.jump_part(trans)[np.ix_(perm, perm)] - task.jump.numpy()).max() < 0.04


@pytest.mark.parametrize("kind", ["affine", "similarity"])
def test_weighted_least_squares_maps_are_exact_on_exact_correspondences(kind):
    rng = np.random.default_rng(0)
    src = rng.normal(size=(6, 2))
    t = 0.7
    m = 1.4 * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    if kind == "affine":
        m = m + np.array([[0.3, 0.0], [-0.2, 0.1]])
    c = np.array([0.5, -1.0])
    got_m, got_c = ma.fit_map(src, src @ m.T + c, rng.uniform(0.1, 1, 6), kind)
    np.testing.assert_allclose(got_m, m, atol=1e-10)
    np.testing.assert_allclose(got_c, c, atol=1e-10)


def test_the_search_with_sequences_finds_the_true_map(mixtures, fitted):
    scores = alignment_scores(fitted, mixtures)
    assert scores["component_accuracy"] >= 0.99
    assert scores["map_error"] < 2e-3
    rows = scores["rows"]
    assert rows["oracle"]["map_error"] == 0.0 and rows["oracle"]["component_accuracy"] >= scores[
        "component_accuracy"] - 0.01
    assert rows["identity"]["map_error"] > 1.0
    task = mixture_task(0)
    torch.testing.assert_close(fitted.linear_map().detach().double(), task.linear, atol=0.02, rtol=0)
    torch.testing.assert_close(fitted.offset.detach().double(), task.shift, atol=0.02, rtol=0)
    # the fitted A chain, read through the matching, is B's chain up to the holds: the jumps agree
    perm = fitted.matching
    jump_a = ma.jump_part(fitted.trans_a.double().numpy())
    jump_b = ma.jump_part(fitted.trans_b.double().numpy())
    assert np.abs(jump_b[np.ix_(perm, perm)] - jump_a).max() < 0.05


def test_sequences_break_the_rings_symmetry_that_weights_alone_do_not():
    """On mixtures-2 the i.i.d. score puts a wrong rotation of the ring first (accuracy 0.17), by a margin
    of 0.046 nats per point; the sequence score finds T with a margin of 0.375."""
    splits = load_mixtures(2)
    out = {}
    for seq in (True, False):
        torch.manual_seed(0)
        model = build_model("mixture-align", splits.spec, {"sequences": seq, "restarts": 1})
        model.fit_data(splits)
        out[seq] = (alignment_scores(model, splits)["component_accuracy"],
                    float(model.match_scores[0] - model.match_scores[1]))
    assert out[True][0] >= 0.99 and out[True][0] >= out[False][0]
    assert out[True][1] > 0.2 > out[False][1]  # with sequences the best match stands well clear


def test_hungarian_search_above_seven_components():
    """K = 8 > MAX_EXHAUSTIVE: the candidates come from the Hungarian search; given the true mixtures (B's
    components shuffled) it finds the shuffle and the map."""
    rng = np.random.default_rng(0)
    k = 8
    ma_means = rng.uniform(-4, 4, size=(k, 2))
    wa = rng.dirichlet(np.ones(k) * 5)
    covs = np.repeat(0.05 * np.eye(2)[None], k, 0)
    m_true = 1.5 * np.array([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
    c_true = np.array([1.0, -0.5])
    shuffle = rng.permutation(k)  # A's component i is B's component shuffle[i]
    mb = np.empty_like(ma_means)
    mb[shuffle] = ma_means @ m_true.T + c_true
    wb = np.empty(k)
    wb[shuffle] = rng.dirichlet(np.ones(k) * 5)
    comp = rng.choice(k, size=3000, p=wa)
    a = ma_means[comp] + rng.normal(scale=math.sqrt(0.05), size=(3000, 2))
    covs_b = np.stack([m_true @ s @ m_true.T for s in covs])
    perm, m, c, scores = ma.match_components(a, (wa, ma_means, covs), (wb, mb, covs_b), "affine")
    assert len(scores) < math.factorial(k)
    np.testing.assert_array_equal(perm, shuffle)
    np.testing.assert_allclose(m, m_true, atol=1e-8)


def test_translate_and_reverse_round_trip(mixtures, fitted):
    a = mixtures.translation.source["test"][:500]
    back = fitted.translate(fitted.translate(a), reverse=True)
    torch.testing.assert_close(back, a, atol=1e-4, rtol=0)
    assert torch.equal(fitted.sample(len(a), context=a), fitted.translate(a))
    sim = build_model("mixture-align", mixtures.spec, {"map": "similarity"})
    with torch.no_grad():
        sim.log_scale.fill_(0.3)
        sim.angle.fill_(-1.1)
        sim.offset.copy_(torch.tensor([2.0, -1.0]))
    torch.testing.assert_close(sim.translate(sim.translate(a), reverse=True), a, atol=1e-4, rtol=0)
    torch.testing.assert_close(sim.log_abs_det(), torch.linalg.slogdet(sim.linear_map())[1])


def test_save_and_load_reproduce_translations_and_density(tmp_path, mixtures, fitted):
    save_model(fitted, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    a = mixtures.translation.source["test"]
    assert torch.equal(loaded.translate(a), fitted.translate(a))
    assert torch.equal(loaded.translate(mixtures.test, reverse=True), fitted.translate(mixtures.test, reverse=True))
    assert torch.equal(loaded.log_prob(mixtures.test), fitted.log_prob(mixtures.test))
    assert torch.equal(loaded.matching, fitted.matching) and torch.equal(loaded.trans_b, fitted.trans_b)


def test_log_prob_is_the_normalised_b_mixture(mixtures, fitted):
    chol = fitted.b_cholesky().detach()
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=fitted.b_logits.detach()),
        torch.distributions.MultivariateNormal(fitted.b_means.detach(), scale_tril=chol))
    x = mixtures.test[:300]
    torch.testing.assert_close(fitted.log_prob(x, context=mixtures.translation.source["test"][:300]),
                               mix.log_prob(x), atol=1e-4, rtol=0)
    # integrates to 1 over a grid covering B's support
    lo, hi, n = -8.0, 8.0, 321
    g = torch.linspace(lo, hi, n)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = fitted.log_prob(grid).exp().sum().item() * ((hi - lo) / (n - 1)) ** 2
    assert abs(mass - 1) < 0.01
    # a fitted B mixture explains B's test points far better than A's
    assert fitted.log_prob(mixtures.test).mean() > fitted.log_prob(mixtures.translation.source["test"]).mean() + 1


def test_the_loss_is_the_pulled_back_nll_and_gradient_steps_lower_it(mixtures, fitted):
    model = build_model("mixture-align", mixtures.spec)
    model.load_state_dict(fitted.state_dict())
    with torch.no_grad():
        model.linear.mul_(1.1)
        model.offset.add_(torch.tensor([0.3, -0.2]))
    a, b = mixtures.translation.source["train"], mixtures.train
    out = model.loss((b[:256], a[:256]))
    m = model.linear_map()
    expected = -(model.log_prob(a[:256] @ m.T + model.offset) + torch.linalg.slogdet(m)[1]).mean()
    torch.testing.assert_close(out["loss"], expected)
    assert set(out) >= {"loss", "nll_mapped", "log_det"}
    before = model.loss((b[:2000], a[:2000]))["loss"].item()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        idx = torch.randint(len(a), (128,), generator=gen)
        opt.zero_grad()
        model.loss((b[idx], a[idx]))["loss"].backward()
        opt.step()
    after = model.loss((b[:2000], a[:2000]))["loss"].item()
    assert after < before - 0.1
    assert model.b_means.grad is None  # B's mixture stays fixed without refine_density
    # refine_density adds B's own NLL and trains the mixture too
    refine = build_model("mixture-align", mixtures.spec, {"refine_density": True})
    refine.load_state_dict(fitted.state_dict())
    out = refine.loss((b[:256], a[:256]))
    torch.testing.assert_close(out["loss"], out["nll_mapped"] + out["nll_b"])
    out["loss"].backward()
    assert refine.b_means.grad is not None


@pytest.mark.parametrize("params, match", [
    ({"map": "rigid"}, "map"), ({"components": 1}, "components"), ({"covariance": "diag"}, "covariance"),
    ({"components": 2}, "affine"), ({"sequences": "yes"}, "sequences"), ({"restarts": 0}, "restarts"),
])
def test_bad_params_are_config_errors(mixtures, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("mixture-align", mixtures.spec, params)


def test_wrong_data_is_a_config_error_naming_the_model(digits):
    for spec in (DataSpec("three", (3,)), digits.spec, DataSpec("levels", (2,), 5)):
        with pytest.raises(ConfigError, match="mixture-align"):
            build_model("mixture-align", spec)
    moons = load_data("moons")
    model = build_model("mixture-align", moons.spec)
    with pytest.raises(ConfigError, match="mixture-align.*not a translation task"):
        model.fit_data(moons)
    with pytest.raises(DataError, match="moons"):
        task_of(moons)
