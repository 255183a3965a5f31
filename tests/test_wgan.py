"""WGAN and WGAN-GP: Wasserstein losses and the gradient penalty against hand-computed values,
weight clipping, players and optimizers, save/load, and a short training run."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data.spec import DataSpec
from deepgen.data.toy2d import MODES
from deepgen.errors import ConfigError, DensityError
from deepgen.evaluation.sample_metrics import energy_distance
from deepgen.losses.adversarial import critic_wasserstein, generator_wasserstein, gradient_penalty, interpolate
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

RING = DataSpec("ring8", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)


# --- losses ---------------------------------------------------------------------------

def test_wasserstein_losses_match_hand_computed_values():
    real = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)  # mean 3
    fake = torch.tensor([-1.0, 0.5], dtype=torch.float64)      # mean -0.25
    assert critic_wasserstein(real, fake).item() == pytest.approx(-0.25 - 3.0)
    assert generator_wasserstein(fake).item() == pytest.approx(0.25)
    # no sigmoid: the generator's gradient is -1/B per score whatever the score (no saturation)
    x = torch.tensor([-1e4, 0.0, 1e4], requires_grad=True)
    generator_wasserstein(x).backward()
    assert x.grad.tolist() == pytest.approx([-1 / 3] * 3)


def test_interpolate_uses_one_alpha_per_example():
    real = torch.ones(2, 1, 2, 2)
    fake = torch.zeros(2, 1, 2, 2)
    x_hat = interpolate(real, fake, torch.tensor([0.25, 1.0]))
    assert torch.equal(x_hat[0], torch.full((1, 2, 2), 0.25)) and torch.equal(x_hat[1], torch.ones(1, 2, 2))


def test_gradient_penalty_of_a_linear_critic():
    # f(x) = w . x has gradient w everywhere: P = (||w|| - 1)^2, and dP/dw = 2 (||w|| - 1) w / ||w||
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    points = torch.randn(7, 2, dtype=torch.float64)
    gp, norms = gradient_penalty(lambda x: x @ w, points)
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2) and norms.tolist() == pytest.approx([5.0] * 7)
    gp.backward()
    assert w.grad.tolist() == pytest.approx([2 * 4.0 * 3 / 5, 2 * 4.0 * 4 / 5])


def test_gradient_penalty_norms_are_per_example():
    # f(x) = 1/2 ||x||^2: grad at x_i is x_i, so the norms are ||x_i||, not a norm over the batch
    points = torch.tensor([[3.0, 4.0], [0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    gp, norms = gradient_penalty(lambda x: 0.5 * (x ** 2).sum(1), points)
    assert norms.tolist() == pytest.approx([5.0, 0.5, 0.0])
    assert gp.item() == pytest.approx((16.0 + 0.25 + 1.0) / 3)
    # images: one norm over all of an example's features
    img = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64)
    _, norms = gradient_penalty(lambda x: 0.5 * (x ** 2).flatten(1).sum(1), img)
    assert norms.tolist() == pytest.approx([1.0, 1.0])


def test_gradient_penalty_works_under_no_grad_and_ignores_the_points_graph():
    w = torch.tensor([0.6, 0.8], requires_grad=True)
    src = torch.randn(4, 2, requires_grad=True)
    with torch.no_grad():
        gp, _ = gradient_penalty(lambda x: x @ w, src * 2)
    assert gp.item() == pytest.approx(0.0, abs=1e-12)  # ||w|| = 1
    gp, _ = gradient_penalty(lambda x: x @ w, src * 2)
    gp.backward()
    assert src.grad is None  # the penalty trains the critic only


# --- the models -----------------------------------------------------------------------

@pytest.mark.parametrize("name, extra", [("wgan", {"clip": 0.01}), ("wgan-gp", {"penalty": 10.0})])
def test_registered_with_their_own_parameters(name, extra):
    model = build_model(name, RING, {})
    assert (model.name, model.family, model.density, model.objective) == (name, "implicit", "none", "adversarial")
    assert model.config()["params"] == {"latent": 16, "hidden": 128, "depth": 2, "arch": "auto", "n_critic": 5,
                                        **extra, "context_features": 0, "standardize": True}
    with pytest.raises(DensityError, match="implicit"):
        model.log_prob(torch.zeros(2, 2))


@pytest.mark.parametrize("name, params, match", [
    ("wgan", {"clip": 0.0}, "clip"), ("wgan", {"n_critic": 0}, "n_critic"), ("wgan", {"loss": "minimax"}, "loss"),
    ("wgan", {"penalty": 1.0}, "penalty"), ("wgan-gp", {"penalty": -1.0}, "penalty"),
    ("wgan-gp", {"clip": 0.01}, "clip"), ("wgan-gp", {"arch": "conv"}, "needs images"),
])
def test_bad_parameters_raise_config_error(name, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, RING, params)


def test_train_defaults():
    cfg = TrainConfig.from_dict({"model": "wgan-gp", "data": "ring8"})
    assert cfg.betas == [0.0, 0.9] and cfg.grad_clip == 0.0
    assert TrainConfig.from_dict({"model": "wgan", "data": "ring8"}).grad_clip == 0.0


def test_wgan_critic_has_no_sigmoid_and_losses_match():
    torch.manual_seed(0)
    model = build_model("wgan", RING, {"hidden": 8})
    batch = torch.randn(16, 2)
    shared = model.adversarial_forward(batch)
    f_real = model.discriminate(shared["real"])
    f_fake = model.discriminate(shared["fake"])
    out = model.player_loss("critic", batch, shared)
    assert out["loss"].item() == pytest.approx((f_fake.mean() - f_real.mean()).item(), rel=1e-6)
    assert out["wasserstein"].item() == pytest.approx(-out["loss"].item())
    g = model.player_loss("generator", batch, shared)
    assert g["loss"].item() == pytest.approx(-f_fake.mean().item(), rel=1e-6)
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("discriminator", batch, shared)


def test_wgan_gp_critic_loss_adds_the_penalty_on_interpolates():
    model = build_model("wgan-gp", RING, {"hidden": 8, "penalty": 3.0})
    batch = torch.randn(16, 2)
    shared = model.adversarial_forward(batch)
    real, fake = shared["real"], shared["fake"].detach()
    torch.manual_seed(5)
    out = model.critic_loss(real, fake, None)
    torch.manual_seed(5)
    w = critic_wasserstein(model.discriminate(real), model.discriminate(fake))
    alpha = torch.rand(16)
    gp, norms = gradient_penalty(model.discriminate, alpha[:, None] * real + (1 - alpha[:, None]) * fake)
    assert out["loss"].item() == pytest.approx((w + 3.0 * gp).item(), rel=1e-6)
    assert out["gradient_penalty"].item() == pytest.approx(gp.item(), rel=1e-6)
    assert out["grad_norm"].item() == pytest.approx(norms.mean().item(), rel=1e-6)
    # penalty 0 is the plain Wasserstein critic
    model.penalty = 0.0
    assert model.critic_loss(real, fake, None)["loss"].item() == pytest.approx(w.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
def test_losses_reach_only_the_right_network(name):
    model = build_model(name, RING, {"hidden": 8})
    batch = torch.randn(8, 2)
    shared = model.adversarial_forward(batch)
    model.player_loss("critic", batch, shared)["loss"].backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.discriminator_parameters())
    model.zero_grad(set_to_none=True)
    model.player_loss("generator", batch, shared)["loss"].backward()
    assert all(p.grad is not None for p in model.generator_parameters())
    out = model.loss(batch)
    assert not any(v.requires_grad for v in out.values()) and {"loss", "g_loss", "wasserstein"} <= set(out)


def test_weight_clipping():
    model = build_model("wgan", RING, {"hidden": 8, "clip": 0.05})
    with torch.no_grad():
        for p in model.discriminator_parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    g_before = [p.clone() for p in model.generator_parameters()]
    model.clip_critic()
    for p in model.discriminator_parameters():
        expected = torch.linspace(-1, 1, p.numel()).view_as(p).clamp(-0.05, 0.05)
        assert torch.equal(p, expected)
    assert all(torch.equal(a, b) for a, b in zip(g_before, model.generator_parameters()))


def test_players_and_optimizers():
    wgan, gp = build_model("wgan", RING, {"n_critic": 3}), build_model("wgan-gp", RING, {"n_critic": 4})
    (c, g), (c2, g2) = wgan.players(), gp.players()
    assert (c.name, c.steps, c.optimizer, g.name, g.steps, g.optimizer) == ("critic", 3, "rmsprop", "generator", 1,
                                                                           "rmsprop")
    assert c.after_step is not None and c2.after_step is None
    assert (c2.steps, c2.optimizer, g2.optimizer) == (4, "adam", "adam")
    cfg = TrainConfig.from_dict({"model": "wgan-gp", "data": "ring8"})
    opts, _ = AdversarialModule(gp, cfg).configure_optimizers()
    assert all(o.param_groups[0]["betas"] == (0.0, 0.9) for o in opts)
    opts, _ = AdversarialModule(wgan, TrainConfig.from_dict({"model": "wgan", "data": "ring8"})).configure_optimizers()
    assert all(isinstance(o, torch.optim.RMSprop) for o in opts)


def ring_data(n=256):
    centers, std = MODES["ring8"]
    g = torch.Generator().manual_seed(0)
    return centers[torch.randint(8, (n,), generator=g)] + std * torch.randn(n, 2, generator=g)


def fit(model, cfg, x, batch=16):
    trainer = pl.Trainer(max_steps=cfg.steps, max_epochs=-1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    model.fit_preprocessing(x)
    trainer.fit(AdversarialModule(model, cfg), DataLoader(TensorDataset(x), batch_size=batch, shuffle=True,
                                                          drop_last=True))
    return trainer


def test_wgan_training_keeps_critic_weights_clipped_and_counts_generator_steps():
    model = build_model("wgan", RING, {"hidden": 8, "latent": 2, "n_critic": 3, "clip": 0.02})
    cfg = TrainConfig.from_dict({"model": "wgan", "data": "ring8", "steps": 4, "lr": 0.1, "seed": 0})
    g0 = [p.clone() for p in model.generator_parameters()]
    trainer = fit(model, cfg, ring_data())
    assert trainer.global_step == 4
    assert all(float(p.detach().abs().max()) <= 0.02 for p in model.discriminator_parameters())
    assert max(float(p.detach().abs().max()) for p in model.discriminator_parameters()) == pytest.approx(0.02)  # clipped
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator_parameters()))


def test_wgan_gp_on_images_and_context():
    model = build_model("wgan-gp", DIGITS, {"hidden": 8, "context_features": 3})
    assert "BatchNorm2d" not in {type(m).__name__ for m in model.discriminator.modules()}
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    batch = (torch.randint(0, 17, (4, 1, 8, 8)).float(), c)
    out = model.player_loss("critic", batch, model.adversarial_forward(batch))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]).item() and out["grad_norm"].item() > 0
    x = model.eval().sample(4, context=c)
    assert x.shape == (4, 1, 8, 8) and torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 16


@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
def test_save_load_reproduces_samples(tmp_path, name):
    model = build_model(name, RING, {"hidden": 16, "n_critic": 2}).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    torch.manual_seed(7)
    a = model.sample(20)
    torch.manual_seed(7)
    assert torch.equal(a, loaded.sample(20))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
def test_short_run_moves_samples_towards_the_data(name):
    torch.manual_seed(0)
    x = ring_data(2048)
    model = build_model(name, RING, {"hidden": 64, "latent": 4})
    model.fit_preprocessing(x)
    before = energy_distance(model.eval().sample(1000), x[:1000])
    cfg = TrainConfig.from_dict({"model": name, "data": "ring8", "steps": 300, "seed": 0})
    fit(model.train(), cfg, x, batch=128)
    torch.manual_seed(0)
    after = energy_distance(model.eval().sample(1000), x[:1000])
    assert after < 0.5 * before
