"""A flow whose whole transform is one fused run computes its training loss and gradients without autograd's
graph (``Flow.loss_and_gradients``): the same loss and the same gradients as ``loss(batch)`` then ``backward()``,
bit for bit; None, with nothing computed or drawn, wherever that path does not apply; and training through it
gives the very weights training through autograd gives.  Also ``mm_skinny``, the transposed product the fused
backward uses for few output columns."""

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.io import load_tensors
from deepgen.models.flows.base import Flow
from deepgen.models.registry import build_model
from deepgen.ops import mm_skinny
from deepgen.training.config import TrainConfig
from deepgen.workflows.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

MOONS = DataSpec("moons", (2,), None)
SMALL = {"maf": {"layers": 3, "hidden": 16}, "realnvp": {"couplings": 3, "hidden": 16},
         "nsf": {"transforms": 3, "hidden": 16, "bins": 4}}


def pair(name, spec, params, seed=0):
    """Two copies of one flow, its parameters moved off their (identity) initialisation."""
    torch.manual_seed(seed)
    a = build_model(name, spec, params)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.2 * torch.randn_like(p))
    b = build_model(name, spec, params)
    b.load_state_dict(a.state_dict())
    return a, b


def assert_same_step(a, b, batch, seed=0):
    torch.manual_seed(seed)
    ref = a.loss(batch)
    ref["loss"].backward()
    torch.manual_seed(seed)
    out = b.loss_and_gradients(batch)
    assert out is not None
    assert torch.equal(out["loss"], ref["loss"].detach()) and torch.equal(out["nll"], ref["nll"])
    assert not out["loss"].requires_grad
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name
            assert q.grad.stride() == q.stride(), name  # (the parameter's own layout, as autograd gives it)


@pytest.mark.parametrize("name,extra", [("maf", {}), ("maf", {"order": "random", "depth": 1}),
                                        ("realnvp", {}), ("nsf", {"variant": "autoregressive"})])
def test_loss_and_gradients_equal_loss_then_backward_bit_for_bit(name, extra):
    a, b = pair(name, MOONS, {**SMALL[name], **extra})
    assert_same_step(a, b, (torch.randn(64, 2) * 2,))


def test_the_same_with_standardised_data_and_with_a_context():
    a, b = pair("maf", MOONS, {**SMALL["maf"], "standardize": True})
    for m in (a, b):
        m.data_loc.fill_(0.3)
        m.data_scale.copy_(torch.tensor([2.0, 0.5]))
    assert_same_step(a, b, (torch.randn(40, 2),))  # (an odd batch: -1/B is not a power of two)
    a, b = pair("realnvp", MOONS, {**SMALL["realnvp"], "context_features": 3})
    assert_same_step(a, b, (torch.randn(32, 2), torch.randn(32, 3)))


def test_the_same_on_discrete_data_with_uniform_dequantization():
    spec = DataSpec("counts", (6,), 16)
    a, b = pair("maf", spec, SMALL["maf"])
    assert_same_step(a, b, (torch.randint(0, 16, (48, 6)).float(),), seed=3)  # (the same noise u ~ U[0, 1))


def test_gradients_accumulate_as_backward_does():
    a, b = pair("maf", MOONS, SMALL["maf"])
    x1, x2 = torch.randn(32, 2), torch.randn(32, 2)
    a.loss((x1,))["loss"].backward()
    a.loss((x2,))["loss"].backward()
    b.loss_and_gradients((x1,))
    b.loss_and_gradients((x2,))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_a_parameter_shared_between_layers_gets_autograds_sum(name):
    a, b = pair(name, MOONS, SMALL[name])
    for m in (a, b):  # the third layer's first conditioner weight is the first layer's
        layers = m.transform.bijections
        first = [mod for mod in layers[0].modules() if isinstance(getattr(mod, "weight", None), torch.nn.Parameter)][0]
        third = [mod for mod in layers[2].modules() if isinstance(getattr(mod, "weight", None), torch.nn.Parameter)][0]
        third.weight = first.weight
    assert_same_step(a, b, (torch.randn(40, 2),))
    assert_same_step(a, b, (torch.randn(40, 2),), seed=1)  # accumulated onto the first call's: grad + (g1 + g2)


def unchanged_rng(fn):
    state = torch.get_rng_state()
    out = fn()
    assert torch.equal(state, torch.get_rng_state())
    return out


@pytest.mark.parametrize("case", ["iaf", "glow-like: a layer that cannot fuse", "variational dequantization",
                                  "a parameter outside the run", "a gradient hook", "gradients off",
                                  "an input that requires a gradient", "a subclass with its own loss",
                                  "a subclass with its own log_prob", "a preprocessing buffer that requires a gradient",
                                  "every parameter frozen"])
def test_none_where_the_path_does_not_apply(case):
    spec, params, name = MOONS, dict(SMALL["maf"]), "maf"
    if case == "iaf":
        name = "iaf"
    if case == "variational dequantization":
        spec, params = DataSpec("counts", (6,), 16), {**params, "dequantization": "variational"}
    flow = build_model(name, spec, params)
    x = torch.randint(0, 16, (8, 6)).float() if spec.levels else torch.randn(8, 2)
    if case.startswith("glow-like"):
        flow.transform.bijections[1].fused = False
    elif case == "a parameter outside the run":
        flow.extra = torch.nn.Parameter(torch.zeros(3))
    elif case == "a gradient hook":
        next(flow.parameters()).register_hook(lambda g: g)
    elif case == "an input that requires a gradient":
        x.requires_grad_()
    elif case == "a subclass with its own loss":
        class Weighted(type(flow)):
            def loss(self, batch):
                out = super().loss(batch)
                return {**out, "loss": 2 * out["loss"]}

        flow.__class__ = Weighted
    elif case == "a subclass with its own log_prob":
        class Tempered(type(flow)):
            def log_prob(self, x, context=None):
                return 0.5 * super().log_prob(x, context)

        flow.__class__ = Tempered
    elif case == "a preprocessing buffer that requires a gradient":
        flow.data_loc.requires_grad_()
    elif case == "every parameter frozen":
        flow.requires_grad_(False)
    if case == "gradients off":
        with torch.no_grad():
            assert unchanged_rng(lambda: flow.loss_and_gradients((x,))) is None
    else:
        assert unchanged_rng(lambda: flow.loss_and_gradients((x,))) is None
    assert all(p.grad is None for p in flow.parameters())
    if case == "every parameter frozen":  # autograd's own error stays the caller's to see
        with pytest.raises(RuntimeError, match="does not require grad"):
            flow.loss((x,))["loss"].backward()
    elif case != "gradients off":  # the autograd path still trains it
        flow.loss((x,))["loss"].backward()
        assert any(p.grad is not None for p in flow.parameters())


def test_training_through_it_gives_the_weights_autograd_gives(tmp_path, monkeypatch):
    cfg = dict(model="maf", data="moons", steps=30, batch_size=50, eval_every=30, warmup_steps=3,
               model_params={"layers": 3, "hidden": 16})
    calls = []
    real = Flow.loss_and_gradients
    def counted(self, batch):
        out = real(self, batch)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(Flow, "loss_and_gradients", counted)
    direct = train(TrainConfig(**cfg), tmp_path / "direct")
    assert len(calls) == 30 and all(calls)  # every step took it (and got gradients, not the fallback)
    monkeypatch.setattr(Flow, "loss_and_gradients", lambda self, batch: None)
    graph = train(TrainConfig(**cfg), tmp_path / "graph")
    a = load_tensors(tmp_path / "direct" / "model.safetensors")
    b = load_tensors(tmp_path / "graph" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert direct["nll_nats"] == graph["nll_nats"]


@pytest.mark.parametrize("m,k,n", [(128, 128, 2), (128, 64, 4), (64, 32, 16), (40, 8, 17), (8, 8, 2), (300, 5, 1)])
@pytest.mark.parametrize("transposed", [False, True])
def test_mm_skinny_is_the_product(m, k, n, transposed):
    a = torch.randn(k, m).t() if transposed else torch.randn(m, k)
    b = torch.randn(k, n)
    out = mm_skinny(a, b)
    assert out.shape == (m, n)
    torch.testing.assert_close(out, a @ b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mm_skinny(a.double(), b.double()), a.double() @ b.double(), rtol=1e-12, atol=1e-12)
