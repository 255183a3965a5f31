"""VQ-VAE: the quantiser (nearest code, straight-through gradient, EMA update by hand, dead-code restarts),
the two training stages (stage 2 leaves the VQ-VAE bit-identical), the autoregressive prior over the code
grid, the bound, diagnostics, save/load and parameter validation."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets.vector_quantizer import VectorQuantizer, code_counts, perplexity

from conftest import same_under_seed

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"codes": 16, "code_dim": 4, "channels": 16, "depth": 1, "blocks": 0, "prior_channels": 16,
         "prior_blocks": 1, "prior_kernel": 3, "prior_dropout": 0.0}


def small(spec, **over):
    return build_model("vqvae", spec, {**SMALL, **over})


def train(m, x, steps, lr=3e-3, batch=64, weight_decay=0.0, context=None):
    opt = torch.optim.Adam(m.parameters(), lr=lr, weight_decay=weight_decay)
    m.train()
    for _ in range(steps):
        i = torch.randint(len(x), (batch,))
        b = x[i] if context is None else (x[i], context[i])
        out = m.loss(b)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return out


# --- the quantiser --------------------------------------------------------------------------

def test_nearest_code_is_the_argmin_distance():
    q = VectorQuantizer(10, 3)
    with torch.no_grad():
        q.codebook.copy_(torch.randn(10, 3))
    z = torch.randn(50, 3)
    brute = torch.cdist(z, q.codebook).argmin(1)
    assert torch.equal(q.nearest(z), brute)
    grid = torch.randn(2, 3, 4, 5)
    idx, z_q = q.quantize(grid)
    assert idx.shape == (2, 4, 5) and z_q.shape == grid.shape
    assert torch.equal(z_q[1, :, 2, 3], q.codebook[idx[1, 2, 3]])


def test_straight_through_gradient_reaches_the_encoder(digits):
    m = small(digits.spec, ema=False)
    out = m.loss(digits.train[:32])
    assert out["stage"].item() == 1
    out["loss"].backward()
    for name, module in [("encoder", m.encoder), ("decoder", m.decoder)]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name
    assert m.quantizer.codebook.grad is not None and m.quantizer.codebook.grad.abs().sum() > 0  # codebook term
    assert all(p.grad is None for p in m.prior.parameters())  # stage 1 does not train the prior
    # the reconstruction term alone reaches the encoder too (through z_e + sg(z_q - z_e), not the commitment)
    m.zero_grad()
    q = m.quantizer(m.encode_grid(digits.train[:32]))
    m.log_likelihood(digits.train[:32], q["z_st"]).sum().backward()
    assert m.encoder.net[0].weight.grad.abs().sum() > 0


def test_ema_update_matches_a_hand_computation():
    torch.manual_seed(3)
    k, d, g, eps = 4, 2, 0.5, 1e-5
    q = VectorQuantizer(k, d, ema=True, decay=g, eps=eps)
    count0, sum0 = q.ema_count.clone(), q.ema_sum.clone()
    z = torch.randn(7, d)
    idx = torch.tensor([0, 0, 1, 1, 1, 3, 0])
    q.ema_update(z, idx)
    # by hand, code by code
    n = [3.0, 3.0, 0.0, 1.0]
    s = [z[[0, 1, 6]].sum(0), z[[2, 3, 4]].sum(0), torch.zeros(d), z[5]]
    count = [g * count0[j] + (1 - g) * n[j] for j in range(k)]
    total = sum(count)
    for j in range(k):
        m_j = g * sum0[j] + (1 - g) * s[j]
        smoothed = (count[j] + eps) / (total + k * eps) * total
        assert torch.allclose(q.codebook[j], m_j / smoothed, atol=1e-6)
    # decay 0, no smoothing: a used code moves exactly to the mean of its vectors, an unused one stays
    q0 = VectorQuantizer(k, d, ema=True, decay=0.0, eps=0.0)
    before = q0.codebook.clone()
    q0.ema_update(z, idx)
    assert torch.allclose(q0.codebook[0], z[[0, 1, 6]].mean(0), atol=1e-6)
    assert torch.allclose(q0.codebook[1], z[[2, 3, 4]].mean(0), atol=1e-6)
    assert torch.allclose(q0.codebook[3], z[5], atol=1e-6)
    assert torch.equal(q0.codebook[2], before[2])


def test_usage_counts_and_perplexity():
    counts = code_counts(torch.tensor([[0, 0], [1, 3]]), 5)
    assert counts.tolist() == [2, 1, 0, 1, 0]
    assert perplexity(torch.ones(8)) == pytest.approx(8.0)
    assert perplexity(torch.tensor([5.0, 0, 0])) == pytest.approx(1.0)
    p = counts / counts.sum()
    assert perplexity(counts) == pytest.approx(math.exp(-(p[p > 0] * p[p > 0].log()).sum().item()))


def _bad_init(m):
    """Every code far from the encoder outputs (all nearly the same point): few codes win any vector."""
    q = m.quantizer
    with torch.no_grad():
        q.codebook.copy_(5.0 + 0.01 * torch.randn_like(q.codebook))
        q.ema_sum.copy_(q.codebook * q.ema_count[:, None])


def test_dead_codes_die_without_restarts_and_are_revived_with_them(digits):
    dead = {}
    for restarts in (False, True):
        torch.manual_seed(0)
        m = small(digits.spec, restarts=restarts, restart_after=3, vq_steps=1000)
        _bad_init(m)
        train(m, digits.train, 20, batch=32)
        dead[restarts] = m.diagnostics(digits.train)["dead_code_fraction"]
    assert dead[False] >= 0.75
    assert dead[True] <= 0.25


def test_restart_resets_unused_codes_to_recent_encoder_outputs():
    q = VectorQuantizer(6, 2, ema=True, restart_after=3)
    z = torch.randn(10, 2) + 100.0
    for _ in range(3):
        q.record_usage(torch.tensor([0, 1]))
    assert q.restart_dead(z) == 4
    for j in range(2, 6):  # each restarted code is one of the recent vectors
        assert (q.codebook[j] == z).all(1).any()
    assert q.unused.tolist() == [0] * 6
    assert q.restart_dead(z) == 0


# --- the prior and the two stages -----------------------------------------------------------

@pytest.mark.parametrize("prior_input", ["onehot", "scaled"])
def test_prior_is_autoregressive_over_the_code_grid(digits, prior_input):
    m = small(digits.spec, depth=1, prior_input=prior_input).eval()  # 4x4 code grid
    h, w = m.grid
    idx = torch.randint(m.codes, (2, h, w))
    inp = m._prior_input(idx).requires_grad_(True)
    assert inp.shape == (2, m.codes if prior_input == "onehot" else 1, h, w)
    logits = m.prior(inp)[:, 0]  # (B, K, h, w)
    for pos in range(h * w):
        i, j = divmod(pos, w)
        (g,) = torch.autograd.grad(logits[:, :, i, j].sum(), inp, retain_graph=True)
        g = g.abs().sum(1).flatten(1).sum(0)  # (h w,) in raster order, every input channel
        assert (g[pos:] == 0).all(), f"position {pos} sees codes at or after itself"
        if pos > 0:
            assert g[:pos].sum() > 0


def test_prior_reads_one_hot_codes_and_code_dropout_only_while_training(digits):
    m = small(digits.spec, prior_code_dropout=0.5)
    idx = torch.randint(m.codes, (64, *m.grid))
    m.eval()
    inp = m._prior_input(idx)
    assert torch.equal(inp.argmax(1), idx) and torch.equal(inp.sum(1), torch.ones(64, *m.grid))
    m.train()
    torch.manual_seed(0)
    inp = m._prior_input(idx)
    kept = inp.sum(1) > 0  # a blanked code is all zeros, a kept one its one-hot
    assert 0.4 < 1 - kept.double().mean().item() < 0.6
    assert torch.equal(inp.argmax(1)[kept], idx[kept]) and ((inp.sum(1) == 0) | kept).all()
    with torch.no_grad():  # eval: no blanking, the same bound every call
        m.eval()
        assert torch.equal(m.prior_log_prob(idx), m.prior_log_prob(idx))


def test_pixelcnn_in_channels_option():
    from deepgen.nets.pixelcnn import PixelCNNNet
    plain, wide = PixelCNNNet(1, 5, 8, 1, 3), PixelCNNNet(1, 5, 8, 1, 3, in_channels=5)
    assert [k for k, _ in plain.named_parameters()] == [k for k, _ in wide.named_parameters()]
    assert plain.first.weight.shape[1] == 1 and wide.first.weight.shape[1] == 5
    for bad in (0, 3):  # not a positive multiple of the 2 image channels
        with pytest.raises(ConfigError):
            PixelCNNNet(2, 5, 8, 1, 3, in_channels=bad)


def test_stage_two_leaves_encoder_codebook_and_decoder_bit_identical(digits):
    for ema in (True, False):
        torch.manual_seed(0)
        m = small(digits.spec, vq_steps=5, ema=ema, restart_after=1)
        train(m, digits.train, 5, weight_decay=1e-3)
        assert m.stage == 2 and int(m.train_steps) == 5
        frozen = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("prior.")
                  and k != "train_steps"}
        prior_before = {k: v.clone() for k, v in m.prior.state_dict().items()}
        out = train(m, digits.train, 4, weight_decay=1e-3)
        assert out["stage"].item() == 2 and int(m.train_steps) == 9
        after = m.state_dict()
        for k, v in frozen.items():
            assert torch.equal(after[k], v), f"stage 2 changed {k} (ema={ema})"
        assert any(not torch.equal(v, m.prior.state_dict()[k]) for k, v in prior_before.items())


def test_eval_calls_do_not_count_as_training_steps(digits):
    m = small(digits.spec, vq_steps=2).eval()
    m.loss(digits.train[:8])
    m.log_prob(digits.train[:8])
    assert int(m.train_steps) == 0 and m.stage == 1


# --- the bound ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["digits", "binary_digits"])
def test_log_prob_is_a_finite_nonpositive_deterministic_bound(data, request):
    ds = request.getfixturevalue(data)
    m = small(ds.spec, vq_steps=20)
    train(m, ds.train, 30)
    m.eval()
    x = ds.test[:64]
    with torch.no_grad():
        lp = m.log_prob(x)
        assert torch.isfinite(lp).all() and (lp <= 0).all()
        assert torch.equal(lp, m.log_prob(x))
        # the bound = log p(x | z_q) + log p_prior(k): each piece is a discrete log-probability
        idx, z_q = m.quantizer.quantize(m.encode_grid(x))
        rec, prior = m.log_likelihood(x, z_q), m.prior_log_prob(idx)
    assert torch.allclose(lp, rec + prior) and (rec <= 0).all() and (prior <= 0).all()


@pytest.mark.parametrize("prior_input,floor", [("onehot", 0.0), ("scaled", 0.0), ("onehot", 0.2)])
def test_prior_is_a_normalised_distribution_over_code_grids(digits, prior_input, floor):
    torch.manual_seed(0)
    m = small(digits.spec, depth=2, codes=3, prior_input=prior_input, prior_floor=floor).eval()  # 81 grids
    grids = torch.cartesian_prod(*[torch.arange(3)] * 4).reshape(-1, 2, 2)
    with torch.no_grad():
        for p in m.prior.out.parameters():  # sharp conditionals, so the floor matters
            p.mul_(50.0)
        logp = m.prior_log_prob(grids)
        total = torch.logsumexp(logp, 0)
    assert abs(total.item()) < 1e-5
    if floor:  # no code costs more than log(K / eps) nats
        assert (-logp <= 4 * math.log(3 / floor) + 1e-5).all()


def test_diagnostics_agree_with_log_prob(digits):
    m = small(digits.spec, vq_steps=20)
    train(m, digits.train, 25)
    m.eval()
    x = digits.val
    diag = m.diagnostics(x, batch_size=100)  # several batches, a ragged last one
    assert set(diag) == {"codebook_perplexity", "dead_code_fraction", "prior_bits_per_code", "reconstruction_nats"}
    with torch.no_grad():
        lp = m.log_prob(x).double().mean().item()
        counts = code_counts(m.code_indices(x), m.codes)
    positions = m.grid[0] * m.grid[1]
    assert diag["reconstruction_nats"] + diag["prior_bits_per_code"] * positions * math.log(2) == \
        pytest.approx(-lp, rel=1e-5)
    assert diag["codebook_perplexity"] == pytest.approx(perplexity(counts))
    assert diag["dead_code_fraction"] == pytest.approx((counts == 0).double().mean().item())
    assert 1.0 <= diag["codebook_perplexity"] <= m.codes


# --- generation, encoding, save/load -------------------------------------------------------------

def test_sample_reconstruct_and_interpolate(digits):
    m = small(digits.spec).eval()
    s = m.sample(5)
    assert s.shape == (5, 1, 8, 8)
    assert ((s >= 0) & (s <= 16) & (s == s.round())).all()
    assert torch.equal(m.sample(3, temperature=0), m.sample(3, temperature=0))
    x = digits.test[:3]
    z = m.encode(x)
    assert z.shape == (3, m.latent) and m.latent == 4 * 4 * 4
    with torch.no_grad():
        assert torch.allclose(m.reconstruct(x), m.decode(z, mean=True))
        path = m.interpolate(x[0], x[1], steps=4)
        assert path.shape == (4, 1, 8, 8)
        assert torch.allclose(path[0], m.reconstruct(x[:1])[0]) and torch.allclose(path[-1], m.reconstruct(x[1:2])[0])
        # decode quantises: a code nudged less than half the gap to any other code decodes the same
        assert torch.equal(m.decode(z, mean=True), m.decode(z + 1e-7, mean=True))


def test_save_load_reproduces_log_prob_samples_and_stage(digits, tmp_path):
    m = small(digits.spec, vq_steps=3)
    train(m, digits.train, 5)
    m.eval()
    save_model(m, tmp_path / "run")
    m2 = load_model(tmp_path / "run").eval()
    assert int(m2.train_steps) == 5 and m2.stage == 2
    x = digits.test[:32]
    with torch.no_grad():
        assert torch.equal(m.log_prob(x), m2.log_prob(x))
    assert same_under_seed(lambda: m.sample(6), lambda: m2.sample(6))
    assert torch.equal(m.quantizer.codebook, m2.quantizer.codebook)


def test_context_changes_the_model(digits):
    m = small(digits.spec, context_features=10).eval()
    x = digits.test[:4]
    c0 = torch.nn.functional.one_hot(torch.zeros(4, dtype=torch.long), 10).float()
    c1 = torch.nn.functional.one_hot(torch.ones(4, dtype=torch.long), 10).float()
    with torch.no_grad():
        assert not torch.equal(m.log_prob(x, c0), m.log_prob(x, c1))
        assert not torch.equal(m.encode(x, c0), m.encode(x, c1))
    assert m.sample(4, c0).shape == (4, 1, 8, 8)
    with pytest.raises(ConfigError):
        m.log_prob(x)


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{"codes": 1}, {"decay": 1.0}, {"prior_kernel": 4}, {"depth": 4},
                                    {"decoder": "gaussian"}, {"commitment": -1}, {"ema": "yes"},
                                    {"restart_after": 0}, {"prior_dropout": 1.0},
                                    {"prior_input": "index"}, {"prior_code_dropout": 1.0},
                                    {"prior_floor": 1.0}])
def test_bad_params_raise_config_error(digits, params):
    with pytest.raises(ConfigError):
        build_model("vqvae", digits.spec, params)


def test_vectors_are_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match=r"vqvae expects images \(C, H, W\).*\(5,\)"):
        build_model("vqvae", DataSpec("vec", (5,), None), {})
