"""Mode coverage and sample distances: definitions checked on samples with known answers."""

import math

import pytest
import torch


from deepgen.data.spec import DataSpec
from deepgen.data.toy2d import MODES
from deepgen.errors import DataError
from deepgen.evaluation.modes import default_min_count, mode_coverage, mode_metrics_for
from deepgen.evaluation.sample_metrics import energy_distance, sample_distance
from deepgen.models.registry import build_model

CENTERS, STD = MODES["ring8"]


def at_modes(modes, n=2500, noise=0.0):
    """n samples cycling through the given mode indices, plus isotropic noise of std ``noise``."""
    idx = torch.tensor(modes)[torch.arange(n) % len(modes)]
    return CENTERS[idx] + noise * torch.randn(n, 2)


def test_samples_exactly_at_all_centers_cover_all_modes():
    r = mode_coverage(at_modes(range(8)), CENTERS, STD)
    assert (r["modes_covered"], r["n_modes"], r["modes_hit"]) == (8, 8, 8)
    assert r["high_quality_pct"] == 100.0
    assert r["mode_kl"] == pytest.approx(0.0, abs=1e-3)  # 2500 = 8 * 312 + 4: nearly uniform
    assert sum(r["counts"]) == 2500


def test_protocol_is_reported():
    r = mode_coverage(at_modes(range(8)), CENTERS, STD)
    assert r["n_samples"] == 2500 and r["n_sigma"] == 3.0
    assert r["radius"] == pytest.approx(3 * 0.02)
    assert r["min_count"] == 32 == default_min_count(2500, 8)  # ceil(0.1 * 2500 / 8)
    assert default_min_count(2500, 25) == 10 and default_min_count(10, 25) == 1


def test_three_modes_of_eight():
    r = mode_coverage(at_modes([0, 3, 5], noise=STD), CENTERS, STD)
    assert r["modes_covered"] == 3
    assert [i for i, c in enumerate(r["counts"]) if c > 0] == [0, 3, 5]
    # within 3 std in 2-D: P(chi2_2 <= 9) = 1 - exp(-4.5) = 98.9%
    assert r["high_quality_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=1.0)
    assert r["mode_kl"] == pytest.approx(math.log(8 / 3), abs=1e-2)


def test_samples_far_from_every_mode_are_low_quality():
    r = mode_coverage(at_modes(range(8)) * 5.0, CENTERS, STD)
    assert r["high_quality_pct"] == 0.0 and r["modes_covered"] == 0 and r["modes_hit"] == 0
    assert r["mode_kl"] is None


def test_threshold_is_three_std_from_nearest_center():
    direction = torch.tensor([[0.6, 0.8]])
    inside = CENTERS[2] + 2.9 * STD * direction
    outside = CENTERS[2] + 3.1 * STD * direction
    assert mode_coverage(inside, CENTERS, STD, min_count=1)["high_quality_pct"] == 100.0
    assert mode_coverage(outside, CENTERS, STD, min_count=1)["high_quality_pct"] == 0.0


def test_a_mode_with_a_few_stray_samples_is_hit_but_not_covered():
    x = at_modes(range(7), n=2495)
    x = torch.cat([x, CENTERS[7].expand(5, 2)])  # 5 samples < min_count 32
    r = mode_coverage(x, CENTERS, STD)
    assert r["modes_hit"] == 8 and r["modes_covered"] == 7
    assert mode_coverage(x, CENTERS, STD, min_count=5)["modes_covered"] == 8


def test_shape_mismatch_raises():
    with pytest.raises(DataError):
        mode_coverage(torch.zeros(10, 3), CENTERS, STD)


def collapsed_gan(center):
    """A ring8 GAN whose generator ignores z and outputs ``center``: total mode collapse."""
    model = build_model("gan", DataSpec("ring8", (2,)), {})
    out = model.generator.net.out
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(center)
    return model


def test_collapsed_generator_covers_one_mode():
    r = mode_metrics_for(collapsed_gan(CENTERS[4]), "ring8", n=2500, seed=0)
    assert r["modes_covered"] == 1 and r["counts"][4] == 2500
    assert r["high_quality_pct"] == 100.0
    assert r["mode_kl"] == pytest.approx(math.log(8))


def test_mode_metrics_for_unknown_modes_is_none():
    model = build_model("gan", DataSpec("moons", (2,)), {})
    assert mode_metrics_for(model, "moons") is None


def test_mode_metrics_are_seeded_and_leave_rng_and_mode_alone():
    model = build_model("gan", DataSpec("grid25", (2,)), {})
    model.train()
    torch.manual_seed(123)
    a = mode_metrics_for(model, "grid25", seed=5)
    after = torch.rand(3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    b = mode_metrics_for(model, "grid25", seed=5)
    assert a == b and torch.equal(after, expected) and model.training
    assert a["n_modes"] == 25 and a["n_samples"] == 2500


# --- energy distance ------------------------------------------------------------------

def test_energy_distance_of_point_masses_is_twice_their_distance():
    # X = 0, Y = (3, 4): 2 E|X-Y| - E|X-X'| - E|Y-Y'| = 2 * 5 - 0 - 0
    x, y = torch.zeros(50, 2), torch.tensor([[3.0, 4.0]]).expand(40, 2)
    assert energy_distance(x, y) == pytest.approx(10.0)


def test_energy_distance_matches_closed_form_for_gaussians():
    # 1-D, X ~ N(0,1), Y ~ N(mu,1): X - Y ~ N(-mu, 2), so
    # E|X-Y| = 2/sqrt(pi) exp(-mu^2/4) + mu (1 - 2 Phi(-mu/sqrt 2)),  E|X-X'| = E|Y-Y'| = 2/sqrt(pi)
    mu = 1.5
    phi = 0.5 * (1 + math.erf(-mu / math.sqrt(2) / math.sqrt(2)))
    cross = 2 / math.sqrt(math.pi) * math.exp(-mu**2 / 4) + mu * (1 - 2 * phi)
    exact = 2 * cross - 2 * (2 / math.sqrt(math.pi))
    # stratified "samples": the N(0,1) quantiles at (i + 1/2) / n, so the check is not at the mercy of noise
    q = torch.special.ndtri((torch.arange(2000, dtype=torch.float64) + 0.5) / 2000).unsqueeze(1)
    assert energy_distance(q, mu + q) == pytest.approx(exact, abs=2e-3)
    # random samples of the same distribution: the unbiased estimate is centred on 0
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 2000, 1, generator=g, dtype=torch.float64)
    assert abs(energy_distance(x, y)) < 0.01


def test_energy_distance_within_terms_skip_the_diagonal():
    # x = y = {0, 1}: cross mean over all 4 pairs = 1/2; within means over i != j = 1 (not 1/2),
    # so the unbiased estimate is 2 * 1/2 - 1 - 1 = -1 (the biased V-statistic would give 0).
    x = torch.tensor([[0.0], [1.0]])
    assert energy_distance(x, x.clone()) == pytest.approx(-1.0)


def test_sample_distance_is_seeded_and_orders_models():
    ref = CENTERS[torch.arange(400) % 8] + STD * torch.randn(400, 2)
    good, bad = collapsed_gan(CENTERS[0]), collapsed_gan(torch.tensor([10.0, 10.0]))
    a = sample_distance(good, ref, seed=1)
    assert a == sample_distance(good, ref, seed=1) and a["n"] == 400
    assert sample_distance(bad, ref)["energy_distance"] > a["energy_distance"] > 0


def test_sample_scores_report_distance_and_modes():
    from deepgen.data import load_data
    from deepgen.evaluation.sample_metrics import sample_scores

    splits = load_data("ring8")
    scores = sample_scores(collapsed_gan(CENTERS[1]), splits, "test", seed=0)
    assert scores["density"] == "none" and scores["n"] == 2000 and "units" in scores
    assert scores["modes"]["modes_covered"] == 1 and scores["energy_distance"] > 1.0
    moons = load_data("moons")
    assert "modes" not in sample_scores(build_model("gan", moons.spec, {}), moons, "val")
