"""DRAW: the Gaussian filterbank (identity read, write = read's transpose), the bounds (ELBO <= IWAE_k,
ELBO <= 0 on discrete data), canvases, codes, conditioning, save/load, continuous data, validation."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets.draw_attention import GaussianAttention, filterbank, read_patch, write_patch
from conftest import same_under_seed

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"glimpses": 4, "hidden": 32, "latent": 4, "attention": True, "read_size": 2, "write_size": 3}


def _fit(model, x, steps, lr=3e-3, context=None, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,))
        batch = x[idx] if context is None else (x[idx], context[idx])
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(binary_digits):
    """An untrained small DRAW whose decoder is made sensitive to z (its input weights scaled up), so
    that log p(x | z) varies a lot with z and IWAE_k is visibly above the ELBO without training."""
    torch.manual_seed(0)
    m = build_model("draw", binary_digits.spec, SMALL)
    with torch.no_grad():
        m.decoder.weight_ih.mul_(6.0)
        m.write_net.weight.mul_(4.0)
    return m.eval()


# --- the filterbank -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 5])
def test_centred_unit_stride_tiny_sigma_read_is_the_identity(n):
    att = GaussianAttention(hidden=4, n=n, height=n, width=n)
    with torch.no_grad():
        att.params.bias.copy_(torch.tensor([0.0, 0.0, -12.0, 0.0, 0.0]))  # g~ = 0, sigma^2 = e^-12, delta = 1, gamma = 1
    h = torch.randn(6, 4)
    f_y, f_x, gamma = att(h)
    eye = torch.eye(n).expand(6, n, n)
    assert torch.allclose(f_x, eye, atol=1e-6) and torch.allclose(f_y, eye, atol=1e-6)
    x = torch.randn(6, 3, n, n)
    assert torch.allclose(att.read(h, x).reshape(6, 3, n, n), x, atol=1e-5)
    assert torch.allclose(att.write(h, x), x, atol=1e-5)


def test_grid_centre_and_stride_place_the_filters():
    # 9 x 9 image, N = 3, stride 2 around column 6 / row 2: the filters sit on columns 4, 6, 8 and rows 0, 2, 4
    f_y, f_x = filterbank(torch.tensor([6.0]), torch.tensor([2.0]), torch.tensor([-12.0]), torch.tensor([2.0]),
                          3, 9, 9)
    assert f_x[0].argmax(-1).tolist() == [4, 6, 8]
    assert f_y[0].argmax(-1).tolist() == [0, 2, 4]
    # a wide filter: every row is a distribution over the image
    f_y, f_x = filterbank(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([1.5]), torch.tensor([1.0]), 4, 6, 7)
    assert f_y.shape == (1, 4, 6) and f_x.shape == (1, 4, 7)
    assert torch.allclose(f_x.sum(-1), torch.ones(1, 4)) and (f_x > 0).all()


def test_write_is_the_transpose_of_read_up_to_gamma():
    g = torch.Generator().manual_seed(0)
    b, c, h, w, n = 5, 2, 6, 7, 3
    raw = torch.randn(b, 5, generator=g, dtype=torch.float64)
    att = GaussianAttention(4, n, h, w).double()
    geo = att.geometry(raw)
    f_y, f_x = filterbank(geo["g_x"], geo["g_y"], geo["log_var"], geo["delta"], n, h, w)
    gamma = geo["gamma"]
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    patch = torch.randn(b, c, n, n, generator=g, dtype=torch.float64)
    lhs = (read_patch(x, f_y, f_x, gamma) * patch).sum((1, 2, 3))
    rhs = gamma**2 * (x * write_patch(patch, f_y, f_x, gamma)).sum((1, 2, 3))
    assert torch.allclose(lhs, rhs, atol=1e-10)
    # and per channel: the same filterbank on each channel (channel 1 alone gives channel 1's read)
    solo = read_patch(x[:, 1:2], f_y, f_x, gamma)
    assert torch.allclose(solo[:, 0], read_patch(x, f_y, f_x, gamma)[:, 1])


# --- bounds ------------------------------------------------------------------------------------------

def test_elbo_below_iwae_and_both_below_zero_on_discrete_data(trained, binary_digits):
    x = binary_digits.test[:64]
    with torch.no_grad():
        torch.manual_seed(1)
        draws = 20
        elbo_draws = trained.elbo(x.repeat(draws, 1, 1, 1)).reshape(draws, -1)
        iw1_draws = trained.log_prob(x.repeat(draws, 1, 1, 1), k=1).reshape(draws, -1)
        torch.manual_seed(2)
        iw100 = trained.log_prob(x, k=100)
    assert (elbo_draws <= 0).all() and (iw100 <= 0).all()
    elbo = elbo_draws.mean(0)
    # IWAE_1 = log p(x, z) - log q(z | x): the ELBO with a sampled KL, the same expectation
    se = (iw1_draws.std(0) / math.sqrt(draws)).mean().item()
    assert abs(iw1_draws.mean().item() - elbo.mean().item()) < 4 * se + 0.05
    assert iw100.mean().item() > elbo.mean().item() + 0.3  # the bound visibly tightens
    assert (iw100 - elbo > -1.0).float().mean().item() > 0.9  # and does so for nearly every example


def test_elbo_at_most_zero_on_grey_levels_and_loss_terms(digits):
    torch.manual_seed(0)
    m = build_model("draw", digits.spec, {**SMALL, "attention": False})
    x = digits.test[:32]
    with torch.no_grad():
        assert (m.elbo(x) <= 0).all()
        out = m.loss(x)
    assert set(out) == {"loss", "elbo", "rec", "kl"}
    assert torch.allclose(out["elbo"], out["rec"] - out["kl"]) and out["kl"] >= 0
    assert torch.allclose(out["loss"], -out["elbo"])


def test_log_prob_chunks_agree(trained, binary_digits, monkeypatch):
    import deepgen.models.latent.draw as draw_mod

    x = binary_digits.test[:10]
    with torch.no_grad():
        torch.manual_seed(3)
        whole = trained.log_prob(x, k=7)
        monkeypatch.setattr(draw_mod, "_IW_ROWS", 30)  # 3 samples (30 rows) per chunk: 3 + 3 + 1
        torch.manual_seed(3)
        chunked = trained.log_prob(x, k=7)
    # different chunking draws different noise: the two agree in distribution, not exactly
    assert whole.shape == chunked.shape == (10,)
    assert abs(whole.mean().item() - chunked.mean().item()) < 3.0
    with pytest.raises(ConfigError, match="k >= 1"):
        trained.log_prob(x, k=0)


# --- gradients, generation, codes ------------------------------------------------------------------

@pytest.mark.parametrize("attention", [True, False])
def test_gradients_reach_every_parameter(digits, attention):
    torch.manual_seed(0)
    m = build_model("draw", digits.spec, {**SMALL, "attention": attention, "context_features": 10})
    y = torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    m.loss((digits.train[:16], y))["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_canvases_end_at_the_mean_sample(trained, digits):
    with torch.no_grad():
        c = trained.canvases(5)
        assert c.shape == (SMALL["glimpses"], 5, 1, 8, 8)
        assert ((c >= 0) & (c <= 1)).all()  # E[x | c_t] on the data's scale: probabilities for binary data
        assert same_under_seed(lambda: trained.canvases(5)[-1], lambda: trained.sample(5, mean=True))
        assert not torch.equal(c[0], c[-1])  # the canvas changes over the steps
    m = build_model("draw", digits.spec, SMALL).eval()
    with torch.no_grad():
        c = m.canvases(3, temperature=0.5)
        assert c.shape == (4, 3, 1, 8, 8) and ((c >= 0) & (c <= 16)).all()
        s = m.sample(3)
        assert ((s == s.round()) & (s >= 0) & (s <= 16)).all()  # draws are levels


def test_encode_decode(trained, binary_digits):
    x = binary_digits.test[:6]
    with torch.no_grad():
        z = trained.encode(x)
        assert z.shape == (6, trained.latent) and trained.latent == SMALL["glimpses"] * SMALL["latent"]
        assert torch.equal(trained.encode(x), z)  # a point code: no noise
        rec = trained.decode(z, mean=True)
        assert torch.equal(rec, trained.reconstruct(x))
        assert rec.shape == x.shape
        assert trained.interpolate(x[0], x[1], steps=3).shape == (3, 1, 8, 8)
    with pytest.raises(ConfigError, match="glimpses \\* latent"):
        trained.decode(torch.zeros(2, 3))


def test_context_changes_the_output(digits):
    torch.manual_seed(0)
    m = build_model("draw", digits.spec, {**SMALL, "context_features": 3}).eval()
    with torch.no_grad():
        m.decoder.weight_ih[:, -3:].normal_()  # make the context matter visibly at initialisation
        m.encoder.weight_ih[:, -3:].normal_()
        x = digits.test[:4]
        y0, y1 = torch.eye(3)[[0] * 4], torch.eye(3)[[1] * 4]
        assert not same_under_seed(lambda: m.sample(4, y0, mean=True), lambda: m.sample(4, y1, mean=True))
        assert not same_under_seed(lambda: m.log_prob(x, y0, k=2), lambda: m.log_prob(x, y1, k=2))
        with pytest.raises(ConfigError, match="conditional"):
            m.log_prob(x)
    with pytest.raises(ConfigError, match="unconditional"):
        build_model("draw", digits.spec, SMALL).sample(2, torch.eye(3)[:2])


def test_save_load_reproduces_log_prob_and_samples(trained, binary_digits, tmp_path):
    save_model(trained, tmp_path)
    loaded = load_model(tmp_path)
    x = binary_digits.test[:8]
    with torch.no_grad():
        assert same_under_seed(lambda: trained.log_prob(x, k=5), lambda: loaded.log_prob(x, k=5))
        assert same_under_seed(lambda: trained.sample(6), lambda: loaded.sample(6))
        assert same_under_seed(lambda: trained.canvases(2), lambda: loaded.canvases(2))


# --- continuous data ----------------------------------------------------------------------------------

def test_continuous_images_count_the_standardisation_jacobian():
    g = torch.Generator().manual_seed(0)
    spec = DataSpec("grey", (2, 5, 6), None)
    x = torch.randn(40, 2, 5, 6, generator=g)
    a, b = 3.0, -1.0
    torch.manual_seed(0)
    m1 = build_model("draw", spec, SMALL)
    m2 = build_model("draw", spec, SMALL)
    m2.load_state_dict(m1.state_dict())
    m1.fit_preprocessing(x)
    m2.fit_preprocessing(a * x + b)
    assert m1.decoder_kind == "gaussian"
    with torch.no_grad():
        # the same model in standardised space: log p(a x + b) = log p(x) - D log a (same noise, same seed)
        torch.manual_seed(2)
        l1 = m1.log_prob(x[:8], k=3)
        torch.manual_seed(2)
        l2 = m2.log_prob(a * x[:8] + b, k=3)
        assert torch.allclose(l1 - x[0].numel() * math.log(a), l2, atol=1e-3)
        torch.manual_seed(1)
        s1 = m1.sample(4, mean=True)
        torch.manual_seed(1)
        s2 = m2.sample(4, mean=True)
        assert torch.allclose(a * s1 + b, s2, atol=1e-5)  # samples come back on the data's scale


# --- validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, match", [
    ({"glimpses": 0}, "glimpses"), ({"read_size": 0}, "read_size"), ({"write_size": -1}, "write_size"),
    ({"hidden": 0}, "hidden"), ({"latent": 0}, "latent"), ({"attention": "yes"}, "attention"),
    ({"decoder": "gaussian"}, "density"), ({"decoder": "bernoulli"}, "2 levels"), ({"iw_samples": 0}, "iw_samples"),
])
def test_bad_params_raise_config_error(digits, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("draw", digits.spec, params)


def test_vectors_are_refused_clearly():
    with pytest.raises(ConfigError, match=r"draw needs images \(C, H, W\).*\(5,\)"):
        build_model("draw", DataSpec("vec", (5,), None), {})


@pytest.mark.slow
def test_short_training_beats_an_independent_pixel_baseline(binary_digits):
    """A 400-step DRAW beats the best independent-Bernoulli model (per-pixel training frequencies) on test."""
    x, test = binary_digits.train, binary_digits.test
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    baseline = (test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean().item()
    torch.manual_seed(0)
    params = {"glimpses": 6, "hidden": 64, "latent": 6, "attention": False}
    m = _fit(build_model("draw", binary_digits.spec, params), x, 400)
    with torch.no_grad():
        iw = m.log_prob(test, k=20).mean().item()
    assert iw > baseline + 5, (iw, baseline)
