"""Glow: ActNorm (data-dependent init, once, saved, DDP), the LU 1x1 conv, the split prior, the model."""

import json
import math

import pytest
import torch

from bijection_checks import check_bijection, perturb
from conftest import same_under_seed

from deepgen.bijections import ActNorm, ConditionalPrior, InvertibleConv1x1
from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import ConvResNet

DIGITS = DataSpec("d", (1, 8, 8), 17)
SMALL = {"scales": 2, "steps_per_scale": 2, "channels": 8, "blocks": 1}


def actnorms(model):
    return [m for m in model.modules() if isinstance(m, ActNorm)]


def small_glow(spec=DIGITS, **params):
    return build_model("glow", spec, {**SMALL, **params})


def data_batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float()


# --- ActNorm ---------------------------------------------------------------------------------------

def test_actnorm_first_batch_gives_zero_mean_unit_variance_once():
    layer = ActNorm(3)
    x = torch.randn(50, 3, 4, 4) * torch.tensor([2.0, 0.1, 7.0])[:, None, None] + torch.tensor([1.0, -3.0, 5.0])[:, None, None]
    z, ld = layer(x)
    assert layer.initialized.item() == 1
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.var((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(ld, torch.full((50,), 16 * layer.log_scale.sum().item()))
    before = [p.detach().clone() for p in layer.parameters()]
    layer(3 * torch.randn(20, 3, 4, 4) + 10)  # a second batch must not re-initialise
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))


def test_actnorm_does_not_initialise_on_a_single_example_or_in_eval_mode():
    layer = ActNorm(2)
    x = torch.randn(1, 2, 3, 3) * 5 + 2
    z, ld = layer(x)  # the flow's build-time dummy pass: batch of one
    assert layer.initialized.item() == 0 and torch.equal(z, x) and torch.equal(ld, torch.zeros(1))
    layer.eval()
    z, _ = layer(torch.randn(10, 2, 3, 3) * 5)
    assert layer.initialized.item() == 0 and torch.equal(layer.loc, torch.zeros(2))


def test_actnorm_constant_channel_gives_no_nan():
    layer = ActNorm(2)
    x = torch.stack([torch.zeros(16, 4, 4), torch.randn(16, 4, 4)], 1)  # channel 0: always black
    z, ld = layer(x)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()
    assert torch.isfinite(layer.log_scale).all() and layer.log_scale[0].item() == 0.0
    assert torch.equal(z[:, 0], torch.zeros(16, 4, 4))
    x2, _ = layer.inverse(z)
    assert torch.allclose(x2, x, atol=1e-6)


def test_actnorm_is_a_bijection_after_init():
    layer = ActNorm(3).double()
    layer(torch.randn(40, 3, 2, 2, dtype=torch.float64) * 3 + 1)
    perturb(layer)
    check_bijection(layer, torch.randn(3, 3, 2, 2, dtype=torch.float64))
    vec = ActNorm(4).double()
    vec(torch.randn(30, 4, dtype=torch.float64) * 2)
    check_bijection(vec, torch.randn(3, 4, dtype=torch.float64))


def _ddp_worker(rank, world, path, result):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    torch.manual_seed(0)
    full = torch.randn(40, 3, 2, 2) * torch.tensor([1.0, 2.0, 3.0])[:, None, None] + 4
    layer = ActNorm(3)
    layer(full[rank * 20: (rank + 1) * 20])
    result[rank] = (layer.loc.detach().clone(), layer.log_scale.detach().clone())
    dist.destroy_process_group()


@pytest.mark.slow
def test_actnorm_init_agrees_across_ddp_processes(tmp_path):
    """Two gloo processes, each with half of a batch: both get the statistics of the whole batch."""
    import torch.multiprocessing as mp

    result = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), result), nprocs=2)
    torch.manual_seed(0)
    full = torch.randn(40, 3, 2, 2) * torch.tensor([1.0, 2.0, 3.0])[:, None, None] + 4
    ref = ActNorm(3)
    ref(full)
    for rank in range(2):
        loc, log_scale = result[rank]
        assert torch.allclose(loc, ref.loc, atol=1e-5) and torch.allclose(log_scale, ref.log_scale, atol=1e-5)


# --- invertible 1x1 convolution ------------------------------------------------------------------

def test_invconv_weight_is_p_l_u_and_logdet_matches_slogdet():
    conv = perturb(InvertibleConv1x1(4).double(), 0.2)
    w = conv.weight()
    lower = torch.tril(conv.lower, -1) + torch.eye(4, dtype=torch.float64)
    upper = torch.triu(conv.upper, 1) + torch.diag(conv.sign_s * torch.exp(conv.log_s))
    assert torch.allclose(w, conv.perm @ lower @ upper)
    assert torch.allclose(conv.perm @ conv.perm.T, torch.eye(4, dtype=torch.float64))  # a permutation
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    z, ld = conv(x)
    assert torch.allclose(z, torch.einsum("oc,bchw->bohw", w, x))
    assert torch.allclose(ld, 30 * torch.linalg.slogdet(w)[1].expand(3))
    assert torch.allclose(conv.inverse_weight() @ w, torch.eye(4, dtype=torch.float64), atol=1e-10)
    # only the strict triangles of the lower / upper parameters enter W
    with torch.no_grad():
        conv.lower.add_(torch.triu(torch.ones(4, 4, dtype=torch.float64)))
        conv.upper.add_(torch.tril(torch.ones(4, 4, dtype=torch.float64)))
    assert torch.allclose(conv.weight(), w)


def test_invconv_starts_as_a_rotation():
    w = InvertibleConv1x1(6).weight()
    assert torch.allclose(w @ w.T, torch.eye(6), atol=1e-5)


def test_invconv_is_a_bijection():
    conv = perturb(InvertibleConv1x1(4).double(), 0.2)
    check_bijection(conv, torch.randn(3, 4, 2, 3, dtype=torch.float64))
    check_bijection(perturb(InvertibleConv1x1(3).double(), 0.2), torch.randn(4, 3, dtype=torch.float64))


# --- the split prior -----------------------------------------------------------------------------

def test_conditional_prior_is_a_bijection_and_scales_the_noise():
    net = ConvResNet(3, 4, 8, 0, 2, zero_init=True)
    prior = perturb(ConditionalPrior(2, net, scale_bound=2.0).double(), 0.3)
    x = torch.randn(3, 5, 3, 3, dtype=torch.float64)
    ctx = torch.randn(3, 2, dtype=torch.float64)
    check_bijection(prior, x, ctx)
    # inverse(T eps, h) = mu(h) + sigma(h) T eps: the temperature scales the prior's noise
    h = x[:, 2:]
    mu, log_sigma = prior.conditioner(h, ctx).chunk(2, 1)
    log_sigma = 2.0 * torch.tanh(log_sigma / 2.0)
    eps = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    for t in (0.0, 0.5, 1.0):
        out, _ = prior.inverse(torch.cat([t * eps, h], 1), ctx)
        assert torch.allclose(out[:, :2], mu + torch.exp(log_sigma) * t * eps)
        assert torch.equal(out[:, 2:], h)


def test_fresh_prior_is_standard_normal():
    prior = ConditionalPrior(2, ConvResNet(2, 4, 8, 0, zero_init=True))
    x = torch.randn(5, 4, 2, 2)
    z, ld = prior(x)
    assert torch.equal(z, x) and torch.equal(ld, torch.zeros(5))


# --- the model -----------------------------------------------------------------------------------

def test_fresh_glow_is_orthogonal_so_log_prob_is_the_dequantized_normal():
    """Before ActNorm init every layer is the identity or a rotation: log p = log N(y) - D log L exactly."""
    model = small_glow(logit_alpha=0.0).eval()
    k = data_batch(6)
    torch.manual_seed(5)
    lp = model.log_prob(k)
    torch.manual_seed(5)
    y = (k + torch.rand_like(k)) / 17
    expected = torch.distributions.Normal(0, 1).log_prob(y).sum((1, 2, 3)) - 64 * math.log(17)
    assert torch.allclose(lp, expected, atol=1e-3)
    assert all(a.initialized.item() == 0 for a in actnorms(model))  # eval mode: scored without init


def test_couplings_and_priors_are_identity_at_init():
    model = small_glow(context_features=3)
    model.initialize(data_batch(32), torch.eye(3)[torch.arange(32) % 3])
    from deepgen.bijections import AffineCoupling

    layers = [m for m in model.modules() if isinstance(m, (AffineCoupling, ConditionalPrior))]
    assert len(layers) == 2 * 2 + 2  # 2 couplings per level, a split prior and a top prior
    ctx = torch.randn(4, 3)
    for layer in layers:
        c = layer.split + 2 if isinstance(layer, ConditionalPrior) else layer.mask.shape[0]
        hw = 4 if c <= 4 else 2  # level 1 is 4x4, level 2 is 2x2
        x = torch.randn(4, c, hw, hw)
        z, ld = layer(x, ctx)
        assert torch.equal(z, x) and torch.equal(ld, torch.zeros(4))


def test_glow_transform_is_a_bijection():
    spec = DataSpec("img", (1, 4, 4), 17)
    model = build_model("glow", spec, {"scales": 2, "steps_per_scale": 1, "channels": 4, "blocks": 1,
                                       "context_features": 2}).double()
    ctx = torch.randn(20, 2, dtype=torch.float64)
    model.transform(torch.rand(20, 1, 4, 4, dtype=torch.float64), ctx)  # ActNorm init
    assert all(a.initialized.item() == 1 for a in actnorms(model))
    perturb(model, 0.1)
    check_bijection(model.transform, torch.rand(3, 1, 4, 4, dtype=torch.float64), ctx[:3], atol=1e-8,
                    logdet_atol=1e-6)


def test_actnorm_initialises_on_the_first_training_batch_and_survives_save_load(tmp_path):
    model = small_glow()
    assert all(a.initialized.item() == 0 for a in actnorms(model))  # building ran a dummy pass: no init
    model.loss(data_batch(32))
    assert all(a.initialized.item() == 1 for a in actnorms(model))
    perturb(model, 0.05)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert all(a.initialized.item() == 1 for a in actnorms(loaded))
    loaded.train()
    loaded.loss(data_batch(32, seed=4) * 0.5)  # a new training batch must not re-initialise
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    x = data_batch(5, seed=2)
    model.eval(), loaded.eval()
    assert same_under_seed(lambda: model.log_prob(x), lambda: loaded.log_prob(x), seed=9)
    assert same_under_seed(lambda: model.sample(4), lambda: loaded.sample(4), seed=2)


def test_temperature_zero_gives_the_mode_of_every_split_prior():
    model = perturb(small_glow(scales=3, steps_per_scale=1), 0.05).eval()
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0])))
             for m in model.modules() if isinstance(m, ConditionalPrior)]
    with torch.no_grad():
        y, _ = model.transform.inverse(model.base.sample(3, temperature=0.0))
        model.transform(y)
    for h in hooks:
        h.remove()
    assert len(seen) == 3  # two splits and the top prior
    for prior, x in seen:
        mu, _ = prior.conditioner(x[:, prior.split:], None).chunk(2, 1)
        assert mu.abs().max() > 1e-3  # a real (non-zero) mean
        assert torch.allclose(x[:, : prior.split], mu, atol=1e-4)
    s0, s1 = model.sample(4, temperature=0.0), model.sample(4, temperature=0.0)
    assert torch.equal(s0, s1) and torch.equal(s0, s0.round()) and s0.min() >= 0 and s0.max() <= 16


def test_short_training_lowers_the_nll():
    torch.manual_seed(0)
    model = small_glow(steps_per_scale=1, blocks=0)
    x = data_batch(32)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = model.loss(x)["loss"].item()  # initialises ActNorm
    for _ in range(20):
        loss = model.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.manual_seed(1)
    after = -model.log_prob(x).mean().item()
    assert after < first - 10, (first, after)


def test_glow_refuses_vectors_and_bad_shapes():
    with pytest.raises(ConfigError, match="glow expects images.*realnvp, maf or nsf"):
        build_model("glow", DataSpec("v", (4,)))
    with pytest.raises(ConfigError, match="divisible"):
        build_model("glow", DIGITS, {"scales": 4})
    with pytest.raises(ConfigError, match="logit_alpha"):
        build_model("glow", DataSpec("img", (3, 4, 4)), {"scales": 1})
    build_model("glow", DataSpec("img", (3, 4, 4)), {"scales": 1, "logit_alpha": 0.0, "channels": 4})


def test_explicit_initialize_keeps_the_mode():
    model = small_glow().eval()
    model.initialize(data_batch(16))
    assert not model.training and all(a.initialized.item() == 1 for a in actnorms(model))
    with pytest.raises(ConfigError, match="more than one"):
        small_glow().initialize(data_batch(1))


def test_cli_trains_glow_on_digits(tmp_path):
    out = tmp_path / "glow"
    code = main(["train", "--model", "glow", "--data", "digits", "--steps", "2", "--eval-every", "2",
                 "--batch-size", "32", "--warmup-steps", "1", "--no-progress", "--out", str(out),
                 "--param", "channels=4", "--param", "steps_per_scale=1", "--param", "blocks=0"])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert math.isfinite(scores["nll_nats"]) and scores["nll_nats"] > 0
    loaded = load_model(out)
    assert all(a.initialized.item() == 1 for a in actnorms(loaded))
