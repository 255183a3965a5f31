"""MAF and IAF: the masked autoregressive bijection, the autoregressive property, pass counts
(MAF: density 1 pass / sampling D passes per layer; IAF the other way round), identity at init,
normalisation, save/load, conditioning, training, CLI."""


import pytest
import torch

from bijection_checks import arc_data, check_bijection, nll_before_and_after_training, perturb
from conftest import same_under_seed

from deepgen.bijections import Inverse, MaskedAutoregressive
from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.flows.maf import MADEConditioner
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model

FLOWS = ("maf", "iaf")


def made_layer(d=5, ctx=0, order=None, depth=2):
    order = torch.randperm(d, generator=torch.Generator().manual_seed(4)) if order is None else order
    return MaskedAutoregressive(MADEConditioner(d, 16, depth, order, seed=3, context_features=ctx), scale_bound=2.0)


def count_conditioner_calls(model):
    """Attach a counter to every MADE conditioner of ``model``; returns the list of per-layer counts.  A pass is
    a call of the conditioner or of its fused form (``fused_parts``: one fused MAF layer evaluation)."""
    counts = []
    for m in model.modules():
        if isinstance(m, MADEConditioner):
            counts.append(0)
            i = len(counts) - 1
            m.register_forward_hook(lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
            parts = m.fused_parts

            def counted(parts=parts, i=i):
                counts[i] += 1
                return parts()

            m.fused_parts = counted
    return counts


@pytest.mark.parametrize("ctx", [0, 3])
@pytest.mark.parametrize("depth", [0, 2])
def test_single_layer_is_a_bijection(ctx, depth):
    layer = perturb(made_layer(5, ctx, depth=depth)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    c = torch.randn(4, ctx, dtype=torch.float64) if ctx else None
    check_bijection(layer, x, c)
    check_bijection(Inverse(layer), x, c)


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("ctx", [0, 2])
def test_transform_is_a_bijection(name, ctx):
    model = perturb(build_model(name, DataSpec("v", (4,)), {"layers": 3, "hidden": 12, "order": "random",
                                                           "context_features": ctx}), 0.2)
    x = torch.randn(3, 4, dtype=torch.float64)
    c = torch.randn(3, ctx, dtype=torch.float64) if ctx else None
    check_bijection(model.transform.double(), x, c)


def test_image_transform_is_a_bijection():
    """Images: logit, flatten, then the autoregressive stack (the dequantized pixels are in (0, 1))."""
    model = perturb(build_model("maf", DataSpec("d", (1, 2, 3), 5), {"layers": 2, "hidden": 12}), 0.2)
    y = torch.rand(3, 1, 2, 3, dtype=torch.float64) * 0.9 + 0.05
    check_bijection(model.transform.double(), y)


@pytest.mark.parametrize("order", ["reversed", "random"])
def test_conditioner_is_autoregressive_in_its_ordering(order):
    """d(shift_i, log-scale_i)/dx_j = 0 for every j at or after i in the layer's ordering, and the
    earlier inputs do reach it; checked for every layer of a perturbed MAF."""
    d = 6
    model = perturb(build_model("maf", DataSpec("v", (d,)), {"layers": 3, "hidden": 24, "order": order}), 0.5)
    conditioners = [m for m in model.modules() if isinstance(m, MADEConditioner)]
    orderings = {tuple(c.ordering.tolist()) for c in conditioners}
    assert len(orderings) > 1, "the layers should not all share one ordering"
    x = torch.randn(d)
    for cond in conditioners:
        pos = torch.argsort(cond.ordering)
        for k in range(2):
            jac = torch.autograd.functional.jacobian(lambda v: cond(v[None])[0, :, k], x)  # (D out, D in)
            later_or_same = pos[None, :] >= pos[:, None]
            assert jac[later_or_same].abs().max() == 0
            assert (jac[~later_or_same] != 0).float().mean() > 0.9  # earlier inputs are used


def test_bijection_jacobian_is_triangular_in_the_ordering():
    layer = perturb(made_layer(5))
    order = layer.conditioner.ordering
    x = torch.randn(5)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)
    permuted = jac[order][:, order]  # rows/cols in the ordering: lower triangular
    assert torch.equal(torch.triu(permuted, 1), torch.zeros_like(permuted))
    assert (torch.diagonal(permuted) != 0).all()


@pytest.mark.parametrize("name, density_passes, sampling_passes", [("maf", 1, 7), ("iaf", 7, 1)])
def test_conditioner_passes(name, density_passes, sampling_passes):
    """MAF: log_prob one MADE call per layer, sample D; IAF the other way round; IAF's
    sample_and_log_prob one call per layer."""
    model = perturb(build_model(name, DataSpec("v", (7,)), {"layers": 3, "hidden": 16}))
    counts = count_conditioner_calls(model)
    assert len(counts) == 3
    model.log_prob(torch.randn(5, 7))
    assert counts == [density_passes] * 3
    counts[:] = [0] * 3
    model.sample(5)
    assert counts == [sampling_passes] * 3
    counts[:] = [0] * 3
    model.sample_and_log_prob(5)
    assert counts == [sampling_passes] * 3


def test_iaf_sample_and_log_prob_is_consistent_with_log_prob():
    model = perturb(build_model("iaf", DataSpec("v", (3,)), {"layers": 3, "hidden": 16}), 0.2)
    model.data_loc.fill_(1.5)
    model.data_scale.fill_(2.0)
    x, lq = model.sample_and_log_prob(6)
    assert x.requires_grad and lq.requires_grad
    assert torch.allclose(lq, model.log_prob(x.detach()), atol=1e-4)


@pytest.mark.parametrize("name", FLOWS)
def test_fresh_flow_is_the_identity(name):
    model = build_model(name, DataSpec("v", (3,)), {"layers": 2, "hidden": 8})
    x = torch.randn(10, 3)
    z, ld = model.transform(x)
    assert torch.equal(z, x) and torch.equal(ld, torch.zeros(10))
    expected = torch.distributions.Normal(0, 1).log_prob(x).sum(-1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("order", ["reversed", "random"])
def test_2d_density_integrates_to_one(name, order):
    """A wrong log-det or a wrong inverse would show here: sum of p(x) dx over a fine grid must be 1."""
    model = perturb(build_model(name, DataSpec("v", (2,)), {"layers": 4, "hidden": 16, "order": order}), 0.1)
    xs = torch.linspace(-9, 9, 241)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        lp = model.log_prob(pts)
        mass = lp.exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1.0) < 0.01, mass
    assert (lp - torch.distributions.Normal(0, 1).log_prob(pts).sum(1)).abs().max() > 0.1  # not the identity


@pytest.mark.parametrize("name", FLOWS)
def test_context_changes_the_density_and_each_is_normalised(name):
    model = perturb(build_model(name, DataSpec("v", (2,)), {"layers": 3, "hidden": 16, "context_features": 2}), 0.1)
    xs = torch.linspace(-9, 9, 241)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    lps = []
    for c in ([1.0, 0.0], [0.0, 1.0]):
        ctx = torch.tensor([c]).expand(len(pts), 2)
        with torch.no_grad():
            lp = model.log_prob(pts, ctx)
        assert abs(lp.exp().sum().item() * (xs[1] - xs[0]).item() ** 2 - 1) < 0.01
        lps.append(lp)
    assert (lps[0] - lps[1]).abs().max() > 0.1
    with pytest.raises(ConfigError, match="conditional"):
        model.log_prob(pts[:3])


@pytest.mark.parametrize("name", FLOWS)
def test_save_load_reproduces_log_prob_exactly(name, tmp_path):
    spec = DataSpec("d", (1, 3, 3), 17)
    model = perturb(build_model(name, spec, {"layers": 2, "hidden": 16, "order": "random", "seed": 7}), 0.1).eval()
    # orderings are buffers: the saved ones are used, even if they differ from what the seed gives
    cond = next(m for m in model.modules() if isinstance(m, MADEConditioner))
    cond.net.orders.copy_(cond.net.orders.flip(1))
    cond.net.install_masks()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randint(0, 17, (5, 1, 3, 3)).float()
    assert same_under_seed(lambda: model.log_prob(x), lambda: loaded.log_prob(x), seed=9)
    assert same_under_seed(lambda: model.sample(4), lambda: loaded.sample(4), seed=2)


def test_image_samples_are_on_the_data_scale():
    model = perturb(build_model("iaf", DataSpec("d", (1, 4, 4), 17), {"layers": 2, "hidden": 16}))
    s = model.sample(7)
    assert s.shape == (7, 1, 4, 4)
    assert torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16


def test_log_scales_are_bounded():
    layer = made_layer(4)
    with torch.no_grad():
        layer.conditioner.net.layers[-1].bias.fill_(100.0)
    _, ld = layer(torch.randn(3, 4))
    assert torch.all(ld.abs() <= 4 * 2.0)


def test_short_training_lowers_the_nll():
    torch.manual_seed(0)
    model = build_model("maf", DataSpec("v", (2,)), {"layers": 3, "hidden": 32})
    before, after = nll_before_and_after_training(model, arc_data())
    assert after < before - 0.3, (before, after)


def test_config_errors():
    with pytest.raises(ConfigError, match="order.*choices: random, reversed"):
        build_model("maf", DataSpec("v", (3,)), {"order": "natural"})
    with pytest.raises(ConfigError, match="'logit_alpha' is not used by iaf on vectors"):
        build_model("iaf", DataSpec("v", (3,)), {"logit_alpha": 0.1})
    with pytest.raises(ConfigError, match=r"maf expects vectors \(D,\) or images"):
        build_model("maf", DataSpec("m", (3, 4)))
    with pytest.raises(ConfigError, match="logit_alpha > 0 needs discrete images"):
        build_model("maf", DataSpec("c", (1, 4, 4)))


@pytest.mark.parametrize("name", ["maf", pytest.param("iaf", marks=pytest.mark.slow)])
def test_cli_train_on_moons(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["train", "--model", name, "--data", "moons", "--steps", "20", "--eval-every", "10", "--param",
                 "layers=2", "--param", "hidden=8", "--no-progress", "--warmup-steps", "5", "--out", str(out)]) == 0
    assert (out / "scores.json").exists() and (out / "samples.png").exists()
    assert main(["sample", str(out), "-n", "10", "--out", str(tmp_path / "s.npy")]) == 0
