"""The OOD Detector: PyOD / scikit-learn conventions, thresholds from contamination, and each score's formula."""

import io
import math
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel
from deepgen.models.registry import build_model
from deepgen.ood import Detector, applicable_scores
from deepgen.ood.scores import code_length_bits, typicality_batches

pytestmark = pytest.mark.usefixtures("one_thread")
D = 50


class Gaussian(GenerativeModel):
    """N(0, scale^2 I) in D dimensions: entropy D/2 log(2 pi e scale^2) nats."""

    name = "test-gaussian"
    density = "exact"
    capabilities = frozenset({"log_prob"})

    def __init__(self, spec, scale: float = 1.0):
        super().__init__(spec, scale=scale)
        self.scale = scale

    def log_prob(self, x, context=None):
        z = x / self.scale
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1) - x.shape[1] * math.log(self.scale)


SPEC = DataSpec("gauss", (D,))


def gauss(scale=1.0):
    return Gaussian(SPEC, scale=scale)


def draws(n, scale=1.0, seed=0):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)) * scale


def test_typicality_recovers_the_entropy_of_a_gaussian():
    det = Detector(gauss(), score="typicality").fit(draws(20000))
    entropy_bits_per_dim = 0.5 * math.log(2 * math.pi * math.e) / math.log(2)
    assert det.entropy_ == pytest.approx(entropy_bits_per_dim, abs=0.005)
    # the mode has the highest density but is atypical: nll calls it the most normal point, typicality flags it
    mode = torch.zeros(1, D)
    nll = Detector(gauss(), score="nll").fit(draws(2000))
    assert nll.predict(mode).item() == 0 and nll.decision_function(mode).item() < nll.decision_scores_.min()
    assert det.predict(mode).item() == 1
    assert det.decision_function(mode).item() == pytest.approx(det.entropy_ - 0.5 * math.log2(2 * math.pi))


def test_sign_conventions_and_nll_units():
    x = draws(100, seed=1)
    det = Detector(gauss(), score="nll").fit(draws(500))
    expected = -gauss().log_prob(x).double() / (D * math.log(2))
    assert torch.allclose(det.decision_function(x), expected)
    assert torch.equal(det.score_samples(x), -det.decision_function(x))
    far = draws(100, scale=3.0, seed=2)  # more abnormal: higher decision, lower score_samples
    assert det.decision_function(far).mean() > det.decision_function(x).mean()
    assert det.score_samples(far).mean() < det.score_samples(x).mean()
    assert set(det.predict(far).tolist()) <= {0, 1} and det.predict(far).float().mean() > 0.9


@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.25])
def test_threshold_is_the_quantile_of_the_training_scores(contamination):
    x = draws(1000, seed=3)
    det = Detector(gauss(), score="nll", contamination=contamination).fit(x)
    assert det.threshold_ == np.quantile(det.decision_scores_.numpy(), 1 - contamination)
    assert torch.equal(det.decision_scores_, det.decision_function(x))
    flagged = det.predict(x)
    assert torch.equal(flagged, det.labels_)
    assert abs(flagged.float().mean().item() - contamination) <= 1 / len(x)
    assert torch.equal(flagged, (det.decision_function(x) > det.threshold_).long())


def test_batch_typicality_flags_atypical_batches_only():
    det = Detector(gauss(), score="typicality").fit(draws(5000))
    typical = draws(400, seed=4)
    near_mode = draws(400, scale=0.5, seed=5)  # higher density than any typical point, still OOD
    ref = draws(2000, seed=6)
    t_in = det.typicality_test(typical, m=20, reference=ref, alpha=0.01)
    t_out = det.typicality_test(near_mode, m=20, reference=ref, alpha=0.01)
    assert t_in["flagged"].float().mean() <= 0.1 and t_out["flagged"].all()
    # the statistic of a batch is |mean NLL - H_hat|
    nll = Detector(gauss(), score="nll").decision_function(typical)
    assert torch.allclose(t_in["statistic"], (nll.reshape(20, 20).mean(1) - det.entropy_).abs())
    assert len(typicality_batches(nll[:45], det.entropy_, 20)) == 2


def test_ensemble_is_minus_mean_plus_variance():
    x = draws(50, seed=7)
    models = [gauss(1.0), gauss(1.5), gauss(0.8)]
    det = Detector(models, score="ensemble").fit(draws(200))
    lp = torch.stack([m.log_prob(x).double() for m in models])
    assert torch.allclose(det.decision_function(x), -(lp.mean(0) - lp.var(0)) / (D * math.log(2)))
    with pytest.raises(ConfigError, match="at least 2"):
        Detector(gauss(), score="ensemble")
    with pytest.raises(ConfigError, match="ensemble"):
        Detector(models, score="nll")


@pytest.fixture(scope="module")
def digits_flow():
    torch.manual_seed(0)
    from deepgen.data import load_data

    return build_model("realnvp", load_data("digits").spec, {"scales": 1, "channels": 8}).eval()


def test_input_complexity_subtracts_the_png_code_length(digits, digits_flow):
    x = digits.test[:6]
    det = Detector(digits_flow, score="input-complexity")
    nll = Detector(digits_flow, score="nll").decision_function(x)
    png_bits = []
    for img in x.numpy().astype(np.uint8):
        buf = io.BytesIO()
        Image.fromarray(img[0]).save(buf, "PNG", optimize=True)
        png_bits.append(8 * len(buf.getvalue()))
    assert torch.allclose(det.decision_function(x), nll - torch.tensor(png_bits, dtype=torch.float64) / 64)
    zbits = [8 * len(zlib.compress(img.astype(np.uint8).tobytes(), 9)) for img in x.numpy()]
    assert torch.equal(code_length_bits(x, 17, "zlib"), torch.tensor(zbits, dtype=torch.float64))
    # a flat image compresses far better than a digit
    assert code_length_bits(torch.zeros(1, 1, 8, 8), 17).item() < min(png_bits)


def test_data_scale_and_layouts(digits, digits_flow):
    x = digits.test[:5]
    det = Detector(digits_flow, score="nll")
    as_numpy_hw = det.decision_function(x[:, 0].numpy().astype(np.int64))
    assert torch.equal(as_numpy_hw, det.decision_function(x))
    with pytest.raises(DataError, match="shape"):
        det.decision_function(torch.zeros(3, 64))
    with pytest.raises(DataError, match="integers in \\[0, 16\\]"):
        det.decision_function(x * 2)
    with pytest.raises(DataError, match="integers"):
        det.decision_function(x + 0.5)


def test_scores_follow_capabilities(digits):
    spec = digits.spec
    gan = build_model("gan", spec, {"hidden": 8, "latent": 4}).eval()
    ae = build_model("ae", spec, {}).eval()
    assert applicable_scores(gan) == ["discriminator"]
    assert "reconstruction" in applicable_scores(ae) and "nll" not in applicable_scores(ae)
    x = digits.test[:8]
    d = Detector(gan, score="discriminator").decision_function(x)
    with torch.no_grad():
        assert torch.allclose(d, -gan.discriminate(gan.to_d_scale(x)).double())
    rec = Detector(ae, score="reconstruction").decision_function(x)
    with torch.no_grad():
        assert torch.allclose(rec, (ae.reconstruct(x) - x).double().pow(2).mean((1, 2, 3)))
    with pytest.raises(ConfigError, match="does not apply to model 'gan'.*discriminator"):
        Detector(gan, score="nll")
    with pytest.raises(ConfigError, match="unknown OOD score 'nl'; did you mean 'nll'"):
        Detector(gan, score="nl")


def test_label_says_when_the_density_is_a_bound(digits):
    vae = build_model("vae", digits.spec, {}).eval()
    assert "upper bound" in Detector(vae, score="nll").label
    assert "exact" in Detector(gauss(), score="nll").label


@pytest.mark.parametrize("kwargs,match", [
    ({"score": "nll", "contamination": 0.0}, "contamination"),
    ({"score": "nll", "contamination": 0.7}, "contamination"),
    ({"score": "nll", "background": "x"}, "takes no option 'background'"),
    ({"score": "likelihood-ratio"}, "needs background=RUN"),
])
def test_bad_settings_are_one_line_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        Detector(gauss(), **kwargs)
    assert "\n" not in str(e.value)


def test_threshold_needs_fit():
    with pytest.raises(ConfigError, match="fit"):
        Detector(gauss(), score="nll").predict(draws(3))
    with pytest.raises(ConfigError, match="fit"):
        Detector(gauss(), score="typicality").decision_function(draws(3))
