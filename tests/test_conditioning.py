"""Conditioning as data: every model that takes a context is built and run with one; label
contexts train class-conditional models whose score gives p(x | y), p(x) and a classifier."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from deepgen.data import load_data
from deepgen.data.context import LabelContext
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.conditional import conditional_summary
from deepgen.models.registry import build_model, list_models
from deepgen.training.config import TrainConfig
from deepgen.workflows.score import score_run
from deepgen.workflows.train import train

VECTOR = DataSpec("vec", (2,))
IMAGE = DataSpec("img", (1, 8, 8), 17)
CONDITIONAL = sorted(n for n, cls in list_models().items() if "conditional" in cls.capabilities)
SMALL = {"realnvp": {"couplings": 2, "hidden": 8, "channels": 4}, "made": {"hidden": 16, "num_masks": 2},
         "vae": {"hidden": 16, "channels": 8, "latent": 2}, "gan": {"hidden": 8, "latent": 2}}


def small_params(name, spec):
    cls = list_models()[name]
    unused = cls.unused_params(spec)
    return {k: v for k, v in SMALL.get(name, {}).items() if k not in unused}


def perturb(model):
    with torch.no_grad():  # move zero-initialised layers so the context can matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))


def data_for(spec, n):
    if spec.levels:
        return torch.randint(0, spec.levels, (n, *spec.shape)).float()
    return torch.randn(n, *spec.shape)


def test_the_conditional_models_are_the_ones_expected():
    assert set(CONDITIONAL) >= {"realnvp", "made", "vae", "gan"}


@pytest.mark.parametrize("spec", [VECTOR, IMAGE], ids=["vector", "image"])
@pytest.mark.parametrize("name", CONDITIONAL)
def test_every_model_runs_with_a_context(name, spec):
    kind = "image" if spec.is_image else "vector"
    if kind not in list_models()[name].data_shapes:
        pytest.skip(f"{name} models no {kind}s")
    torch.manual_seed(0)
    model = build_model(name, spec, {**small_params(name, spec), "context_features": 3})
    perturb(model)
    model.eval()
    n = 6
    c0 = torch.eye(3)[torch.zeros(n, dtype=torch.long)]
    c1 = torch.eye(3)[torch.full((n,), 2)]
    torch.manual_seed(1)
    s0 = model.sample(n, context=c0)
    torch.manual_seed(1)
    s1 = model.sample(n, context=c1)
    assert s0.shape == (n, *spec.shape) and torch.isfinite(s0).all()
    if model.density != "none":
        x = data_for(spec, n)
        torch.manual_seed(2)
        a = model.log_prob(x, c0)
        torch.manual_seed(2)
        b = model.log_prob(x, c1)
        assert a.shape == (n,) and torch.isfinite(a).all()
        assert not torch.allclose(a, b)  # the context reaches the density
    else:
        assert not torch.equal(s0, s1)  # the context reaches the generator
    with pytest.raises(ConfigError, match="conditional"):
        model.sample(n)
    with pytest.raises(ConfigError, match="shape"):
        model.sample(n, context=torch.zeros(n, 2))


@pytest.mark.parametrize("name", CONDITIONAL)
def test_unconditional_models_refuse_a_context(name):
    spec = VECTOR if "vector" in list_models()[name].data_shapes else IMAGE
    model = build_model(name, spec, small_params(name, spec))
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(3, context=torch.zeros(3, 2))


def test_conditional_summary_is_bayes_rule():
    torch.manual_seed(0)
    ctx = LabelContext(("a", "b", "c"), (10, 30, 60))
    log_lik = torch.randn(50, 3, dtype=torch.float64) * 3
    labels = torch.randint(3, (50,))
    out = conditional_summary(log_lik, labels, ctx)
    prior = torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)
    joint = log_lik.exp() * prior
    torch.testing.assert_close(out["marginal_log_prob"], joint.sum(1).log())
    assert torch.equal(out["predicted"], joint.argmax(1))
    assert out["classify_accuracy"] == (joint.argmax(1) == labels).double().mean().item()
    torch.testing.assert_close(out["log_prob"], log_lik[torch.arange(50), labels])


def test_label_context_one_hot_and_names():
    ctx = LabelContext(("0", "1", "2"), (1, 1, 2))
    assert torch.equal(ctx.one_hot(torch.tensor([2, 0])), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    assert ctx.index("2") == 2
    with pytest.raises(ConfigError, match="not a class"):
        ctx.index("7")
    with pytest.raises(DataError):
        ctx.one_hot(torch.tensor([3]))
    assert LabelContext.from_dict(ctx.to_dict()) == ctx
    assert math.isclose(ctx.entropy_nats(), -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond-ring8")
    cfg = TrainConfig.from_dict({"model": "realnvp", "data": "ring8", "context": "label", "steps": 150,
                                 "batch_size": 128, "lr": 5e-3, "warmup_steps": 10, "eval_every": 150,
                                 "progress": False, "model_params": {"couplings": 4, "hidden": 32}})
    return out, train(cfg, out, verbose=False)


def test_label_conditional_training_classifies_and_bounds_the_marginal(ring8_run):
    out, scores = ring8_run
    assert scores["classify_accuracy"] > 0.9  # 8 well-separated modes
    # -log p(x) <= -log p(x | y) - log p(y): the marginal NLL is at most the conditional one plus H(y)-ish
    prior = LabelContext.from_splits(load_data("ring8"))
    assert scores["marginal_nll_nats"] <= scores["nll_nats"] + max(-p for p in prior.log_prior().tolist())
    # with well-separated classes p(x) ~ p(x | y) p(y): the marginal costs about -log p(y) more
    assert scores["marginal_nll_nats"] >= scores["nll_nats"]
    again = score_run(out)
    assert again["nll_nats"] == scores["nll_nats"] and again["marginal_nll_nats"] == scores["marginal_nll_nats"]
    assert again["classify_accuracy"] == scores["classify_accuracy"]


def test_context_label_needs_labels(tmp_path):
    cfg = TrainConfig.from_dict({"model": "realnvp", "data": "swissroll", "context": "label", "steps": 2,
                                 "progress": False})
    with pytest.raises(DataError, match="no labels"):
        train(cfg, tmp_path / "r", verbose=False)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "deepgen", *args], capture_output=True, text=True, timeout=300)


def test_cli_trains_samples_one_class_and_scores(tmp_path):
    out = tmp_path / "digits"
    proc = run_cli("train", "--model", "made", "--data", "digits", "--context", "label", "--steps", "20",
                   "--param", "hidden=32", "--param", "num_masks=1", "--eval-every", "20", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("sample", str(out), "--label", "3", "-n", "12", "--out", str(tmp_path / "g.png"), "--npy")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert (tmp_path / "g.png").is_file() and (tmp_path / "g.npy").is_file()
    proc = run_cli("sample", str(out), "--label", "12", "-n", "4", "--out", str(tmp_path / "h.png"))
    assert proc.returncode == 2 and "not a class" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("score", str(out))
    assert proc.returncode == 0, proc.stderr[-1000:]
    scores = json.loads(proc.stdout)
    assert {"nll_nats", "marginal_nll_nats", "classify_accuracy"} <= set(scores)
    assert scores == {**scores, **{k: json.loads((out / "scores.json").read_text())[k]
                                   for k in ("nll_nats", "marginal_nll_nats", "classify_accuracy")}}


def test_cli_label_on_an_unconditional_run_is_an_error(tmp_path):
    out = tmp_path / "m"
    assert run_cli("train", "--model", "realnvp", "--data", "moons", "--steps", "2", "--param", "couplings=2",
                   "--out", str(out), "--no-progress").returncode == 0
    proc = run_cli("sample", str(out), "--label", "1", "-n", "4", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and "not class-conditional" in proc.stderr
