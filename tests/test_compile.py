"""--compile: the training loss through torch.compile trains the same model as eager training (same seed,
same data order, a loss without random draws), reports its first step apart, refuses models it cannot
serve, and falls back to eager (saying so) when the compiler fails."""

import json

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.io import load_tensors
from deepgen.training.compiled import CompiledLoss, unfuse
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train

SMALL = dict(model="realnvp", data="moons", steps=12, batch_size=64, eval_every=12, warmup_steps=2,
             model_params={"couplings": 2, "hidden": 8})


def test_compiled_training_matches_eager_training(tmp_path):
    eager = train(TrainConfig(**SMALL), tmp_path / "eager")
    compiled = train(TrainConfig(**SMALL, compile=True), tmp_path / "compiled")
    assert compiled["compiled"] is True and "compiled" not in eager
    assert compiled["first_step_s"] > 0 and compiled["steady_steps_per_s"] > 0
    a = load_tensors(tmp_path / "eager" / "model.safetensors")
    b = load_tensors(tmp_path / "compiled" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # 12 Adam steps on the same batches: the same weights up to float rounding
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    assert compiled["nll_nats"] == pytest.approx(eager["nll_nats"], abs=1e-4)
    assert json.loads((tmp_path / "compiled" / "scores.json").read_text())["compiled"] is True


def test_unfuse_switches_off_the_hand_fused_layers():
    from deepgen.data.spec import DataSpec
    from deepgen.models.registry import build_model

    model = build_model("maf", DataSpec("moons", (2,), None), {"layers": 2, "hidden": 8})
    flags = [m for m in model.modules() if isinstance(getattr(m, "fused", None), bool)]
    assert flags and all(m.fused for m in flags)
    assert unfuse(model) == len(flags) and not any(m.fused for m in flags)


def test_a_compiler_failure_falls_back_to_eager_and_says_so(capsys):
    class Model(torch.nn.Module):
        name = "toy"

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def loss(self, batch):
            return {"loss": (self.w * batch).sum()}

    loss = CompiledLoss(Model())

    def broken(batch):
        raise RuntimeError("backend exploded\nsecond line")

    loss._compiled = broken
    x = torch.tensor([1.0, 2.0])
    assert float(loss(x)["loss"].detach()) == 3.0 and not loss.active
    assert loss.failure == "RuntimeError: backend exploded"
    assert "training without compilation" in capsys.readouterr().err


@pytest.mark.parametrize("cfg, says", [
    (dict(model="gan", data="moons"), "adversarial objective"),
    (dict(model="planar", data="energy-u1"), "is a target"),
])
def test_compile_refuses_what_it_cannot_compile(cfg, says):
    with pytest.raises(ConfigError, match=f"--compile.*{says}"):
        TrainConfig(**cfg, compile=True).check()


def test_compile_needs_a_cpp_compiler_on_cpu(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        TrainConfig(model="realnvp", data="moons", compile=True).check()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["made", "vae", "nsf", "maf", "gated-pixelcnn"])
def test_a_compiled_loss_is_compiled_once_not_per_step(name):
    """No model may make the compiler start again every step (a Python int drawn per step, e.g. MADE's mask set,
    used to specialise the graph: 8 recompilations, then eager)."""
    import torch._dynamo

    from deepgen.data import load_data
    from deepgen.models.registry import build_model

    data = "digits" if name == "gated-pixelcnn" else "moons"
    splits = load_data(data)
    torch.manual_seed(0)
    model = build_model(name, splits.spec, {"channels": 8, "layers": 2} if name == "gated-pixelcnn" else {})
    torch._dynamo.reset()
    loss = CompiledLoss(model)
    frames = []
    for step in range(6):
        out = loss(splits.train[step * 32:(step + 1) * 32])
        out["loss"].backward()
        frames.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    assert loss.active and frames[-1] == frames[1], frames  # graphs made at the first step only
