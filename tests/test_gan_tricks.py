"""The GAN tricks: hinge loss, orthogonal regularisation, spectral norm, virtual and conditional batch norm,
minibatch discrimination, EMA generator, truncation and its fidelity/diversity curve, discriminator features."""

import pytest
import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.losses import discriminator_hinge, generator_hinge, get_adversarial_loss, orthogonal_regularization
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import ConditionalBatchNorm, MinibatchDiscrimination, VirtualBatchNorm, spectral_normalize

pytestmark = pytest.mark.usefixtures("one_thread")

RING = DataSpec("ring8", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)


# --- losses -------------------------------------------------------------------------------------------
def test_hinge_losses_match_hand_computed_values():
    real = torch.tensor([2.0, 0.5, -1.0])  # margins: max(0, 1 - l) = 0, 0.5, 2
    fake = torch.tensor([-3.0, 0.0])  # max(0, 1 + l) = 0, 1
    assert discriminator_hinge(real, fake).item() == pytest.approx((0 + 0.5 + 2) / 3 + (0 + 1) / 2)
    assert generator_hinge(fake).item() == pytest.approx(1.5)
    assert get_adversarial_loss("hinge").discriminator is discriminator_hinge
    with pytest.raises(ConfigError, match="label smoothing"):
        discriminator_hinge(real, fake, label_smoothing=0.1)


def test_orthogonal_regularization_hand_computed():
    # rows (1, 2) and (3, 4): inner product 11, counted twice in the Gram matrix; norms are free
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert orthogonal_regularization([w]).item() == pytest.approx(2 * 11.0 ** 2)
    # orthogonal rows of any norms: no penalty
    assert orthogonal_regularization([torch.tensor([[3.0, 0.0], [0.0, -5.0]])]).item() == 0.0
    # a conv kernel (out, in, kh, kw) is read as (out, in kh kw); sums over weights
    k = torch.randn(4, 2, 3, 3)
    m = k.reshape(4, -1)
    gram = m @ m.t()
    expected = (gram ** 2).sum() - (torch.diagonal(gram) ** 2).sum()
    assert orthogonal_regularization([k, w]).item() == pytest.approx(expected.item() + 242.0, rel=1e-5)


def test_orthogonal_regularization_enters_the_generator_loss_only():
    model = build_model("gan", RING, {"hidden": 8, "orthogonal_reg": 0.5})
    x = torch.randn(16, 2)
    shared = model.adversarial_forward(x)
    g = model.player_loss("generator", x, shared)
    plain = build_model("gan", RING, {"hidden": 8})
    plain.load_state_dict(model.state_dict())
    g_plain = plain.player_loss("generator", x, {**shared})
    reg = orthogonal_regularization(model.generator_weights())
    assert g["loss"].item() == pytest.approx(g_plain["loss"].item() + 0.5 * reg.item(), rel=1e-5)
    assert g["orthogonal_reg"].item() == pytest.approx(reg.item(), rel=1e-6)
    assert "orthogonal_reg" not in model.player_loss("discriminator", x, shared)


# --- layers ---------------------------------------------------------------------------------------------
def test_virtual_batchnorm_uses_the_reference_batch_and_the_example_itself():
    torch.manual_seed(0)
    vbn = VirtualBatchNorm(3, reference_size=5)
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        vbn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    ref, x = torch.randn(5, 3, 4, 4), torch.randn(2, 3, 4, 4)
    y = vbn(torch.cat([ref, x]))
    for i in range(2):
        pool = torch.cat([ref, x[i:i + 1]])  # the reference batch plus example i, nothing else
        mu = pool.mean(dim=(0, 2, 3))
        var = pool.var(dim=(0, 2, 3), unbiased=False)
        expected = (x[i] - mu[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
        expected = expected * vbn.weight[:, None, None] + vbn.bias[:, None, None]
        assert torch.allclose(y[5 + i], expected, atol=1e-5)
    ref_expected = (ref - ref.mean(dim=(0, 2, 3))[None, :, None, None]) / torch.sqrt(
        ref.var(dim=(0, 2, 3), unbiased=False)[None, :, None, None] + 1e-5)
    ref_expected = ref_expected * vbn.weight[None, :, None, None] + vbn.bias[None, :, None, None]
    assert torch.allclose(y[:5], ref_expected, atol=1e-5)


@pytest.mark.parametrize("spec", [RING, DIGITS], ids=["mlp", "conv"])
def test_virtual_batchnorm_generator_output_does_not_depend_on_the_batch(spec):
    model = build_model("gan", spec, {"hidden": 16, "virtual_batchnorm": True, "reference_size": 8})
    model.train()  # batch statistics would mix examples here; virtual BN must not
    z = torch.randn(6, model.latent)
    together = model.generate(z)
    alone = torch.cat([model.generate(z[i:i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-5)
    if spec is RING:  # the plain MLP generator has no batch norm
        return
    plain = build_model("gan", spec, {"hidden": 16}).train()  # DCGAN's batch norm mixes the batch
    assert not torch.allclose(plain.generate(z), torch.cat([plain.generate(z[i:i + 2]) for i in range(0, 6, 2)]),
                              atol=1e-4)


def test_conditional_batchnorm_starts_as_batch_norm_and_its_gains_follow_the_class():
    cbn = ConditionalBatchNorm(4, embed_features=3, image=False)
    x, e = torch.randn(10, 4), torch.randn(10, 3)
    plain = nn.BatchNorm1d(4, affine=False)
    assert torch.allclose(cbn(x, e), plain(x), atol=1e-6)  # zero-initialised projections
    with torch.no_grad():
        cbn.gain.weight.fill_(0.1)
        cbn.shift.weight.fill_(-0.2)
    y = cbn(x, e)
    gain = 1 + 0.1 * e.sum(1, keepdim=True)
    assert torch.allclose(y, gain * plain(x) - 0.2 * e.sum(1, keepdim=True), atol=1e-5)


def test_conditional_bn_generator_takes_the_class_only_through_its_norms():
    model = build_model("gan", DIGITS, {"hidden": 16, "conditional_bn": True, "context_features": 10})
    fc = model.generator.fc
    assert fc.in_features == model.latent  # the context is not appended to z
    for layer in model.generator.body:
        if isinstance(layer, ConditionalBatchNorm):
            nn.init.normal_(layer.gain.weight, std=0.5)
    model.eval()
    z = torch.randn(4, model.latent)
    a = model.generate(z, torch.eye(10)[[0, 0, 0, 0]])
    b = model.generate(z, torch.eye(10)[[7, 7, 7, 7]])
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="context label"):
        build_model("gan", DIGITS, {"conditional_bn": True})
    with pytest.raises(ConfigError, match="not both"):
        build_model("gan", DIGITS, {"conditional_bn": True, "virtual_batchnorm": True, "context_features": 10})


def test_spectral_norm_makes_the_largest_singular_value_one():
    torch.manual_seed(0)
    net = spectral_normalize(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)))
    net.train()
    for _ in range(30):  # power iterations, one per training forward
        net(torch.randn(4, 6))
    for layer in (net[0], net[2]):
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-3)
    model = build_model("gan", RING, {"hidden": 8, "spectral_norm": "discriminator"})
    assert any("parametrizations" in k for k in model.discriminator.state_dict())
    assert not any("parametrizations" in k for k in model.generator.state_dict())
    both = build_model("gan", RING, {"hidden": 8, "spectral_norm": "both"})
    assert any("parametrizations" in k for k in both.generator.state_dict())
    with pytest.raises(ConfigError):
        build_model("gan", RING, {"spectral_norm": "everything"})


def test_minibatch_discrimination_hand_computed_and_batch_aware():
    mbd = MinibatchDiscrimination(2, kernels=1, kernel_dim=2)
    with torch.no_grad():
        mbd.T.copy_(torch.eye(2))  # M_i = f(x_i)
    h = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    l1 = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    assert torch.allclose(mbd(h)[:, 0], torch.exp(-l1).sum(1))
    # a collapsed batch (all examples equal) scores n on every kernel
    assert torch.allclose(mbd(torch.ones(5, 2)), torch.full((5, 1), 5.0))
    model = build_model("gan", RING, {"hidden": 8, "minibatch_discrimination": 4})
    x = torch.randn(6, 2)
    alone = model.discriminate(x[:1])
    with_batch = model.discriminate(x)[:1]
    assert not torch.allclose(alone, with_batch)  # D sees the rest of the batch
    assert model.features(x).shape == (6, 8)


# --- EMA, truncation, features --------------------------------------------------------------------------
def test_ema_generator_follows_the_warmed_up_average_and_is_what_samples(tmp_path):
    model = build_model("gan", RING, {"hidden": 8, "ema": 0.9})
    start = {k: v.clone() for k, v in model.generator_ema.state_dict().items()}
    assert all(not p.requires_grad for p in model.generator_ema.parameters())
    gen_params = {id(p) for p in model.generator_parameters()}
    assert not any(id(p) in gen_params for p in model.generator_ema.parameters())
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    model.update_ema()  # t = 0: decay min(0.9, 1/10) = 0.1
    live = model.generator.state_dict()
    for name, avg in model.generator_ema.state_dict().items():
        assert torch.allclose(avg, 0.1 * start[name] + 0.9 * live[name], atol=1e-6), name
    assert int(model.ema_updates) == 1
    model.eval()
    torch.manual_seed(1)
    s = model.sample(5)
    torch.manual_seed(1)
    z = model.noise(5)
    assert torch.allclose(s, model.from_model_space(model.generator_ema(z)), atol=1e-6)
    assert not torch.allclose(s, model.from_model_space(model.generator(z)), atol=1e-3)
    save_model(model, tmp_path / "run")
    loaded = load_model(tmp_path / "run").eval()
    torch.manual_seed(2)
    a = model.sample(7)
    torch.manual_seed(2)
    assert torch.equal(a, loaded.sample(7))
    assert model.players()[1].after_step == model.update_ema


def test_truncation_bounds_the_latent_draws():
    model = build_model("gan", DIGITS, {"hidden": 16})
    z = model.noise(4000, truncation=0.5)
    assert z.abs().max().item() <= 0.5 and z.std().item() < 0.35  # N(0,1) on [-.5, .5] has std 0.28
    assert model.noise(4000).abs().max().item() > 2.5
    with pytest.raises(ConfigError, match="truncation"):
        model.noise(3, truncation=0.0)
    model.eval()
    torch.manual_seed(0)
    s = model.sample(6, truncation=1.0)
    assert s.shape == (6, 1, 8, 8) and s.min() >= 0 and s.max() <= 16
    for name in ("gan", "wgan", "wgan-gp"):
        assert {"truncation", "features"} <= build_model(name, RING, {}).capabilities


def test_features_are_the_discriminator_last_hidden_layer():
    model = build_model("gan", DIGITS, {"hidden": 16, "minibatch_discrimination": 0}).eval()
    x = torch.randint(0, 17, (5, 1, 8, 8)).float()
    f = model.features(x)
    assert f.shape == (5, 16 * 2 * 2)
    assert torch.allclose(model.discriminator.out(f), model.discriminate((x + 0.5) / 17).unsqueeze(-1), atol=1e-6)
    # by default the conv D also reads 16 minibatch features (not part of the representation); vectors: none
    default = build_model("gan", DIGITS, {"hidden": 16})
    assert default.discriminator.minibatch.kernels == 16 and default.features(x).shape == (5, 64)
    assert build_model("gan", RING, {}).discriminator.minibatch is None
    assert build_model("wgan-gp", DIGITS, {}).discriminator.minibatch is None  # per-example critic


def test_truncation_curve_without_truncation_matches_the_sample_quality_scores(digits):
    from deepgen.evaluation.sample_quality import sample_quality_scores
    from deepgen.evaluation.truncation import truncation_curve

    model = build_model("gan", digits.spec, {"hidden": 16})
    with torch.no_grad():  # an untrained G is nearly constant; spread its outputs over the levels
        model.generator.body[-1].weight.mul_(30)
    curve = truncation_curve(model, digits, "test", seed=3, n=120, thresholds=(0.5, None))
    assert [p["truncation"] for p in curve["points"]] == [0.5, None]
    quality = sample_quality_scores(model, digits, "test", seed=3, n=120)["sample_quality"]
    for key in ("precision", "recall", "density", "coverage", "frechet_distance"):
        assert curve["points"][1][key] == pytest.approx(quality[key], rel=1e-6)
    assert curve["points"][0]["frechet_distance"] != pytest.approx(curve["points"][1]["frechet_distance"])
    vae = build_model("vae", digits.spec, {})
    assert truncation_curve(vae, digits) is None


def test_sample_run_truncation_for_gans_only(tmp_path):
    from deepgen.workflows.sample import sample_run

    save_model(build_model("gan", RING, {"hidden": 8}), tmp_path / "gan")
    save_model(build_model("maf", RING, {}), tmp_path / "maf")
    sample_run(tmp_path / "gan", 50, tmp_path / "g.npy", truncation=0.5)
    import numpy as np

    assert np.load(tmp_path / "g.npy").shape == (50, 2)
    with pytest.raises(ConfigError, match="truncation"):
        sample_run(tmp_path / "maf", 5, tmp_path / "m.npy", truncation=0.5)
    with pytest.raises(ConfigError, match="truncation"):
        sample_run(tmp_path / "gan", 5, tmp_path / "m.npy", truncation=-1.0)
    assert not (tmp_path / "m.npy").exists()
