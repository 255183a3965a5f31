"""``deepgen complete``: masks, the hidden-part NLL (exact where it can be, importance-sampled otherwise)
checked against brute-force enumeration, and the command's files and refusals."""

import json
import math

import pytest
import torch
from autoregressive_checks import all_configs
from bijection_checks import perturb

from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.evaluation.completion import hidden_log_likelihood, observed_first, parse_mask
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train


def test_masks():
    img = DataSpec("i", (1, 4, 6), 3)
    bottom = parse_mask("bottom-half", img, 2)
    assert bottom.shape == (2, 1, 4, 6) and bottom[:, :, 2:].all() and not bottom[:, :, :2].any()
    right = parse_mask("right-half", img, 1)
    assert right[..., 3:].all() and not right[..., :3].any()
    rnd = parse_mask("random:0.3", img, 500, seed=1)
    assert abs(rnd.float().mean().item() - 0.3) < 0.02 and not torch.equal(rnd[0], rnd[1])
    assert torch.equal(rnd, parse_mask("random:0.3", img, 500, seed=1))  # seeded
    vec = DataSpec("v", (5,), None)
    assert parse_mask("right-half", vec, 1)[0].tolist() == [False, False, True, True, True]
    for bad, match in (("bottom-half", "vectors"), ("random:1.5", "0 < P < 1"), ("random:x", "random:P"),
                       ("middle", "expected one of")):
        with pytest.raises(ConfigError, match=match):
            parse_mask(bad, vec, 1)


def test_observed_first_follows_each_ordering():
    model = build_model("fvsbn", DataSpec("i", (1, 2, 2), 3), {})
    assert observed_first(model, parse_mask("bottom-half", model.spec, 3))
    assert not observed_first(model, parse_mask("top-half", model.spec, 3))
    made = build_model("made", DataSpec("i", (1, 2, 2), 3), {"hidden": 8, "num_masks": 3, "order": "random"})
    assert not observed_first(made, parse_mask("bottom-half", made.spec, 3))  # other orderings mix them


def brute_force_hidden(model, x, missing):
    """log p(x_h | x_o) by summing p over every value of the hidden entries."""
    every = all_configs(model.spec.levels, model.spec.shape)
    with torch.no_grad():
        lp_all = model.log_prob(every)
    out = []
    for xi, mi in zip(x, missing):
        agree = (every == xi).reshape(len(every), -1)[:, ~mi.reshape(-1)].all(1)
        out.append(model.log_prob(xi[None]).item() - torch.logsumexp(lp_all[agree], 0).item())
    return torch.tensor(out, dtype=torch.double)


@pytest.mark.parametrize("name,params", [("fvsbn", {}), ("made", {"hidden": 16, "num_masks": 2})])
def test_hidden_nll_matches_enumeration(name, params):
    model = perturb(build_model(name, DataSpec("i", (1, 2, 2), 3), params).double(), scale=0.8)
    x = torch.randint(3, (6, 1, 2, 2)).double()
    bottom = parse_mask("bottom-half", model.spec, 6)
    got = hidden_log_likelihood(model, x, bottom, samples=5000, batch_size=10**5)
    torch.testing.assert_close(got["hidden_log_lik"], brute_force_hidden(model, x, bottom), atol=5e-2, rtol=0)
    assert got["estimator"] == ("exact" if name == "fvsbn" else "importance sampling")
    if name == "fvsbn":  # exact: one sample, to rounding
        torch.testing.assert_close(got["hidden_log_lik"], brute_force_hidden(model, x, bottom))
    rnd = parse_mask("random:0.5", model.spec, 6, seed=3)
    got = hidden_log_likelihood(model, x, rnd, samples=20000, batch_size=10**5)
    assert got["estimator"] == "importance sampling" and got["samples"] == 20000
    # consistent: the proposal ignores observed entries later in the ordering, so it needs many samples
    torch.testing.assert_close(got["hidden_log_lik"], brute_force_hidden(model, x, rnd), atol=3e-2, rtol=0)


def test_hidden_density_counts_the_standardisation():
    """Continuous data, standardised: log p(x_2 | x_1) against log p(x) - log of the numerical marginal p(x_1)."""
    model = perturb(build_model("fvsbn", DataSpec("v", (2,), None), {}).double(), scale=0.5)
    model.fit_preprocessing(torch.randn(100, 2, dtype=torch.double) * torch.tensor([3.0, 0.2]) + 5)
    x = torch.tensor([[5.5, 5.1], [2.0, 4.8]], dtype=torch.double)
    got = hidden_log_likelihood(model, x, parse_mask("right-half", model.spec, 2))
    assert got["estimator"] == "exact"
    grid = torch.linspace(5 - 40 * 0.2, 5 + 40 * 0.2, 40001, dtype=torch.double)
    for i in range(2):
        pts = torch.stack([torch.full_like(grid, x[i, 0].item()), grid], 1)
        with torch.no_grad():
            marginal = torch.trapezoid(model.log_prob(pts).exp(), grid).log()
            expect = model.log_prob(x[i : i + 1]).item() - marginal.item()
        assert abs(got["hidden_log_lik"][i].item() - expect) < 1e-4


@pytest.fixture(scope="module")
def fvsbn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fv"
    train(TrainConfig.from_dict({"model": "fvsbn", "data": "digits-binary", "steps": 30, "eval_every": 30,
                                 "progress": False}), out)
    return out


def test_cli_writes_picture_and_json(fvsbn_run, tmp_path, capsys):
    png = tmp_path / "c.png"
    assert main(["complete", str(fvsbn_run), "--out", str(png), "-n", "5", "--completions", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(png.with_suffix(".json").read_text())
    assert png.stat().st_size > 1000 and printed["hidden_nll_nats"] == saved["hidden_nll_nats"]
    assert saved["estimator"] == "exact" and saved["n"] == 270 and saved["hidden_dims_mean"] == 32
    assert math.isclose(saved["nll_nats"], saved["hidden_nll_nats"] + saved["observed_nll_nats"], rel_tol=1e-9)
    arrays = tmp_path / "c.npz"
    assert main(["complete", str(fvsbn_run), "--out", str(arrays), "--mask", "random:0.25", "-n", "4",
                 "--samples", "2"]) == 0
    import numpy as np
    z = np.load(arrays)
    assert z["completions"].shape == (4, 3, 1, 8, 8)
    kept = ~z["missing"][:, None].repeat(3, 1)
    assert (z["completions"][kept] == z["original"][:, None].repeat(3, 1)[kept]).all()


def test_cli_refusals(fvsbn_run, tmp_path, capsys):
    assert main(["complete", str(fvsbn_run), "--out", str(tmp_path / "c.txt")]) == 2
    assert "expected a picture" in capsys.readouterr().err
    assert main(["complete", str(fvsbn_run), "--out", str(tmp_path / "c.png"), "--mask", "half"]) == 2
    assert "--mask 'half'" in capsys.readouterr().err
    flow = tmp_path / "flow"
    train(TrainConfig.from_dict({"model": "realnvp", "data": "moons", "steps": 2, "eval_every": 2,
                                 "progress": False}), flow)
    assert main(["complete", str(flow), "--out", str(tmp_path / "f.npz")]) == 2
    assert "cannot complete" in capsys.readouterr().err
    assert not (tmp_path / "f.npz").exists()
