"""The VAE's default decoder on continuous data: a Gaussian whose variance depends on z.

Properties: the head is the density it claims (against torch.distributions.Normal), its variance
really follows z and stays within the soft bound, the default picks it on continuous data only,
and on a linear-Gaussian model whose log p(x) is known in closed form the importance-weighted
bound stays below log p(x) and tightens towards it as k grows.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.models.latent.vae import ModulatedScaleGaussianOutput
from deepgen.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_head_is_the_gaussian_it_claims():
    torch.manual_seed(0)
    head = ModulatedScaleGaussianOutput((3,), log_std_bound=2.0)
    with torch.no_grad():
        head.log_scale.copy_(torch.tensor([-1.0, 0.0, 0.7]))
    params = 3 * torch.randn(50, 3, 2)
    x = torch.randn(50, 3)
    log_std = head.log_scale + 2.0 * torch.tanh(params[..., 1] / 2.0)
    expected = torch.distributions.Normal(params[..., 0], log_std.exp()).log_prob(x)
    assert torch.allclose(head.log_prob(x, params), expected, atol=1e-5)
    # the soft bound: log sigma never leaves log_scale +- B, so a collapsing variance keeps the NLL finite
    extreme = torch.stack([torch.zeros(50, 3), torch.full((50, 3), -1e6)], -1)
    assert torch.all(head.log_std(extreme) >= head.log_scale - 2.0 - 1e-6)
    assert torch.isfinite(head.log_prob(x, extreme)).all()
    # samples: mean params[..., 0], spread exp(log_std) (temperature scales it)
    one = torch.tensor([[[1.5, 0.8], [-2.0, -0.8], [0.0, 0.0]]]).expand(20000, 3, 2)
    s = head.sample(one, temperature=0.5)
    want = 0.5 * (head.log_scale + 2.0 * torch.tanh(one[0, :, 1] / 2.0)).exp()
    assert torch.allclose(s.mean(0), one[0, :, 0], atol=0.03)
    assert torch.allclose(s.std(0), want, rtol=0.03)


def test_auto_decoder_variance_depends_on_z_on_continuous_data_only(digits, binary_digits):
    torch.manual_seed(0)
    m = build_model("vae", DataSpec("vec", (4,), None), {"hidden": 16, "latent": 2})
    assert m.decoder_kind == "conditional-gaussian"
    params = m.decoder_params(torch.randn(64, 2))
    sigma = m.likelihood.log_std(params).exp()  # (64, 4): one sigma per example and dimension
    assert sigma.std(0).min() > 0  # differs across codes z
    # the per-dimension choice stays available and keeps one variance for every z
    g = build_model("vae", DataSpec("vec", (4,), None), {"hidden": 16, "latent": 2, "decoder": "gaussian"})
    assert g.decoder_kind == "gaussian" and g.likelihood.params_per_dim == 1
    # discrete data keep their discrete heads
    assert build_model("vae", digits.spec, {"channels": 8}).decoder_kind == "logistic"
    assert build_model("vae", binary_digits.spec, {"channels": 8}).decoder_kind == "bernoulli"


def test_iwae_bound_below_known_log_p_and_tightening():
    """x = W z + b + N(0, diag sigma^2) built into the default head (offsets a(z) = 0): log p(x) is
    N(x; b, W W^T + diag sigma^2).  With an encoder twice as wide as the true posterior, IWAE_k < log p
    for every k and the gap shrinks with k."""
    d, latent = 5, 2
    g = torch.Generator().manual_seed(0)
    m = build_model("vae", DataSpec("lin", (d,), None), {"latent": latent, "depth": 0, "arch": "mlp",
                                                         "standardize": False}).double()
    assert m.decoder_kind == "conditional-gaussian"
    w = torch.randn(d, latent, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    sigma = 0.3 + torch.rand(d, generator=g, dtype=torch.float64)
    prec = torch.eye(latent, dtype=torch.float64) + w.T @ torch.diag(sigma**-2) @ w
    cov = torch.linalg.inv(prec)
    a = cov @ w.T @ torch.diag(sigma**-2)
    with torch.no_grad():
        out = m.decoder.out  # rows interleave (mean_d, offset_d): params reshape to (d, 2)
        out.weight.zero_()
        out.bias.zero_()
        out.weight[0::2] = w
        out.bias[0::2] = b
        m.likelihood.log_scale.copy_(sigma.log())
        m.encoder.out.weight.zero_()
        m.encoder.out.weight[:latent] = a
        m.encoder.out.bias.zero_()
        m.encoder.out.bias[:latent] = -a @ b
        m.encoder.out.bias[latent:] = (2 * cov.diagonal().sqrt()).log()
    x = torch.randn(64, d, dtype=torch.float64, generator=g) * 2
    exact = torch.distributions.MultivariateNormal(b, covariance_matrix=w @ w.T + torch.diag(sigma**2)).log_prob(x)
    with torch.no_grad():
        torch.manual_seed(1)
        gaps = {k: (exact - m.log_prob(x, k=k)).mean().item() for k in (1, 10, 1000)}
        z = torch.randn(200, latent, dtype=torch.float64)
        # the modulation is off, so the variance is the same for every z: exactly sigma
        assert torch.allclose(m.likelihood.log_std(m.decoder_params(z)).exp(), sigma.expand(200, d))
    assert gaps[1] > gaps[10] > gaps[1000] > -0.02  # a bound (up to Monte Carlo noise), tightening with k
    assert gaps[1000] < 0.2 * gaps[1]
    assert math.isfinite(gaps[1])
