"""The typical-set demonstration: the Gaussian closed forms against Monte Carlo, the search for the
highest-density inputs on models with a known mode, and the demo on tiny trained digits runs (units)."""

import json
import math

import pytest
import torch
from torch import nn

from deepgen.data import load_data
from deepgen.errors import ConfigError
from deepgen.evaluation.typical_set import (averaged_log_prob, ball_probability, coordinate_ascent,
                                            fraction_within, gaussian_entropy, gaussian_typical_set,
                                            gradient_ascent, is_stochastic, log_ball_probability,
                                            mean_log_density_in_ball, radius_log_density, radius_mean, radius_mode,
                                            radius_quantile, radius_std, reference_images)
from deepgen.models.pretrained import load_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train
from deepgen.workflows.typical_set import RESULT_FILE, likelihood_vs_probability

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the Gaussian ------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 10, 100])
def test_ball_probability_matches_monte_carlo(d):
    n = 200_000
    r2 = torch.randn(n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64).square().sum(1)
    for q in (0.02, 0.3, 0.5, 0.9):
        r = radius_quantile(q, d)
        p = ball_probability(r, d).item()
        assert abs(p - q) < 1e-9  # the quantile inverts the CDF
        frac = (r2 <= r * r).double().mean().item()
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
        assert math.isclose(log_ball_probability(r, d).item(), math.log(p), rel_tol=1e-9, abs_tol=1e-12)


def test_log_ball_probability_far_into_the_tail():
    mpmath = pytest.importorskip("mpmath")  # arbitrary precision: no underflow
    mpmath.mp.dps = 40
    for d in (1, 10, 100, 784, 3072):
        r = torch.tensor([0.3, 1.0, 3.0, math.sqrt(d) - 1, math.sqrt(d), math.sqrt(d) + 2], dtype=torch.float64)
        expect = torch.tensor([float(mpmath.log(mpmath.gammainc(d / 2, 0, v * v / 2, regularized=True)))
                               for v in r.tolist()], dtype=torch.float64)
        assert torch.allclose(log_ball_probability(r, d), expect, rtol=1e-9, atol=1e-12)
    # where gammainc underflows to 0 the log stays finite: the leading term a log x - x - lgamma(a+1)
    a, x = 1536.0, 0.5
    got = log_ball_probability(1.0, 3072).item()
    assert math.isfinite(got) and abs(got - (a * math.log(x) - x - math.lgamma(a + 1))) < 1e-3
    assert log_ball_probability(0.0, 5).item() == -math.inf


def test_mean_log_density_of_samples_is_minus_the_entropy():
    d = 100
    g = gaussian_typical_set(d, n_samples=20_000, seed=3)
    assert math.isclose(g["mean_log_density_of_samples_nats"], -0.5 * d * math.log(2 * math.pi * math.e))
    assert g["mean_log_density_of_samples_nats"] == -gaussian_entropy(d)
    assert abs(g["mean_log_density_of_samples_nats_mc"] - g["mean_log_density_of_samples_nats"]) \
        < 4 * g["mean_log_density_of_samples_nats_mc_sem"]
    assert g["density_ratio_mode_to_typical_nats"] == pytest.approx(
        g["log_density_at_mode_nats"] - g["mean_log_density_of_samples_nats"])
    # the ball around the mode: the densest points, and no mass (no sample inside)
    sb = g["small_ball"]
    assert sb["mean_log_density_nats"] > g["mean_log_density_of_samples_nats"] + 45
    assert sb["log10_probability"] < -79 and sb["fraction_of_samples_inside"] == 0.0


def test_radius_distribution():
    for d in (3, 30, 100):
        r = torch.linspace(1e-4, math.sqrt(d) + 12, 200_001, dtype=torch.float64)
        pdf = radius_log_density(r, d).exp()
        assert abs(torch.trapezoid(pdf, r).item() - 1) < 1e-6
        assert abs(r[pdf.argmax()].item() - radius_mode(d)) < 1e-3
        mean = torch.trapezoid(r * pdf, r).item()
        assert abs(mean - radius_mean(d)) < 1e-6
        assert abs(math.sqrt(torch.trapezoid(r * r * pdf, r).item() - mean ** 2) - radius_std(d)) < 1e-5
        # d/dr P(|z| <= r) is the radius density
        h, x = 1e-5, radius_mode(d)
        slope = (ball_probability(x + h, d) - ball_probability(x - h, d)).item() / (2 * h)
        assert math.isclose(slope, radius_log_density(x, d).exp().item(), rel_tol=1e-5)
    assert abs(radius_std(10_000) - 1 / math.sqrt(2)) < 1e-3  # the shell's width
    g = gaussian_typical_set(100, n_samples=20_000)
    assert abs(g["radius"]["mean_mc"] - g["radius"]["mean"]) < 4 * g["radius"]["std"] / math.sqrt(20_000)


def test_mean_log_density_in_a_ball_against_uniform_points():
    d, r, n = 20, 3.0, 100_000
    g = torch.Generator().manual_seed(0)
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = u / u.norm(dim=1, keepdim=True) * r * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / d)
    log_p = -0.5 * d * math.log(2 * math.pi) - 0.5 * z.square().sum(1)
    assert abs(log_p.mean().item() - mean_log_density_in_ball(r, d).item()) < 4 * log_p.std().item() / math.sqrt(n)


# --- models with a known mode --------------------------------------------------------------------------
class Independent(nn.Module):
    """log p(x) = sum_i log pi_i[x_i] (a categorical per pixel), or with ``noise`` a noisy estimate of it;
    with ``gaussian`` continuous N(mu, I)."""

    density = "exact"

    def __init__(self, logits=None, mu=None, noise=0.0):
        super().__init__()
        self.logits = None if logits is None else nn.Parameter(logits.log_softmax(-1))
        self.mu = None if mu is None else nn.Parameter(mu)
        self.noise = noise

    @property
    def device(self):
        return torch.device("cpu")

    def log_prob(self, x, context=None):
        x = x.reshape(len(x), -1)
        if self.mu is not None:
            return -0.5 * (x - self.mu).square().sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)
        lp = self.logits.gather(1, x.long().T).T.sum(1)
        return lp + self.noise * torch.randn(len(x))


def test_coordinate_ascent_reaches_the_mode_of_independent_pixels():
    g = torch.Generator().manual_seed(0)
    model = Independent(torch.randn(16, 5, generator=g))
    x0 = torch.randint(0, 5, (3, 1, 4, 4), generator=g).float()
    out = coordinate_ascent(model, x0, levels=5, sweeps=3)
    mode = model.logits.argmax(1).float()
    assert torch.equal(out["x"].reshape(3, -1), mode.expand(3, -1))
    assert out["sweeps"] == 2  # the second sweep changed nothing and stopped the search
    assert torch.allclose(out["log_prob"], model.logits.max(1).values.sum().double().expand(3))
    # a noisy estimate (common random numbers over candidate levels) still finds the mode
    noisy = Independent(torch.randn(16, 5, generator=g) * 3, noise=0.5)
    assert is_stochastic(noisy, x0) and not is_stochastic(model, x0)
    found = coordinate_ascent(noisy, x0, levels=5, sweeps=2, repeats=8)
    assert torch.equal(found["x"].reshape(3, -1), noisy.logits.argmax(1).float().expand(3, -1))


def test_averaged_log_prob_is_the_mean_of_seeded_evaluations():
    model = Independent(torch.randn(4, 3), noise=1.0)
    x = torch.tensor([[0.0, 1, 2, 0], [2, 2, 1, 0]])
    torch.manual_seed(5)
    draws = model.log_prob(x.repeat_interleave(10, 0)).double().view(2, 10).mean(1)
    assert torch.allclose(averaged_log_prob(model, x, repeats=10, seed=5), draws)


def test_gradient_ascent_reaches_the_mode_of_a_gaussian():
    mu = torch.tensor([0.5, -1.0, 2.0])
    model = Independent(mu=mu)
    out = gradient_ascent(model, torch.zeros(2, 3), steps=300, lr=0.05)
    assert torch.allclose(out["x"], mu.expand(2, 3), atol=1e-2)
    assert model.mu.requires_grad  # flags restored
    clamped = gradient_ascent(model, torch.zeros(2, 3), steps=300, lr=0.05, low=-0.5, high=0.5)
    assert torch.allclose(clamped["x"], torch.tensor([0.5, -0.5, 0.5]).expand(2, 3), atol=1e-3)


def test_reference_images_and_fractions():
    refs = reference_images(17, (1, 8, 8), 50, torch.Generator().manual_seed(0))
    assert refs["blank"].abs().sum() == 0 and refs["constant"].shape == (17, 1, 8, 8)
    assert torch.equal(refs["constant"][:, 0, 3, 5], torch.arange(17.0))
    assert refs["noise"].min() >= 0 and refs["noise"].max() <= 16 and torch.equal(refs["noise"], refs["noise"].round())
    cont = reference_images(None, (3,), 1000, torch.Generator().manual_seed(0), low=-2, high=4)
    assert cont["noise"].min() >= -2 and cont["noise"].max() <= 4 and cont["constant"][-1, 0] == 4
    f = fraction_within(torch.tensor([1.0, 1.2, 1.6, 3.0]), 1.0, (0.1, 0.5, 1.0))
    assert f == {"0.1": 0.25, "0.5": 0.5, "1": 0.75}


# --- the demo on tiny trained runs -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fvsbn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts") / "fvsbn"
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures are set up before the one_thread fixture
    train(TrainConfig.from_dict({"model": "fvsbn", "data": "digits", "steps": 20, "eval_every": 20,
                                 "progress": False}), out, verbose=False)
    torch.set_num_threads(before)
    return out


def _finite_numbers(obj):
    if isinstance(obj, dict):
        return all(_finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_numbers(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


def test_demo_without_a_run_writes_the_gaussian_part(tmp_path):
    res = likelihood_vs_probability(tmp_path, dim=30, gaussian_samples=5000, verbose=False)
    saved = json.loads((tmp_path / RESULT_FILE).read_text())
    assert saved["model"] is None and "--run" in saved["model_skipped"]
    g = saved["gaussian"]
    assert g["dim"] == 30 and set(g["units"]) == {"log_density", "radius", "probability"}
    assert [b["radius"] for b in g["balls"]] == list(range(1, math.ceil(math.sqrt(30)) + 4))
    assert (tmp_path / "typical_set_gaussian.png").stat().st_size > 10_000
    assert res["files"][0].endswith(RESULT_FILE) and "_radii_mc" not in saved["gaussian"]
    assert {"nats", "bits_per_dim", "probability"} <= set(saved["units"])
    for bad in (0, 2.5, True, 10 ** 9):
        with pytest.raises(ConfigError, match="--dim"):
            likelihood_vs_probability(tmp_path, dim=bad, verbose=False)


def test_demo_on_a_deterministic_digits_model(fvsbn_run, tmp_path, capsys):
    res = likelihood_vs_probability(tmp_path, run=fvsbn_run, dim=10, gaussian_samples=2000, model_samples=100,
                                    sweeps=1, search_time_s=20, verbose=True)
    printed = capsys.readouterr().err
    saved = json.loads((tmp_path / RESULT_FILE).read_text())
    m = saved["model"]
    assert _finite_numbers(saved) and m["log_prob_is_stochastic"] is False and m["data"] == "digits"
    assert (tmp_path / "typical_set_digits.png").stat().st_size > 10_000 and len(res["files"]) == 3
    model = load_model(fvsbn_run)
    d = 64
    with torch.no_grad():
        lp_blank = model.log_prob(torch.zeros(1, 1, 8, 8)).double().item()
        lp_test = model.log_prob(load_data("digits").test).double()
    # units: bits/dim = -log p / (64 ln 2), nats = -log p
    assert m["blank"]["bits_per_dim"] == pytest.approx(-lp_blank / (d * math.log(2)), rel=1e-6)
    assert m["blank"]["nll_nats"] == pytest.approx(-lp_blank, rel=1e-6)
    assert m["test"]["nll_nats_mean"] == pytest.approx(-lp_test.mean().item(), rel=1e-6)
    assert m["test"]["bits_per_dim_mean"] == pytest.approx(m["test"]["nll_nats_mean"] / (d * math.log(2)))
    scores = json.loads((fvsbn_run / "scores.json").read_text())
    assert m["test"]["bits_per_dim_mean"] == pytest.approx(scores["bits_per_dim"], rel=1e-9)  # as `deepgen score`
    assert m["constant"][0]["bits_per_dim"] == pytest.approx(m["blank"]["bits_per_dim"], rel=1e-6)
    best = m["best"]["bits_per_dim"]
    assert best <= m["blank"]["bits_per_dim"] and best <= min(c["bits_per_dim"] for c in m["constant"])
    assert best <= m["test"]["bits_per_dim_min"] + 1e-9  # the ascent starts from the most likely test digits
    for start in m["search"]["starts"]:
        assert start["found_bits_per_dim"] <= start["start_bits_per_dim"] + 1e-9  # greedy: never worse
    fr = list(m["fraction_of_samples_within_bits_per_dim_of_best"].values())
    assert all(0 <= a <= b <= 1 for a, b in zip(fr, fr[1:]))
    assert m["best"]["log2_probability_bits"] == pytest.approx(-best * d)
    assert "bits/dim" in printed and "blank (all-zero) input" in printed and "N(0, I_10)" in printed


def test_demo_refuses_runs_without_a_density_or_with_a_context(fvsbn_run, tmp_path, monkeypatch):
    import deepgen.workflows.typical_set as wf

    model = load_model(fvsbn_run)
    monkeypatch.setattr(wf, "load_model", lambda run: model)
    monkeypatch.setattr(model, "density", "none")
    with pytest.raises(ConfigError, match="no density"):
        likelihood_vs_probability(tmp_path / "o", run=fvsbn_run, verbose=False)
    assert not (tmp_path / "o").exists()  # refused before anything is written


@pytest.mark.slow
def test_demo_on_a_dequantized_flow(tmp_path):
    run = tmp_path / "realnvp"
    train(TrainConfig.from_dict({"model": "realnvp", "data": "digits", "steps": 30, "eval_every": 30,
                                 "progress": False, "model_params": {"scales": 1, "channels": 8}}), run,
          verbose=False)
    res = likelihood_vs_probability(tmp_path / "o", run=run, dim=10, gaussian_samples=2000, model_samples=100,
                                    sweeps=1, search_time_s=10, verbose=False)
    m = res["model"]
    assert m["log_prob_is_stochastic"] is True and m["blank"]["evaluations"] == 64
    model = load_model(run)
    torch.manual_seed(0)
    with torch.no_grad():
        lp = model.log_prob(torch.zeros(2000, 1, 8, 8)).double()
    # the blank figure estimates the same expectation (64 draws against 2000)
    assert abs(m["blank"]["nll_nats"] + lp.mean().item()) < 5 * lp.std().item() / 8
    assert _finite_numbers(res["gaussian"]) and _finite_numbers(m)

