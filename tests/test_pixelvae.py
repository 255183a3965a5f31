"""PixelVAE: the decoder p(x | z) is autoregressive (no input at or after a pixel reaches its conditional),
depends on z, is exactly normalised for a fixed z, ELBO <= IWAE_k, the spatial conditioning of the gated
PixelCNN net leaves the unconditioned net unchanged, save/load, gradients, context, configuration."""

import pytest
import torch
from autoregressive_checks import all_configs
from bijection_checks import perturb
from conftest import same_under_seed

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.autoregressive.base import raster_ordering
from deepgen.models.latent.pixelvae import PixelVAE
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import BUILTIN_MODELS, build_model, register, unregister
from deepgen.nets.gated_pixelcnn import GatedPixelCNNNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True, scope="module")
def _registered():
    """Build by name even before the registry lists the model (removed again after the module)."""
    if "pixelvae" in BUILTIN_MODELS:
        yield
        return
    register(PixelVAE)
    yield
    unregister("pixelvae")

SMALL = {"latent": 3, "channels": 8, "depth": 1, "pixel_layers": 2, "pixel_channels": 6, "iw_samples": 5,
         "dropout": 0.0, "free_bits": 0.0}


def pvae(levels, shape, **params):
    torch.manual_seed(0)
    return build_model("pixelvae", DataSpec("t", tuple(shape), levels), {**SMALL, **params})


def _dependence(model, z, trials=6):
    """(D out, D in) bool: whether conditional i's parameters have a non-zero gradient w.r.t. x_j."""
    spec = model.spec
    d = spec.dim
    total = torch.zeros(d, d, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(trials):
        x = torch.randint(spec.levels, (d,), generator=g).double()

        def f(v):
            return model.conditionals(v.view(1, *spec.shape), z).reshape(d, -1)

        total = total + torch.autograd.functional.jacobian(f, x).abs().sum(1)
    return total > 0


# --- the decoder: autoregressive, and it uses z ----------------------------------------------------
@pytest.mark.parametrize("levels,shape", [(3, (1, 4, 4)), (3, (2, 4, 2))])
def test_decoder_is_autoregressive_in_raster_order(levels, shape):
    model = perturb(pvae(levels, shape, depth=1).double()).eval()
    z = torch.randn(1, 3, dtype=torch.double)
    dep = _dependence(model, z)
    pos = torch.argsort(raster_ordering(shape))
    allowed = pos[None, :] < pos[:, None]  # input j strictly earlier than output i
    assert not (dep & ~allowed).any(), "a conditional sees its own or a later input"
    assert dep[int(raster_ordering(shape)[-1])].any(), "the last conditional sees nothing (vacuous masks)"


def test_decoder_depends_on_z_at_every_pixel():
    model = perturb(pvae(3, (1, 4, 4)).double()).eval()
    x = torch.randint(3, (1, 1, 4, 4)).double()
    z = torch.randn(1, 3, dtype=torch.double, requires_grad=True)
    params = model.conditionals(x, z)  # (1, D, K)
    for d in range(model.spec.dim):
        (grad,) = torch.autograd.grad(params[0, d].sum(), z, retain_graph=True)
        assert grad.abs().sum() > 0, f"conditional {d} ignores z"
    z2 = torch.randn(1, 3, dtype=torch.double)
    assert (model.log_likelihood(x, z.detach()) - model.log_likelihood(x, z2)).abs().item() > 1e-3


@pytest.mark.parametrize("levels,shape,params", [
    (3, (1, 2, 2), {}),                                                # categorical, 81 images
    (2, (1, 2, 4), {"depth": 1}),                                      # bernoulli, 256 images
    (3, (2, 2, 2), {"output": "logistic-mixture", "components": 2}),   # two channels, 729 images
])
def test_log_likelihood_sums_to_one_for_a_fixed_z(levels, shape, params):
    model = perturb(pvae(levels, shape, **params).double(), scale=0.5).eval()
    x = all_configs(levels, shape)
    for seed in range(2):
        z = torch.randn(1, 3, dtype=torch.double, generator=torch.Generator().manual_seed(seed)).expand(len(x), -1)
        with torch.no_grad():
            lp = model.log_likelihood(x, z)
        assert abs(lp.exp().sum().item() - 1) < 1e-6
        assert lp.max() - lp.min() > 0.5  # far from uniform: the check is not vacuous


def test_log_likelihood_slices_match_one_pass(monkeypatch):
    import deepgen.models.latent.pixelvae as mod

    model = perturb(pvae(3, (1, 4, 4)).double()).eval()
    x = torch.randint(3, (10, 1, 4, 4)).double()
    z = torch.randn(10, 3, dtype=torch.double)
    with torch.no_grad():
        whole = model.log_likelihood(x, z)
        monkeypatch.setattr(mod, "_ROWS", 3)
        torch.testing.assert_close(model.log_likelihood(x, z), whole)


def test_decode_draws_from_the_conditionals():
    """The greedy decode (mean=True) takes the argmax of every conditional of the image it produced."""
    model = perturb(pvae(4, (2, 3, 2), depth=0).double(), scale=0.5).eval()
    z = torch.randn(5, 3, dtype=torch.double)
    with torch.no_grad():
        x = model.decode(z, mean=True)
        params = model.conditionals(x, z)  # (5, D, L) categorical logits
    assert torch.equal(params.argmax(-1).double(), x.reshape(5, -1))
    s = model.decode(z)
    assert s.shape == (5, 2, 3, 2) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 3


# --- bounds --------------------------------------------------------------------------------------------
def test_elbo_below_iwae_on_average():
    """Random weights: q(z | x) is far from the posterior, so the bounds separate clearly."""
    model = perturb(pvae(3, (1, 4, 4)).double(), scale=0.2).eval()
    x = torch.randint(3, (32, 1, 4, 4)).double()
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x) for _ in range(20)]).mean().item()
        iw1 = torch.stack([model.log_prob(x, k=1) for _ in range(20)]).mean().item()
        iw5 = torch.stack([model.log_prob(x, k=5) for _ in range(10)]).mean().item()
        iw50 = model.log_prob(x, k=50).mean().item()
    assert abs(elbo - iw1) < 0.2  # IWAE_1 is the ELBO with a sampled KL
    assert elbo < iw5 < iw50 and iw50 - elbo > 0.3, (elbo, iw5, iw50)


def test_free_bits_only_changes_the_training_loss():
    model = perturb(pvae(3, (1, 4, 4)))
    x = torch.randint(3, (8, 1, 4, 4)).float()
    torch.manual_seed(1)
    plain = model.loss(x)
    model.free_bits = 1e4  # far above every latent's KL: the penalty is latent * free_bits
    torch.manual_seed(1)
    floored = model.loss(x)
    torch.testing.assert_close(floored["elbo"], plain["elbo"])
    torch.testing.assert_close(floored["loss"], -floored["rec"] + 3e4)


# --- gradients, save/load, context -------------------------------------------------------------------------
def test_gradients_reach_every_parameter():
    model = perturb(pvae(3, (1, 4, 4), posterior="iaf", posterior_layers=2, context_features=2, dropout=0.1))
    x = torch.randint(3, (8, 1, 4, 4)).float()
    c = torch.eye(2)[torch.arange(8) % 2]
    model.loss((x, c))["loss"].backward()
    # the last gated layer's stack outputs (v, and h through the residual map) are read by no later layer:
    # only its skip output counts (the net's design)
    unused = {"pixel.layers.1.residual.weight", "pixel.layers.1.residual.bias", "pixel.layers.1.cond_v.weight"}
    missing = [n for n, p in model.named_parameters()
               if n not in unused and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing


def test_save_load_round_trip(tmp_path):
    model = pvae(3, (1, 4, 4), context_features=2, free_bits=0.1)
    x = torch.randint(3, (16, 1, 4, 4)).float()
    c = torch.eye(2)[torch.arange(16) % 2]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        opt.zero_grad()
        model.loss((x, c))["loss"].backward()
        opt.step()
    model.eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path).eval()
    assert loaded.params == model.params
    assert same_under_seed(lambda: model.log_prob(x, c), lambda: loaded.log_prob(x, c), seed=2)
    assert same_under_seed(lambda: model.sample(4, c[:4]), lambda: loaded.sample(4, c[:4]), seed=3)
    assert same_under_seed(lambda: model.reconstruct(x[:4], c[:4]), lambda: loaded.reconstruct(x[:4], c[:4]))


def test_context_changes_the_likelihood():
    model = perturb(pvae(3, (1, 4, 4), context_features=2).double()).eval()
    x = torch.randint(3, (4, 1, 4, 4)).double()
    z = torch.randn(4, 3, dtype=torch.double)
    c0, c1 = torch.eye(2).double()[[0] * 4], torch.eye(2).double()[[1] * 4]
    assert (model.log_likelihood(x, z, c0) - model.log_likelihood(x, z, c1)).abs().max() > 1e-3


def test_sample_and_latent_maps():
    model = perturb(pvae(5, (1, 4, 4)), scale=0.5).eval()
    s = model.sample(6)
    assert s.shape == (6, 1, 4, 4) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 4
    assert model.reconstruct(s).shape == s.shape
    assert model.traverse(s[0], torch.tensor([-1.0, 1.0])).shape == (3, 2, 1, 4, 4)
    with pytest.raises(ConfigError):
        model.sample(2, temperature=-1.0)


# --- the net's spatial conditioning -------------------------------------------------------------------------
def test_net_without_cond_channels_is_unchanged():
    torch.manual_seed(0)
    plain = GatedPixelCNNNet(1, 3, channels=6, layers=2)
    assert not any("cond" in n for n, _ in plain.named_parameters())
    torch.manual_seed(0)
    cond = GatedPixelCNNNet(1, 3, channels=6, layers=2, cond_channels=4)
    x = torch.randn(2, 1, 4, 4)
    zero = torch.zeros(2, 4, 4, 4)
    shared = {k: v for k, v in cond.state_dict().items() if "cond" not in k}
    assert shared.keys() == plain.state_dict().keys()
    plain.load_state_dict(shared)
    torch.testing.assert_close(cond(x, cond=zero), plain(x))  # a zero map adds nothing
    assert not torch.allclose(cond(x, cond=torch.randn(2, 4, 4, 4)), plain(x))
    with pytest.raises(ValueError):
        cond(x)
    with pytest.raises(ValueError):
        plain(x, cond=zero)


# --- configuration -----------------------------------------------------------------------------------------
def test_config_errors():
    with pytest.raises(ConfigError):
        pvae(2, (16,))  # vectors
    with pytest.raises(ConfigError):
        pvae(3, (3, 4, 4), pixel_channels=2)
    with pytest.raises(ConfigError):
        pvae(3, (1, 4, 4), pixel_layers=0)
    with pytest.raises(ConfigError):
        pvae(3, (1, 4, 4), dropout=1.0)
    with pytest.raises(ConfigError):
        pvae(3, (1, 4, 4), free_bits=-1)
    with pytest.raises(ConfigError):
        pvae(3, (1, 4, 4), output="bernoulli")
    with pytest.raises(ConfigError):
        pvae(3, (1, 6, 6), depth=2)  # 6 is not divisible by 4
    assert type(pvae(17, (1, 4, 4)).output).__name__ == "CategoricalOutput"
    assert type(pvae(2, (1, 4, 4)).output).__name__ == "BernoulliOutput"
