"""AAE: the code discriminator's and autoencoder's losses by hand, the mixture prior, players, save/load,
and a short training run that pulls the aggregate codes towards the prior."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.latent_adversarial import code_discriminator_bce
from deepgen.models.adversarial.code_prior import CodePrior
from deepgen.models.players import check_players
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model

from adversarial_checks import fit

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = DataSpec("digits", (1, 8, 8), levels=17)
BINARY = DataSpec("digits-binary", (1, 8, 8), levels=2)
VEC = DataSpec("ring8", (2,))
SMALL = {"hidden": 16, "channels": 8, "latent": 3, "d_hidden": 16}


def log_sigmoid(v):
    return -math.log1p(math.exp(-v))


def log_one_minus_sigmoid(v):
    return -math.log1p(math.exp(v))


# --- losses -----------------------------------------------------------------------------

def test_code_discriminator_bce_matches_hand_computed_values():
    prior, code = [0.0, 2.0], [-1.0, 1.5, 0.5]
    want = -sum(map(log_sigmoid, prior)) / 2 - sum(map(log_one_minus_sigmoid, code)) / 3
    got = code_discriminator_bce(torch.tensor(prior, dtype=torch.float64), torch.tensor(code, dtype=torch.float64))
    assert got.item() == pytest.approx(want, rel=1e-12)
    # at D = 1/2 everywhere: 2 log 2
    assert code_discriminator_bce(torch.zeros(3), torch.zeros(5)).item() == pytest.approx(2 * math.log(2))


def test_discriminator_player_labels_prior_draws_real():
    model = build_model("aae", BINARY, SMALL).double()
    x = torch.randint(0, 2, (4, 1, 8, 8)).double()
    shared = model.adversarial_forward(x)
    lp = model.discriminate(shared["prior"]).tolist()
    lc = model.discriminate(shared["codes"]).tolist()
    want = -sum(map(log_sigmoid, lp)) / 4 - sum(map(log_one_minus_sigmoid, lc)) / 4
    out = model.player_loss("discriminator", x, shared)
    assert out["loss"].item() == pytest.approx(want, rel=1e-10)
    assert out["d_prior"].item() == pytest.approx(sum(1 / (1 + math.exp(-v)) for v in lp) / 4, rel=1e-10)


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_autoencoder_loss_is_reconstruction_plus_weighted_nonsaturating_loss(weight):
    model = build_model("aae", BINARY, {**SMALL, "adversarial_weight": weight}).double()
    x = torch.randint(0, 2, (5, 1, 8, 8)).double()
    shared = model.adversarial_forward(x)
    # Bernoulli decoder: -log p(x | z) = -sum_d x log s(l) + (1 - x) log(1 - s(l)), by hand
    logits = model.decoder_params(shared["codes"])[..., 0].reshape(5, -1).tolist()
    xs = x.reshape(5, -1).tolist()
    rec = -sum(sum(xi * log_sigmoid(li) + (1 - xi) * log_one_minus_sigmoid(li) for xi, li in zip(xr, lr))
               for xr, lr in zip(xs, logits)) / 5
    g = -sum(map(log_sigmoid, model.discriminate(shared["codes"]).tolist())) / 5
    out = model.player_loss("autoencoder", x, shared)
    assert out["recon"].item() == pytest.approx(rec, rel=1e-10)
    assert out["g_loss"].item() == pytest.approx(g, rel=1e-10)
    assert out["loss"].item() == pytest.approx(rec + weight * g, rel=1e-10)


# --- the prior --------------------------------------------------------------------------

def test_mixture_prior_components_and_samples():
    prior = CodePrior(3, "mixture", components=4, radius=2.0, std=0.3)
    want = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [-2.0, 0, 0], [0, -2.0, 0]])
    assert torch.allclose(prior.means, want, atol=1e-6)
    g = torch.Generator().manual_seed(1)
    z, k = prior.sample(40000, generator=g, return_components=True)
    assert z.shape == (40000, 3) and set(k.tolist()) == {0, 1, 2, 3}
    for j in range(4):
        zj = z[k == j]
        assert abs(len(zj) / 40000 - 0.25) < 0.01  # equal weights
        assert torch.allclose(zj.mean(0), want[j], atol=0.02)  # sample mean per component
        assert torch.allclose(zj.std(0), torch.full((3,), 0.3), atol=0.01)
    mean, std = prior.moments()
    assert torch.allclose(mean, z.mean(0), atol=0.03) and torch.allclose(std, z.std(0), atol=0.03)
    assert std.tolist() == pytest.approx([math.sqrt(0.09 + 2.0), math.sqrt(0.09 + 2.0), 0.3], rel=1e-6)


def test_mixture_prior_density():
    prior = CodePrior(2, "mixture", components=3, radius=1.5, std=0.4)
    z = torch.tensor([[0.3, -0.2], [1.5, 0.0]], dtype=torch.float64)
    for zi, got in zip(z.tolist(), prior.log_prob(z).tolist()):
        dens = sum(math.exp(-((zi[0] - m[0]) ** 2 + (zi[1] - m[1]) ** 2) / (2 * 0.16)) / (2 * math.pi * 0.16)
                   for m in prior.means.tolist()) / 3
        assert got == pytest.approx(math.log(dens), rel=1e-6)
    # it integrates to 1 (Riemann sum on a grid)
    t = torch.linspace(-4, 4, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    assert float(prior.log_prob(grid).exp().sum() * (t[1] - t[0]) ** 2) == pytest.approx(1.0, abs=1e-4)
    gauss = CodePrior(3)
    x = torch.randn(5, 3)
    assert torch.allclose(gauss.log_prob(x), (-0.5 * x ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1), atol=1e-5)


def test_samples_decode_prior_draws_and_traversals_use_the_prior_scale():
    model = build_model("aae", DIGITS, {**SMALL, "prior": "mixture", "prior_components": 5}).eval()
    loc, scale = model.code_scale()
    assert torch.allclose(loc, torch.zeros(3), atol=1e-6) and scale[0] > 2 and scale[2] == pytest.approx(0.5)
    torch.manual_seed(4)
    z = model.prior.sample(6)
    torch.manual_seed(4)
    assert torch.equal(model.sample(6, mean=True), model.decode(z, mean=True))
    x = model.sample(6)
    assert x.shape == (6, 1, 8, 8) and torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 16
    assert model.traverse(x[0]).shape == (3, 9, 1, 8, 8)


# --- the model ---------------------------------------------------------------------------

def test_declarations_and_no_density():
    model = build_model("aae", DIGITS, {})
    assert (model.name, model.family, model.density, model.objective) == ("aae", "implicit", "none", "adversarial")
    assert model.can("encode") and model.can("diagnostics") and not model.can("log_prob")
    with pytest.raises(DensityError, match="aae"):
        model.log_prob(torch.zeros(2, 1, 8, 8))
    out = model.loss(torch.randint(0, 17, (8, 1, 8, 8)).float())
    assert not out["loss"].requires_grad and {"recon", "g_loss", "d_loss", "d_prior", "d_code"} <= set(out)


def test_players_are_disjoint_and_cover_the_model():
    model = build_model("aae", VEC, {"decoder": "gaussian", "hidden": 8, "d_hidden": 8})
    players = model.players()
    check_players(players)
    assert [p.name for p in players] == ["discriminator", "autoencoder"]
    owned = {id(q) for p in players for q in p.parameters()}
    assert owned == {id(q) for q in model.parameters()}  # the learned decoder noise is the autoencoder's


def test_gradients_reach_only_the_right_player():
    model = build_model("aae", DIGITS, SMALL)
    x = torch.randint(0, 17, (6, 1, 8, 8)).float()
    shared = model.adversarial_forward(x)
    model.player_loss("discriminator", x, shared)["loss"].backward(retain_graph=True)
    assert all(p.grad is not None for p in model.discriminator_parameters())
    assert all(p.grad is None for p in model.autoencoder_parameters())  # codes detached for D
    model.zero_grad(set_to_none=True)
    for p in model.discriminator_parameters():  # as the adapter's toggle does
        p.requires_grad_(False)
    model.player_loss("autoencoder", x, shared)["loss"].backward()
    assert all(p.grad is not None for p in model.autoencoder_parameters())
    assert all(p.grad is None for p in model.discriminator_parameters())
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("generator", x, shared)


def test_gaussian_encoder_encodes_the_mean():
    model = build_model("aae", DIGITS, {**SMALL, "encoder": "gaussian"})
    x = torch.randint(0, 17, (4, 1, 8, 8)).float()
    mu, log_std = model.posterior(x)
    assert torch.equal(model.encode(x), mu) and log_std.shape == mu.shape
    assert not torch.allclose(model.draw_code(x), model.draw_code(x))


def test_context_reaches_decoder_and_discriminator():
    model = build_model("aae", DIGITS, {**SMALL, "context_features": 3}).eval()
    c = torch.eye(3)
    z = torch.zeros(3, 3)
    out = model.decode(z, c, mean=True)
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(model.discriminate(z, c)[0], model.discriminate(z, c)[1])
    with pytest.raises(ConfigError, match="conditional"):
        model.sample(3)


def test_save_load_reproduces_encode_and_samples(tmp_path):
    model = build_model("aae", DIGITS, {**SMALL, "prior": "mixture"}).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randint(0, 17, (5, 1, 8, 8)).float()
    assert torch.equal(model.encode(x), loaded.encode(x))
    torch.manual_seed(7)
    a = model.sample(10)
    torch.manual_seed(7)
    assert torch.equal(a, loaded.sample(10))


@pytest.mark.parametrize("params, match", [
    ({"prior": "uniform"}, "prior"), ({"encoder": "flow"}, "encoder"), ({"adversarial_weight": -1.0}, "adversarial"),
    ({"prior": "mixture", "prior_components": 1}, "prior_components >= 2"), ({"prior_std": 0.0}, "prior_std"),
    ({"prior": "mixture", "latent": 1}, "latent >= 2"), ({"d_steps": 0}, "d_steps"), ({"decoder": "bernoulli"}, "decoder"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("aae", DIGITS, params)
    with pytest.raises(ConfigError, match="needs images"):
        build_model("aae", VEC, {"arch": "conv"})


# --- training ------------------------------------------------------------------------------

def test_short_training_pulls_codes_towards_the_prior_and_reconstructs(digits):
    x, test = digits.split("train"), digits.split("test")
    params = {"arch": "mlp", "hidden": 32, "latent": 2, "d_hidden": 32}
    torch.manual_seed(0)
    untrained = build_model("aae", digits.spec, params)
    with torch.no_grad():
        mse_before = ((untrained.reconstruct(test) - test) ** 2).mean().item()
    runs = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        model = fit(build_model("aae", digits.spec, {**params, "adversarial_weight": weight}), x, steps=300)
        with torch.no_grad():
            mse = ((model.reconstruct(test) - test) ** 2).mean().item()
        runs[weight] = (model.diagnostics(test), mse)
    (adv, mse_adv), (plain, mse_plain) = runs[1.0], runs[0.0]
    assert mse_adv < 0.6 * mse_before and mse_plain < 0.6 * mse_before
    # reconstruction alone drives the codes away from the prior (energy distance ~5.7 on this seed);
    # the code discriminator keeps them near it (~0.8)
    assert adv["code_energy_distance"] < 0.3 * plain["code_energy_distance"]
    assert adv["code_mean_error"] < 0.5 * plain["code_mean_error"]
    assert adv["code_prior_nll"] < plain["code_prior_nll"]
