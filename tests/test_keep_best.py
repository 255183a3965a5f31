"""``keep: best``: the run keeps the weights of its lowest validation NLL (model selection on the validation
split), and says which step they are from."""

import csv
import json
import math

import pytest
import torch

from deepgen.data import load_data
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train


def test_keeps_the_weights_of_the_lowest_validation_nll(tmp_path):
    # a large learning rate makes the validation NLL jump around, so the best step is rarely the last
    cfg = TrainConfig.from_dict({"model": "fvsbn", "data": "digits-binary", "steps": 60, "eval_every": 10,
                                 "lr": 3.0, "warmup_steps": 0, "lr_schedule": "constant", "keep": "best",
                                 "model_params": {"order": "random"}})
    out = tmp_path / "run"
    scores = train(cfg, out)
    vals = [float(r["val/nll_nats"]) for r in csv.DictReader(open(out / "metrics.csv")) if r["val/nll_nats"]]
    assert len(vals) == 6
    best = min(vals + [scores["last_step_val_nll_nats"]])
    assert math.isclose(scores["selected_val_nll_nats"], best, rel_tol=1e-6)
    assert scores["keep"] == "best" and scores["selected_step"] in (10, 20, 30, 40, 50, 60)
    # the run's weights (what score/sample load) are the selected ones: their validation NLL is the best
    model = load_model(out)
    with torch.no_grad():
        val_nll = -model.log_prob(load_data("digits-binary").val).mean().item()
    assert math.isclose(val_nll, best, rel_tol=1e-5)
    assert json.loads((out / "scores.json").read_text())["selected_step"] == scores["selected_step"]
    if scores["selected_step"] != 60:
        assert (out / "best" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("model,data,match", [("gan", "ring8", "no likelihood"), ("planar", "energy-u1", "target")])
def test_refused_without_a_validation_nll(model, data, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict({"model": model, "data": data, "keep": "best"})
    with pytest.raises(ConfigError, match="keep"):
        TrainConfig.from_dict({"model": "made", "data": "moons", "keep": "first"})
