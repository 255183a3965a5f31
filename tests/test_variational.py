"""Variational inference on unnormalised targets: the potentials, log Z by quadrature, the
reverse-KL objective, the figures (ELBO <= log Z, KL = 0 for an exact fit) and the CLI."""

import json
import math

import pytest
import torch

from deepgen.data import list_datasets, load_data
from deepgen.data.energy import TARGETS, EnergyTarget
from deepgen.errors import DataError
from deepgen.evaluation.variational import score_target
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train


def gaussian_target(sigma=0.7, shift=(1.0, -0.5)):
    """U(z) = |z - m|^2 / (2 sigma^2): Z = 2 pi sigma^2."""
    m = torch.tensor(shift)
    return EnergyTarget("gauss", lambda z: ((z - m.to(z.dtype)) ** 2).sum(1) / (2 * sigma**2), "test Gaussian")


def test_potentials_at_hand_computed_points():
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    u1 = TARGETS["energy-u1"].energy(z)
    # (2, 0): on the ring, on the right lobe: -log(1 + exp(-(4/0.6)^2/2))
    assert u1[0].item() == pytest.approx(-math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)), abs=1e-12)
    # (0, 0): ((0 - 2)/0.4)^2/2 - log(2 exp(-(2/0.6)^2/2))
    assert u1[2].item() == pytest.approx(12.5 - math.log(2) + 0.5 * (2 / 0.6) ** 2, abs=1e-9)
    u2 = TARGETS["energy-u2"].energy(z)
    assert u2[1].item() == pytest.approx((1 / 4.5) ** 20, abs=1e-12)  # on the sine: only the wall
    u3 = TARGETS["energy-u3"].energy(z)
    w1, w2 = 1.0, 3 * math.exp(0.0)  # at z1 = 1
    a = 1.0 - w1
    expect = -math.log(math.exp(-0.5 * (a / 0.35) ** 2) + math.exp(-0.5 * ((a + w2) / 0.35) ** 2)) + (1 / 4.5) ** 20
    assert u3[1].item() == pytest.approx(expect, abs=1e-9)
    u4 = TARGETS["energy-u4"].energy(z)
    w3 = 3 / (1 + math.exp(0.0))
    expect = -math.log(math.exp(-0.5 * (a / 0.4) ** 2) + math.exp(-0.5 * ((a + w3) / 0.35) ** 2)) + (1 / 4.5) ** 20
    assert u4[1].item() == pytest.approx(expect, abs=1e-9)


def test_log_z_quadrature_matches_a_closed_form():
    sigma = 0.7
    assert gaussian_target(sigma).log_z() == pytest.approx(math.log(2 * math.pi * sigma**2), abs=1e-8)


def test_every_target_has_finite_mass_inside_its_box():
    for target in TARGETS.values():
        wide, area = target.grid(301, (-12.0, 12.0))
        neg_u = -target.energy(wide)
        inside = (wide.abs() < target.box[1]).all(1)
        outside = torch.logsumexp(neg_u[~inside], 0) - torch.logsumexp(neg_u, 0)
        assert outside < math.log(1e-6), (target.name, float(outside))
        assert math.isfinite(target.log_z())


def test_an_exact_fit_has_zero_gap_and_full_ess():
    """q = N(0, I) (a fresh flow is the identity) against U = |z|^2 / 2: log w is the constant log Z."""
    target = gaussian_target(1.0, (0.0, 0.0))
    model = build_model("realnvp", target.spec, {"couplings": 2, "hidden": 8})
    s = score_target(model, target, n=2000)
    assert s["elbo_nats"] == pytest.approx(math.log(2 * math.pi), abs=1e-5)
    assert s["kl_nats"] == pytest.approx(0.0, abs=1e-5) and s["log_z_gap_is"] == pytest.approx(0.0, abs=1e-5)
    assert s["ess_fraction"] == pytest.approx(1.0, abs=1e-6)
    assert abs(s["forward_kl_nats"]) < 1e-3 and s["q_mass_in_box"] == pytest.approx(1.0, abs=1e-4)


def test_elbo_is_below_log_z_and_training_closes_the_gap(tmp_path):
    """Fitting a shifted, narrow Gaussian target by reverse KL: the ELBO stays below log Z and the gap shrinks."""
    target = gaussian_target()
    model = build_model("realnvp", target.spec, {"couplings": 4, "hidden": 16})
    before = score_target(model, target, n=4000)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        z, log_q = model.sample_and_log_prob(256)
        loss = (log_q + target.energy(z)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = score_target(model, target, n=4000)
    for s in (before, after):
        assert s["elbo_nats"] <= s["log_z_true"] + 3 * s["elbo_stderr"]
    assert before["kl_nats"] > 0.5 and after["kl_nats"] < 0.05, (before["kl_nats"], after["kl_nats"])


def test_targets_are_listed_but_hold_no_samples():
    assert {"energy-u1", "energy-u2", "energy-u3", "energy-u4"} <= set(list_datasets())
    with pytest.raises(DataError, match="unnormalised target"):
        load_data("energy-u3")


def test_train_on_a_target_writes_the_vi_report(tmp_path):
    cfg = TrainConfig.from_dict({"model": "realnvp", "data": "energy-u2", "steps": 40, "eval_every": 20,
                                 "model_params": {"couplings": 2, "hidden": 16}})
    scores = train(cfg, tmp_path / "run")
    for key in ("elbo_nats", "log_z_is", "log_z_true", "kl_nats", "ess_fraction", "forward_kl_nats"):
        assert math.isfinite(scores[key]), key
    assert scores["log_z_true"] == pytest.approx(TARGETS["energy-u2"].log_z())
    assert (tmp_path / "run" / "target_fit.png").stat().st_size > 10000
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "val/elbo_nats" in metrics and "val/kl_nats" in metrics
    from deepgen.evaluation.plots import curve_panels
    from deepgen.training.metrics import MetricsTable

    titles = [p[0] for p in curve_panels(MetricsTable.read(tmp_path / "run" / "metrics.csv"))]
    assert titles[:3] == ["training loss", "ELBO", "KL(q || p) = log Z - ELBO (fit to a target)"], titles
    from deepgen.workflows.score import score_run

    again = score_run(tmp_path / "run")
    assert again["elbo_nats"] == scores["elbo_nats"] and again["kl_nats"] == scores["kl_nats"]


def run_cli(*args):
    from deepgen.cli import main

    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code


def test_cli_refuses_models_and_settings_that_cannot_fit_a_target(tmp_path, capsys):
    code = run_cli("train", "--model", "gan", "--data", "energy-u1", "--steps", "5", "--out", str(tmp_path / "g"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "sample_and_log_prob" in err[0]
    assert not (tmp_path / "g").exists()
    code = run_cli("train", "--model", "realnvp", "--data", "energy-u1", "--context", "label", "--steps", "5",
                   "--out", str(tmp_path / "c"))
    assert code == 2 and "no labels" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_cli_score_prints_the_figures(tmp_path, capsys):
    cfg = TrainConfig.from_dict({"model": "realnvp", "data": "energy-u1", "steps": 5,
                                 "model_params": {"couplings": 2, "hidden": 8}})
    train(cfg, tmp_path / "r")
    assert run_cli("score", str(tmp_path / "r")) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["data"] == "energy-u1" and scores["elbo_nats"] <= scores["log_z_true"] + 4 * scores["elbo_stderr"]
    # samples of a target run: a picture without the (non-existent) data and without a warning
    assert run_cli("sample", str(tmp_path / "r"), "-n", "200", "--out", str(tmp_path / "s.png")) == 0
    assert "warning" not in capsys.readouterr().err and (tmp_path / "s.png").stat().st_size > 5000
