"""VAE: bounds (ELBO <= IWAE_k, growing in k), an exact linear-Gaussian check, normalized
decoders, analytic KL, gradients, save/load, interpolation, and parameter validation."""

import math

import pytest
import torch

import deepgen.models.latent.vae as vae_mod
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model, model_defaults
from deepgen.distributions import gaussian_kl, gaussian_log_prob
from deepgen.distributions import (
    BernoulliOutput as BernoulliLikelihood, CategoricalOutput as CategoricalLikelihood,
    DiscretizedLogisticOutput as DiscretizedLogisticLikelihood, LearnedScaleGaussianOutput as GaussianLikelihood,
)


@pytest.fixture(scope="module")
def trained(binary_digits):
    """A small MLP VAE fitted for a few hundred steps, so q(z|x) is informative and IWAE_k > ELBO."""
    torch.manual_seed(0)
    m = build_model("vae", binary_digits.spec, {"latent": 8, "hidden": 64, "arch": "mlp"})
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    x = binary_digits.train
    for step in range(200):
        batch = x[torch.randint(len(x), (64,))]
        opt.zero_grad()
        m.loss(batch)["loss"].backward()
        opt.step()
    return m.eval()


# --- bounds ------------------------------------------------------------------------------

def test_elbo_below_iwae_and_iwae_grows_with_k(trained, binary_digits):
    x = binary_digits.test[:128]
    with torch.no_grad():
        torch.manual_seed(1)
        xr = x.repeat(50, 1, 1, 1)  # 50 independent draws per example
        elbo = trained.elbo(xr).reshape(50, -1).mean(0)  # (B,), MC over z
        iw1_draws = trained.log_prob(xr, k=1).reshape(50, -1)
        iw1 = iw1_draws.mean(0)
        iw = {}
        for k in (1, 10, 100):
            torch.manual_seed(2)
            iw[k] = trained.log_prob(x, k=k).mean().item()
    # IWAE_1 = log p(x,z) - log q(z|x) is the ELBO with a sampled KL: same expectation.
    se = (iw1_draws.std(0) / math.sqrt(50)).mean().item()
    assert abs(iw1.mean().item() - elbo.mean().item()) < 4 * se + 0.05
    assert elbo.mean().item() < iw[10] < iw[100]
    assert iw[10] - iw[1] > 0.1  # the bound visibly tightens on a trained model


def _linear_gaussian(d=5, latent=2, exact_posterior=True, seed=0):
    """A depth-0 VAE whose decoder is x = W z + b + N(0, diag sigma^2); returns (model, W, b, sigma)."""
    g = torch.Generator().manual_seed(seed)
    spec = DataSpec("lin", (d,), None)
    m = build_model("vae", spec, {"latent": latent, "depth": 0, "arch": "mlp", "decoder": "gaussian"}).double()
    if exact_posterior:
        # Orthogonal columns + isotropic noise make the true posterior covariance diagonal,
        # so the diagonal-Gaussian encoder can be exact.
        q, _ = torch.linalg.qr(torch.randn(d, latent, generator=g, dtype=torch.float64))
        w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)
        sigma = torch.full((d,), 0.5, dtype=torch.float64)
    else:
        w = torch.randn(d, latent, generator=g, dtype=torch.float64)
        sigma = 0.3 + torch.rand(d, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    # true posterior: Sigma = (I + W^T Psi^-1 W)^-1, mean = Sigma W^T Psi^-1 (x - b)
    prec = torch.eye(latent, dtype=torch.float64) + w.T @ torch.diag(sigma**-2) @ w
    cov = torch.linalg.inv(prec)
    a = cov @ w.T @ torch.diag(sigma**-2)
    # a mismatched encoder is twice as wide as the true posterior marginals (and ignores their correlation)
    post_std = cov.diagonal().sqrt() * (1.0 if exact_posterior else 2.0)
    with torch.no_grad():
        m.decoder.out.weight.copy_(w)
        m.decoder.out.bias.copy_(b)
        m.likelihood.log_scale.copy_(sigma.log())
        m.encoder.out.weight.zero_()
        m.encoder.out.weight[:latent] = a
        m.encoder.out.bias.zero_()
        m.encoder.out.bias[:latent] = -a @ b
        m.encoder.out.bias[latent:] = post_std.log()
    return m, w, b, sigma


def _exact_log_px(x, w, b, sigma):
    cov = w @ w.T + torch.diag(sigma**2)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def test_linear_gaussian_exact_posterior_makes_elbo_exact():
    m, w, b, sigma = _linear_gaussian(exact_posterior=True)
    x = torch.randn(32, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    exact = _exact_log_px(x, w, b, sigma)
    with torch.no_grad():
        torch.manual_seed(0)
        # with q = p(z|x) every importance weight p(x, z) / q(z | x) equals p(x): IWAE_k is exact per draw
        assert torch.allclose(m.log_prob(x, k=1), exact, atol=1e-8)
        assert torch.allclose(m.log_prob(x, k=7), exact, atol=1e-8)
        # the ELBO (sampled reconstruction, analytic KL) is exact in expectation: KL(q || p(z|x)) = 0
        draws = m.elbo(x.repeat(4000, 1)).reshape(4000, -1)
        se = draws.std(0) / math.sqrt(len(draws))
        assert ((draws.mean(0) - exact).abs() < 4 * se + 1e-9).all()


def test_linear_gaussian_iwae_converges_to_exact_log_px(monkeypatch):
    m, w, b, sigma = _linear_gaussian(exact_posterior=False, seed=1)
    chol = torch.linalg.cholesky(w @ w.T + torch.diag(sigma**2))
    x = b + torch.randn(64, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) @ chol.T
    exact = _exact_log_px(x, w, b, sigma)
    # force many chunks with a ragged last one, so the streaming logsumexp is exercised
    monkeypatch.setattr(vae_mod, "_IW_ROWS", 64 * 700)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = m.elbo(x.repeat(200, 1)).reshape(200, -1).mean(0)
        iw = m.log_prob(x, k=5000)
    gap = (exact - elbo).mean().item()
    assert gap > 1.0  # the mismatched encoder is far from exact: the ELBO is well below log p(x)
    assert (exact - elbo).min().item() > 0.3
    # IWAE_5000 closes the gap: mean error < 0.5% of it, every example within 0.1 nats
    assert abs((iw - exact).mean().item()) < 0.01
    assert (iw - exact).abs().max().item() < 0.1


# --- decoder likelihoods ------------------------------------------------------------------------

def _levels_logsumexp(lik, params, levels, shape):
    logp = torch.stack([lik.log_prob(torch.full(shape, float(k), dtype=params.dtype), params)
                        for k in range(levels)])
    return torch.logsumexp(logp, 0)


def test_categorical_sums_to_one_over_levels():
    g = torch.Generator().manual_seed(0)
    params = 3 * torch.randn(16, 10, 17, generator=g, dtype=torch.float64)
    total = _levels_logsumexp(CategoricalLikelihood(17), params, 17, (16, 10))
    assert torch.allclose(total, torch.zeros_like(total), atol=1e-10)


def test_discretized_logistic_sums_to_one_and_matches_cdf_difference():
    g = torch.Generator().manual_seed(0)
    lik = DiscretizedLogisticLikelihood(17)
    loc = 4 * torch.randn(400, generator=g, dtype=torch.float64)  # mu from far below 0 to far above 16
    log_s = torch.linspace(-6, 3, 400, dtype=torch.float64)
    params = torch.stack([loc, log_s], -1)
    total = _levels_logsumexp(lik, params, 17, (400,))
    assert torch.allclose(total, torch.zeros_like(total), atol=1e-9)
    # each bin equals F(k + 1/2) - F(k - 1/2) with the edge bins taking the tails
    mu, s = 8 * (1 + loc), log_s.exp()
    for k in range(17):
        hi = torch.sigmoid((k + 0.5 - mu) / s) if k < 16 else torch.ones_like(mu)
        lo = torch.sigmoid((k - 0.5 - mu) / s) if k > 0 else torch.zeros_like(mu)
        got = lik.log_prob(torch.full((400,), float(k), dtype=torch.float64), params).exp()
        assert torch.allclose(got, hi - lo, atol=1e-12)
    # stable far in the tails: finite log-probabilities, no NaN
    far = torch.tensor([[5.0, -7.0], [-5.0, -7.0]], dtype=torch.float64)
    assert torch.isfinite(lik.log_prob(torch.tensor([0.0, 16.0], dtype=torch.float64), far)).all()


def test_discretized_logistic_and_categorical_samples_follow_their_probabilities():
    torch.manual_seed(0)
    n = 200_000
    for lik, p in [(DiscretizedLogisticLikelihood(5), torch.tensor([0.1, 0.3])),
                   (CategoricalLikelihood(5), torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0]))]:
        params = p.expand(n, len(p))
        freq = torch.bincount(lik.sample(params).long(), minlength=5).double() / n
        probs = torch.stack([lik.log_prob(torch.tensor([float(k)]), p[None]) for k in range(5)]).exp().squeeze()
        assert torch.allclose(freq, probs.double(), atol=4e-3), (type(lik).__name__, freq, probs)
        assert torch.allclose(lik.mean(p[None]).double(), (probs * torch.arange(5)).sum().double(), atol=1e-5)


def test_bernoulli_sums_to_one_and_matches_torch():
    logits = torch.linspace(-30, 30, 101, dtype=torch.float64)[:, None]
    total = _levels_logsumexp(BernoulliLikelihood(), logits, 2, (101,))
    assert torch.allclose(total, torch.zeros_like(total), atol=1e-12)
    x = (torch.arange(101) % 2).double()
    ref = torch.distributions.Bernoulli(logits=logits[:, 0]).log_prob(x)
    assert torch.allclose(BernoulliLikelihood().log_prob(x, logits), ref, atol=1e-10)


def test_gaussian_matches_torch_normal():
    lik = GaussianLikelihood((3, 4)).double()
    with torch.no_grad():
        lik.log_scale.copy_(torch.randn(3, 4, dtype=torch.float64))
    mu, x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    ref = torch.distributions.Normal(mu, lik.log_scale.exp()).log_prob(x)
    assert torch.allclose(lik.log_prob(x, mu[..., None]), ref, atol=1e-12)


# --- KL, gradients, loss -------------------------------------------------------------------------

def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, log_std = torch.randn(4, 6, dtype=torch.float64), 0.5 * torch.randn(4, 6, dtype=torch.float64)
    z = mu + log_std.exp() * torch.randn(200_000, 4, 6, dtype=torch.float64)
    log_ratio = gaussian_log_prob(z, mu, log_std) - gaussian_log_prob(z, torch.zeros_like(mu), torch.zeros_like(mu))
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert ((mc - gaussian_kl(mu, log_std)).abs() < 4 * se).all()
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_reparameterized_gradients_reach_encoder_and_decoder(arch, digits):
    torch.manual_seed(0)
    m = build_model("vae", digits.spec, {"arch": arch, "hidden": 32, "channels": 16, "latent": 4})
    x = digits.train[:16]

    def grads(part):
        return [p.grad for p in part.parameters()]

    m.loss(x)["loss"].backward()
    for part in (m.encoder, m.decoder):
        assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads(part))
    # the reconstruction term alone reaches every encoder weight, only through z = mu + sigma * eps
    m.zero_grad(set_to_none=True)
    rec, kl = m._elbo_terms(x)
    (-rec.mean()).backward(retain_graph=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads(m.encoder))
    # ... and the KL term alone never touches the decoder
    m.zero_grad(set_to_none=True)
    kl.mean().backward()
    assert all(g is None for g in grads(m.decoder))
    assert all(g is not None for g in grads(m.encoder))


def test_loss_terms_and_beta(binary_digits):
    x = binary_digits.train[:32]
    m = build_model("vae", binary_digits.spec, {"hidden": 32, "channels": 16, "latent": 4, "beta": 4.0})
    torch.manual_seed(0)
    out = m.loss(x)
    assert torch.allclose(out["elbo"], out["rec"] - out["kl"])
    assert torch.allclose(out["loss"], -(out["rec"] - 4.0 * out["kl"]))
    torch.manual_seed(0)
    assert torch.allclose(m.elbo(x).mean(), out["elbo"])  # elbo() ignores beta
    assert out["kl"] >= 0 and out["rec"] <= 0  # discrete likelihood: log P <= 0


# --- io, generation -----------------------------------------------------------------------------

def test_save_load_round_trip(trained, binary_digits, digits, tmp_path):
    torch.manual_seed(0)
    conv = build_model("vae", digits.spec, {"channels": 16})  # default conv + discretized logistic
    gauss = build_model("vae", DataSpec("vec", (3,), None), {"hidden": 16})
    with torch.no_grad():
        gauss.likelihood.log_scale.copy_(torch.tensor([-1.0, 0.5, 0.2]))  # learned variances must travel too
    cases = [(trained, binary_digits.test[:20]), (conv, digits.test[:20]), (gauss, torch.randn(20, 3))]
    for i, (model, x) in enumerate(cases):
        save_model(model, tmp_path / str(i))
        loaded = load_model(tmp_path / str(i))
        model.eval()
        with torch.no_grad():
            torch.manual_seed(5)
            a = model.log_prob(x, k=50)
            torch.manual_seed(5)
            b = loaded.log_prob(x, k=50)
            torch.manual_seed(6)
            sa = model.sample(10)
            torch.manual_seed(6)
            sb = loaded.sample(10)
        assert torch.equal(a, b) and torch.equal(sa, sb)
        assert loaded.config() == model.config()


def test_samples_and_reconstructions_on_data_scale(digits, binary_digits):
    torch.manual_seed(0)
    for s, decoder in [(digits, "categorical"), (digits, "logistic"), (binary_digits, "bernoulli")]:
        m = build_model("vae", s.spec, {"hidden": 32, "channels": 16, "latent": 4, "decoder": decoder})
        with torch.no_grad():
            x = m.sample(50, temperature=0.7)
            mean = m.sample(50, mean=True)
            rec = m.reconstruct(s.test[:5])
        assert x.shape == (50, 1, 8, 8) and torch.equal(x, x.round())
        assert x.min() >= 0 and x.max() <= s.spec.levels - 1
        assert mean.min() >= 0 and mean.max() <= s.spec.levels - 1
        assert rec.shape == (5, 1, 8, 8)
        lp = m.log_prob(s.test[:5], k=3)
        assert lp.shape == (5,) and (lp <= 0).all()  # log of a discrete probability


def test_interpolate_endpoints_are_mean_reconstructions(trained, binary_digits):
    x0, x1 = binary_digits.test[0], binary_digits.test[1]
    with torch.no_grad():
        path = trained.interpolate(x0, x1, steps=7)
        mu0, mu1 = trained.encode(x0[None]), trained.encode(x1[None])
        r0, r1 = trained.decode(mu0, mean=True)[0], trained.decode(mu1, mean=True)[0]
        batch = trained.interpolate(binary_digits.test[:3], binary_digits.test[3:6], steps=4)
    assert path.shape == (7, 1, 8, 8)
    assert torch.allclose(path[0], r0, atol=1e-6) and torch.allclose(path[-1], r1, atol=1e-6)
    assert not torch.allclose(path[3], r0, atol=1e-3)  # the path moves
    assert batch.shape == (4, 3, 1, 8, 8)


def test_context_conditions_every_part(digits):
    spec = DataSpec("vec", (3,), None)
    for arch, s in [("mlp", spec), ("conv", digits.spec)]:
        m = build_model("vae", s, {"hidden": 16, "channels": 8, "latent": 2, "context_features": 2, "arch": arch})
        x = torch.randn(4, *s.shape) if s.levels is None else torch.randint(0, 17, (4, *s.shape)).float()
        c1, c2 = torch.zeros(4, 2), torch.ones(4, 2)
        with torch.no_grad():
            assert not torch.allclose(m.encode(x, c1), m.encode(x, c2))
            z = torch.randn(4, 2)
            assert not torch.allclose(m.decode(z, c1, mean=True), m.decode(z, c2, mean=True))
            assert m.log_prob(x, c1, k=5).shape == (4,)
            assert m.sample(4, c1).shape == (4, *s.shape)
        assert torch.isfinite(m.loss((x, c1))["loss"])


def test_registry_defaults_and_auto_choices(digits, binary_digits):
    d = model_defaults("vae")
    assert d["latent"] == 16 and d["beta"] == 1.0 and d["iw_samples"] == 100 and d["context_features"] == 0
    m = build_model("vae", digits.spec, {})
    assert m.family == "latent" and m.density == "bound"
    assert m.arch == "conv" and m.decoder_kind == "logistic"
    assert build_model("vae", binary_digits.spec, {}).decoder_kind == "bernoulli"
    vec = build_model("vae", DataSpec("moons", (2,), None), {})
    assert vec.arch == "mlp" and vec.decoder_kind == "conditional-gaussian"


@pytest.mark.parametrize("params, spec_name", [
    ({"decoder": "gaussian"}, "digits"),
    ({"decoder": "bernoulli"}, "digits"),
    ({"decoder": "categorical"}, "vec"),
    ({"decoder": "poisson"}, "digits"),
    ({"arch": "conv"}, "vec"),
    ({"arch": "conv", "depth": 4}, "digits"),
    ({"arch": "resnet"}, "digits"),
    ({"latent": 0}, "digits"),
    ({"iw_samples": 0}, "digits"),
])
def test_bad_parameters_raise_config_error(params, spec_name, digits):
    spec = DataSpec("vec", (3,), None) if spec_name == "vec" else digits.spec
    with pytest.raises(ConfigError):
        build_model("vae", spec, params)


def test_trains_through_the_project_trainer(tmp_path):
    from deepgen.io import read_yaml
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    cfg = TrainConfig.from_dict({"model": "vae", "data": "digits-binary", "steps": 20, "eval_every": 10,
                                 "log_every": 5, "progress": False,
                                 "model_params": {"channels": 8, "latent": 4, "iw_samples": 5}})
    scores = train(cfg, tmp_path, verbose=False)
    assert scores["density"] == "bound" and math.isfinite(scores["nll_nats"]) and scores["nll_nats"] > 0
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert all(f"train/{k}" in header for k in ("loss", "elbo", "kl", "rec")) and "val/nll_nats" in header
    assert read_yaml(tmp_path / "config.yaml")["model_config"]["params"]["iw_samples"] == 5
    assert load_model(tmp_path).decoder_kind == "bernoulli"
