"""Autoencoder and denoising autoencoder: the linear AE finds PCA's subspace, trained reconstructions beat
a mean image, the DAE denoises, corruption statistics, the fitted code Gaussian, save/load, no density,
parameter validation, conditioning."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.models.latent.ae import Autoencoder
from deepgen.models.latent.dae import DenoisingAutoencoder
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"arch": "mlp", "hidden": 64, "latent": 8}


def fit(name, spec, x, params, steps=300, lr=3e-3, seed=0):
    """Adam with a cosine decay to 0 (as the trainer does), batch 128, in training mode; returns the model in eval mode."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the one_thread fixture
    torch.manual_seed(seed)
    m = build_model(name, spec, params)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        m.loss(x[torch.randint(len(x), (128,))])["loss"].backward()
        opt.step()
        sched.step()
    torch.set_num_threads(threads)
    return m.eval()


@pytest.fixture(scope="module")
def trained_ae(digits):
    return fit("ae", digits.spec, digits.train, SMALL)


@pytest.fixture(scope="module")
def trained_dae(digits):
    return fit("dae", digits.spec, digits.train, {**SMALL, "noise": "masking", "noise_level": 0.3})


def mse(a, b):
    return ((a - b) ** 2).mean().item()


# --- the linear autoencoder is PCA ------------------------------------------------------------------

def test_linear_autoencoder_spans_the_principal_subspace(digits):
    from scipy.linalg import subspace_angles
    from sklearn.decomposition import PCA

    torch.manual_seed(0)
    k = 4
    m = build_model("ae", digits.spec, {"linear": True, "latent": k}).double().eval()  # eval: no code tracking
    assert all(not isinstance(layer, torch.nn.ReLU) for layer in m.modules())  # affine maps only
    x = digits.train.double()
    opt = torch.optim.LBFGS(m.parameters(), lr=1, max_iter=250, history_size=50, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = m.loss(x)["loss"]
        loss.backward()
        return loss

    opt.step(closure)
    # PCA centres the data; the autoencoder's biases do the same
    u = (x / (digits.spec.levels - 1)).reshape(len(x), -1).numpy()
    pcs = PCA(k).fit(u).components_.T  # (64, k)
    w = m.decoder.out.weight.detach().numpy()  # (64, k): the decoder's columns
    angle = subspace_angles(w, pcs).max()
    assert angle < 0.01, angle
    assert abs(m.pca_angle(x) - angle) < 1e-6  # the model's own check agrees with scipy + scikit-learn
    # ... and it is not trivially small: an untrained linear AE is far from PCA
    fresh = build_model("ae", digits.spec, {"linear": True, "latent": k})
    assert fresh.pca_angle(digits.train) > 0.5


def test_pca_angle_needs_a_linear_squared_error_autoencoder(digits):
    with pytest.raises(ConfigError, match="linear"):
        build_model("ae", digits.spec, SMALL).pca_angle(digits.train)


# --- reconstruction, denoising ------------------------------------------------------------------------

def test_trained_reconstructions_beat_the_mean_image(trained_ae, digits):
    x = digits.test
    with torch.no_grad():
        rec = trained_ae.reconstruct(x)
    baseline = mse(digits.train.mean(0, keepdim=True).expand_as(x), x)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 16
    assert mse(rec, x) < 0.6 * baseline, (mse(rec, x), baseline)


def test_loss_terms(trained_ae, digits):
    x = digits.test[:64]
    with torch.no_grad():
        out = trained_ae.loss(x)
        rec = trained_ae.decode(trained_ae.encode(x), mean=True) / 16
    assert torch.equal(out["loss"], out["recon"])
    # the loss sums the squared error of the unclamped output over 64 pixels; mse is that of reconstruct(x)
    assert math.isclose(out["mse"].item(), mse(rec, x / 16), rel_tol=1e-5)
    assert out["mse"].item() <= out["loss"].item() / 64 < 1.2 * out["mse"].item()


def test_denoising_autoencoder_denoises(trained_dae, trained_ae, digits):
    x = digits.test
    torch.manual_seed(1)
    noisy = trained_dae.corrupt(x)
    with torch.no_grad():
        dae_err, ae_err = mse(trained_dae.reconstruct(noisy), x), mse(trained_ae.reconstruct(noisy), x)
    assert dae_err < 0.7 * mse(noisy, x)  # 10.3 vs 17.0
    assert dae_err < 0.9 * ae_err, (dae_err, ae_err)  # 10.3 vs 12.5: the plain AE of the same size, trained on clean data  # the plain AE of the same size, trained on clean data


def test_corruption_only_in_training_mode(digits):
    m = build_model("dae", digits.spec, {**SMALL, "noise": "masking", "noise_level": 0.9})
    x = digits.train[:64]
    m.eval()
    with torch.no_grad():
        a, b = m.loss(x)["loss"], m.loss(x)["loss"]
    assert torch.equal(a, b)  # no corruption: deterministic
    m.train()
    torch.manual_seed(0)
    with torch.no_grad():
        noisy = m.loss(x)["loss"]
    torch.manual_seed(0)
    seen = m.training_input(x)
    with torch.no_grad():
        z = m.encode(seen)
        by_hand = m.reconstruction_error(x, m.decoder_params(z)).mean()  # scored against the clean x
    assert torch.allclose(noisy, by_hand) and not torch.allclose(noisy, a)


# --- corruption statistics --------------------------------------------------------------------------

def _dae(spec, noise, level, **kw):
    return build_model("dae", spec, {**SMALL, "noise": noise, "noise_level": level, **kw})


def test_masking_zeroes_the_requested_fraction(digits):
    x = digits.train
    torch.manual_seed(0)
    out = _dae(digits.spec, "masking", 0.3).corrupt(x)
    lit = x > 0
    assert abs((out[lit] == 0).float().mean().item() - 0.3) < 0.01
    assert torch.equal(out[out != 0], x[out != 0])  # the rest is untouched


def test_gaussian_noise_has_the_requested_std():
    spec = DataSpec("vec", (4,), None)
    torch.manual_seed(0)
    x = 5 + 2 * torch.randn(50_000, 4)
    m = _dae(spec, "gaussian", 0.5)
    m.fit_preprocessing(x)  # standardised scale: the noise std is 0.5 feature std = 1.0 data units
    d = m.corrupt(x) - x
    assert abs(d.mean().item()) < 0.02 and abs(d.std().item() - 0.5 * 2) < 0.02


def test_gaussian_noise_on_levels_stays_on_levels(digits):
    torch.manual_seed(0)
    x = torch.full((20_000, 1, 8, 8), 8.0)
    out = _dae(digits.spec, "gaussian", 0.1).corrupt(x)
    assert torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 16
    # std 0.1 on [0, 1] is 1.6 levels; rounding adds variance 1/12
    assert abs((out - x).std().item() - math.sqrt(1.6**2 + 1 / 12)) < 0.03


def test_salt_and_pepper_hits_extreme_levels(digits):
    torch.manual_seed(0)
    x = torch.full((2000, 1, 8, 8), 7.0)
    out = _dae(digits.spec, "salt-pepper", 0.4).corrupt(x)
    hit = out != 7
    assert abs(hit.float().mean().item() - 0.4) < 0.01
    assert set(out[hit].unique().tolist()) == {0.0, 16.0}
    assert abs((out[hit] == 16).float().mean().item() - 0.5) < 0.02
    # continuous data: the training split's per-feature minimum and maximum
    spec = DataSpec("vec", (3,), None)
    data = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 3.0])
    m = _dae(spec, "salt-pepper", 1.0)
    m.fit_preprocessing(data)
    out = m.corrupt(data)
    assert torch.allclose(torch.minimum((out - data.min(0).values).abs(), (out - data.max(0).values).abs()),
                          torch.zeros_like(out), atol=1e-5)


# --- the fitted code Gaussian -----------------------------------------------------------------------

def test_code_statistics_match_the_training_codes(trained_ae, digits):
    with torch.no_grad():
        z = trained_ae.encode(digits.train)
    std = z.std(0)
    assert ((z.mean(0) - trained_ae.code_mean).abs() / std).max() < 0.1
    cov = torch.cov(z.T)
    assert (cov - trained_ae.code_cov).norm() / cov.norm() < 0.1
    loc, scale = trained_ae.code_scale()
    assert torch.equal(loc, trained_ae.code_mean) and torch.allclose(scale, trained_ae.code_cov.diagonal().sqrt())
    r = trained_ae.code_factor()
    assert torch.allclose(r @ r.T, trained_ae.code_cov, atol=1e-5)
    # fit_code_stats sets them exactly
    m = fit("ae", digits.spec, digits.train, SMALL, steps=5)
    m.fit_code_stats(digits.train)
    with torch.no_grad():
        z = m.encode(digits.train)
    assert torch.allclose(m.code_mean, z.mean(0), atol=1e-5)
    assert torch.allclose(m.code_cov, torch.cov(z.T, correction=0), atol=1e-5)


def test_code_statistics_merge_batches_exactly_while_averaging():
    """The first 1 / momentum batches are pooled with equal weights: the mixture update is exact."""
    m = Autoencoder(DataSpec("vec", (3,), None), latent=2, hidden=8).double()
    torch.manual_seed(0)
    batches = [torch.randn(50, 2, dtype=torch.float64) * (i + 1) + i for i in range(3)]
    for b in batches:
        m._track_codes(b)
    pooled = torch.cat(batches)
    assert torch.allclose(m.code_mean, pooled.mean(0))
    assert torch.allclose(m.code_cov, torch.cov(pooled.T, correction=0))
    assert int(m.code_updates) == 3


def test_codes_are_tracked_in_training_mode_only(digits):
    m = build_model("ae", digits.spec, SMALL).eval()
    with torch.no_grad():
        m.loss(digits.train[:64])
    assert int(m.code_updates) == 0 and torch.equal(m.code_cov, torch.eye(8))
    m.train()
    m.loss(digits.train[:64])
    assert int(m.code_updates) == 1


def test_traversal_sweeps_the_code_range(trained_ae, digits):
    with torch.no_grad():
        t = trained_ae.traverse(digits.test[0], values=torch.tensor([-2.0, 0.0, 2.0]))
        loc, scale = trained_ae.code_scale()
        z = trained_ae.encode(digits.test[:1])[0]
        z[3] = loc[3] + 2 * scale[3]
        expected = trained_ae.decode(z[None], mean=True)[0]
    assert t.shape == (8, 3, 1, 8, 8)
    assert torch.allclose(t[3, 2], expected, atol=1e-5)


# --- save / load, samples -------------------------------------------------------------------------------

def test_save_load_reproduces_reconstructions_and_samples(trained_ae, trained_dae, digits, tmp_path):
    torch.manual_seed(0)
    vec = DataSpec("vec", (3,), None)
    nll_conv = build_model("ae", digits.spec, {"recon": "nll", "channels": 8, "latent": 3})
    cont = build_model("dae", vec, {"recon": "nll", "hidden": 8, "latent": 2, "noise": "salt-pepper",
                                    "noise_level": 0.5})
    data = torch.randn(100, 3) * 3 + 1
    cont.fit_preprocessing(data)
    cont.train()
    with torch.no_grad():
        cont.likelihood.log_scale.copy_(torch.tensor([-1.0, 0.5, 0.2]))
        cont.loss(data)  # moves the code statistics off their defaults
    cases = [(trained_ae, digits.test[:20]), (trained_dae, digits.test[:20]), (nll_conv, digits.test[:20]),
             (cont, data[:20])]
    for i, (model, x) in enumerate(cases):
        save_model(model, tmp_path / str(i))
        loaded = load_model(tmp_path / str(i))
        model.eval()
        with torch.no_grad():
            assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))
            for fn in ("sample", "corrupt"):
                if hasattr(model, fn):
                    arg = 10 if fn == "sample" else x
                    torch.manual_seed(6)
                    a = getattr(model, fn)(arg)
                    torch.manual_seed(6)
                    assert torch.equal(a, getattr(loaded, fn)(arg)), (i, fn)
        assert loaded.config() == model.config()
        assert torch.equal(loaded.code_cov, model.code_cov)


def test_samples_on_the_data_scale(trained_ae, digits):
    with torch.no_grad():
        s = trained_ae.sample(200)
        means = trained_ae.sample(5, mean=True)
        cold = trained_ae.sample(5, temperature=0.0, mean=True)
    assert s.shape == (200, 1, 8, 8) and torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16
    assert not torch.equal(means, means.round())
    # temperature 0 decodes the code mean
    with torch.no_grad():
        at_mean = trained_ae.decode(trained_ae.code_mean.expand(5, -1), mean=True)
    assert torch.allclose(cold, at_mean, atol=1e-5)
    # samples look like digits more than like noise: closer to the data than uniform levels are
    pix = lambda a: a.reshape(len(a), -1)  # noqa: E731
    d_samples = torch.cdist(pix(s), pix(digits.test)).min(1).values.mean()
    d_noise = torch.cdist(pix(torch.randint(0, 17, s.shape).float()), pix(digits.test)).min(1).values.mean()
    assert d_samples < 0.5 * d_noise


# --- protocol, parameters, context --------------------------------------------------------------------

def test_declared_as_an_implicit_likelihood_trained_model(digits):
    for cls in (Autoencoder, DenoisingAutoencoder):
        assert cls.density == "none" and cls.objective == "likelihood" and cls.family == "latent"
        assert {"encode", "traverse"} <= cls.capabilities and "log_prob" not in cls.capabilities
    assert issubclass(DenoisingAutoencoder, Autoencoder)
    m = build_model("dae", digits.spec, {})
    assert m.arch == "conv" and m.recon == "mse" and m.noise == "gaussian"
    with pytest.raises(DensityError, match="not a density model"):
        m.log_prob(digits.test[:2])


@pytest.mark.parametrize("name, params, spec_name", [
    ("ae", {"arch": "conv"}, "vec"),
    ("ae", {"linear": True, "arch": "conv"}, "digits"),
    ("ae", {"recon": "bce"}, "vec"),
    ("ae", {"recon": "l1"}, "digits"),
    ("ae", {"latent": 0}, "digits"),
    ("ae", {"linear": "yes"}, "digits"),
    ("ae", {"arch": "conv", "depth": 4}, "digits"),
    ("ae", {"noise": "gaussian"}, "digits"),
    ("dae", {"noise": "blur"}, "digits"),
    ("dae", {"noise": "masking", "noise_level": 1.5}, "digits"),
    ("dae", {"noise_level": -0.1}, "digits"),
])
def test_bad_parameters_raise_config_error(name, params, spec_name, digits):
    spec = DataSpec("vec", (3,), None) if spec_name == "vec" else digits.spec
    with pytest.raises(ConfigError):
        build_model(name, spec, params)


def test_direct_construction_rejects_unknown_parameters(digits):
    with pytest.raises(ConfigError, match="noise"):
        Autoencoder(digits.spec, noise="gaussian")


@pytest.mark.parametrize("name, recon, arch", [("ae", "mse", "mlp"), ("dae", "bce", "conv"), ("ae", "nll", "conv")])
def test_gradients_reach_every_parameter(name, recon, arch, digits):
    m = build_model(name, digits.spec, {"recon": recon, "arch": arch, "hidden": 16, "channels": 32, "latent": 3})
    m.loss(digits.train[:16])["loss"].backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def test_context_changes_every_part(digits):
    vec = DataSpec("vec", (3,), None)
    for name, s in [("ae", vec), ("dae", digits.spec)]:
        m = build_model(name, s, {"hidden": 16, "latent": 2, "context_features": 2, "arch": "mlp"})
        x = torch.randn(4, *s.shape) if s.levels is None else torch.randint(0, 17, (4, *s.shape)).float()
        c1, c2 = torch.zeros(4, 2), torch.ones(4, 2)
        with torch.no_grad():
            assert not torch.allclose(m.encode(x, c1), m.encode(x, c2))
            z = torch.randn(4, 2)
            assert not torch.allclose(m.decoder_params(z, c1), m.decoder_params(z, c2))
            torch.manual_seed(0)
            s1 = m.sample(4, c1, mean=True)
            torch.manual_seed(0)
            assert not torch.allclose(s1, m.sample(4, c2, mean=True))
        assert torch.isfinite(m.loss((x, c1))["loss"])
        with pytest.raises(ConfigError, match="conditional"):
            m.sample(4)


def test_recon_choices_on_every_data_kind(digits):
    binary = DataSpec("bin", (1, 8, 8), 2)
    vec = DataSpec("vec", (5,), None)
    for spec, recon, kind in [(binary, "nll", "bernoulli"), (digits.spec, "nll", "logistic"),
                              (vec, "nll", "gaussian")]:
        m = build_model("ae", spec, {"recon": recon, "hidden": 16, "channels": 8, "latent": 2})
        assert m.decoder_kind == kind
        x = torch.randn(6, *spec.shape) if spec.levels is None else torch.randint(0, spec.levels, (6, *spec.shape)).float()
        out = m.loss(x)
        assert torch.isfinite(out["loss"]) and out["mse"] >= 0
        if spec.levels is not None:
            assert out["loss"] > 0  # -log of a discrete probability
        with torch.no_grad():
            draw = m.decode(m.encode(x))
        assert draw.shape == x.shape
