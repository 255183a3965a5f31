"""GAN: losses against hand-computed values, architecture, data scale, save/load, and the adapter."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


from deepgen.data.spec import DataSpec
from deepgen.data.toy2d import MODES
from deepgen.errors import CheckpointError, ConfigError, DensityError
from deepgen.models.pretrained import load_model, save_model
from deepgen.losses import (
    ADVERSARIAL_LOSSES, discriminator_bce, generator_nonsaturating, generator_saturating, get_adversarial_loss,
)
from deepgen.nets import DCGANDiscriminator as ConvDiscriminator, DCGANGenerator as ConvGenerator
from deepgen.models.registry import build_model
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig

LOGITS = [0.0, 2.0, -1.0]


def log_sigmoid(l):
    return math.log(1.0 / (1.0 + math.exp(-l)))


def log_one_minus_sigmoid(l):
    return math.log(1.0 - 1.0 / (1.0 + math.exp(-l)))


# --- losses ---------------------------------------------------------------------------

def test_losses_match_hand_computed_values():
    t = torch.tensor(LOGITS, dtype=torch.float64)
    real, fake = t, -t
    d = -sum(map(log_sigmoid, LOGITS)) / 3 - sum(log_one_minus_sigmoid(-l) for l in LOGITS) / 3
    assert discriminator_bce(real, fake).item() == pytest.approx(d, rel=1e-12)
    assert generator_saturating(t).item() == pytest.approx(sum(map(log_one_minus_sigmoid, LOGITS)) / 3, rel=1e-12)
    assert generator_nonsaturating(t).item() == pytest.approx(-sum(map(log_sigmoid, LOGITS)) / 3, rel=1e-12)
    # at D = 1/2 everywhere the discriminator loss is 2 log 2 (the JSD = 0 optimum)
    assert discriminator_bce(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2))


def test_losses_are_finite_for_confident_discriminators():
    big = torch.tensor([-200.0, 200.0])
    for value in (discriminator_bce(big, -big), generator_saturating(big), generator_nonsaturating(big)):
        assert torch.isfinite(value)
    # -log D(G(z)) for a logit of -200 is 200 nats, not inf
    assert generator_nonsaturating(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def grad_of(loss_fn, logits):
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss_fn(x).backward()
    return x.grad


def test_saturating_gradient_vanishes_when_d_rejects_fakes_nonsaturating_does_not():
    # D(G(z)) = sigmoid(-20) ~ 2e-9: the discriminator confidently rejects the fakes.
    n = 3
    sat = grad_of(generator_saturating, [-20.0] * n)          # d/dl = -sigmoid(l) / n
    nonsat = grad_of(generator_nonsaturating, [-20.0] * n)    # d/dl = -(1 - sigmoid(l)) / n
    assert sat.abs().max() < 1e-8
    assert nonsat.tolist() == pytest.approx([-1.0 / n] * n, rel=1e-8)
    # both push the logit up (towards "real"), and where D is fooled the roles swap
    assert (sat < 0).all() and (nonsat < 0).all()
    assert grad_of(generator_nonsaturating, [20.0]).abs().item() < 1e-8
    assert grad_of(generator_saturating, [20.0]).item() == pytest.approx(-1.0)


def test_loss_registry():
    assert set(ADVERSARIAL_LOSSES) >= {"nonsaturating", "minimax"}
    assert get_adversarial_loss("minimax").generator is generator_saturating
    with pytest.raises(ConfigError, match="did you mean 'minimax'"):
        get_adversarial_loss("minimx")


# --- the model ------------------------------------------------------------------------

RING = DataSpec("ring8", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)


def test_registered_as_implicit_adversarial():
    model = build_model("gan", RING, {})
    assert (model.name, model.family, model.density, model.objective) == ("gan", "implicit", "none", "adversarial")
    assert model.config()["params"] == {"latent": 16, "hidden": 128, "depth": 2, "arch": "auto",
                                        "loss": "nonsaturating", "d_steps": 1, "label_smoothing": 0.0,
                                        "spectral_norm": "none", "virtual_batchnorm": False, "reference_size": 64,
                                        "conditional_bn": False, "minibatch_discrimination": None,
                                        "orthogonal_reg": 0.0, "ema": 0.0, "context_features": 0,
                                        "standardize": True}


def test_mlp_pair_for_vectors():
    model = build_model("gan", RING, {"depth": 3})
    leaky = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(leaky) == 3 and all(m.negative_slope == 0.2 for m in leaky)
    assert model.generate(model.noise(5)).shape == (5, 2)


def test_log_prob_raises_density_error():
    model = build_model("gan", RING, {})
    with pytest.raises(DensityError, match="implicit") as info:
        model.log_prob(torch.zeros(4, 2))
    assert "\n" not in str(info.value) and "samples" in str(info.value)


def test_train_defaults_are_merged_under_user_fields():
    cfg = TrainConfig.from_dict({"model": "gan", "data": "ring8"})
    assert (cfg.lr, cfg.betas, cfg.lr_schedule, cfg.warmup_steps) == (1e-3, [0.5, 0.999], "cosine", 0)
    assert TrainConfig.from_dict({"model": "gan", "data": "ring8", "lr": 2e-4}).lr == 2e-4


@pytest.mark.parametrize("params, match", [
    ({"loss": "wasserstein"}, "parameter 'loss'.*nonsaturating"), ({"arch": "resnet"}, "arch"), ({"d_steps": 0}, "d_steps"),
    ({"arch": "conv"}, "needs images"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("gan", RING, params)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (2, 12, 8)])
def test_dcgan_shapes(shape):
    spec = DataSpec("img", shape, levels=17)
    model = build_model("gan", spec, {"hidden": 16})
    assert isinstance(model.generator, ConvGenerator) and isinstance(model.discriminator, ConvDiscriminator)
    kinds = {type(m).__name__ for m in model.generator.modules()}
    assert {"ConvTranspose2d", "BatchNorm2d", "ReLU"} <= kinds
    assert "BatchNorm2d" not in {type(m).__name__ for m in model.discriminator.modules()}
    assert all(m.negative_slope == 0.2 for m in model.discriminator.modules() if isinstance(m, torch.nn.LeakyReLU))
    g = model.generate(model.noise(5))
    assert g.shape == (5, *shape) and 0 <= g.min() and g.max() <= 1
    assert model.discriminate(g).shape == (5,)
    x = model.sample(5)
    assert x.shape == (5, *shape) and torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 16


def test_conv_needs_sides_divisible_by_four():
    spec = DataSpec("img", (1, 10, 10), levels=2)
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_model("gan", spec, {})
    assert build_model("gan", spec, {"arch": "mlp"}).sample(3).shape == (3, 1, 10, 10)


def test_continuous_images_are_unbounded():
    model = build_model("gan", DataSpec("img", (1, 8, 8)), {"hidden": 16})
    with torch.no_grad():
        model.generator.body[-1].bias.fill_(5.0)  # a sigmoid could never reach 5
    assert model.eval().sample(4).min() > 1.0


def test_discrete_scale_round_trip():
    model = build_model("gan", DIGITS, {"hidden": 16}).eval()
    # D sees real data dequantized on G's [0, 1] scale: (x + 1/2) / L in eval mode, (x + u) / L in training
    x = torch.arange(17.0).reshape(1, 1, 1, 17).expand(1, 1, 8, 17)[..., :8]
    assert torch.allclose(model.to_d_scale(x), (x + 0.5) / 17)
    model.train()
    y = model.to_d_scale(torch.full((1000,), 16.0))
    assert y.min() >= 16 / 17 and y.max() < 1.0 and y.std() > 0.01
    y = model.to_d_scale(torch.arange(17.0).repeat(100))
    assert torch.equal(torch.floor(y * 17), torch.arange(17.0).repeat(100))  # floor(L y) recovers the level
    model.eval()
    torch.manual_seed(3)
    g = model.generate(model.noise(6))
    torch.manual_seed(3)
    assert torch.equal(model.sample(6), torch.floor(g * 17).clamp(0, 16))
    assert torch.equal(model.from_d_scale(torch.tensor([0.0, 0.999, 1.0, 0.5])), torch.tensor([0.0, 16.0, 16.0, 8.0]))


def test_temperature_scales_the_noise():
    model = build_model("gan", RING, {}).eval()
    x = model.sample(10, temperature=0.0)
    assert torch.allclose(x, x[:1].expand(10, 2))  # every z = 0
    assert model.sample(10, temperature=1.0).std(0).min() > 0


def test_conditional_gan_uses_context():
    model = build_model("gan", DIGITS, {"hidden": 16, "context_features": 3}).eval()
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    assert model.sample(4, context=c).shape == (4, 1, 8, 8)
    with pytest.raises(ConfigError, match="conditional"):
        model.sample(4)
    torch.manual_seed(0)
    a = model.generate(torch.zeros(2, 16), c[:2])
    assert not torch.allclose(a[0], a[1])  # same z, different context
    batch = (torch.zeros(4, 1, 8, 8), c)
    out = model.player_loss("discriminator", batch, model.adversarial_forward(batch))
    assert torch.isfinite(out["loss"])


def test_losses_reach_only_the_right_network():
    model = build_model("gan", RING, {})
    batch = torch.randn(8, 2)
    shared = model.adversarial_forward(batch)
    model.player_loss("discriminator", batch, shared)["loss"].backward()
    assert all(p.grad is None for p in model.generator_parameters())  # fakes detached for D
    assert all(p.grad is not None for p in model.discriminator_parameters())
    model.zero_grad(set_to_none=True)
    out = model.player_loss("generator", batch, shared)  # the same fakes, through D
    out["loss"].backward()
    assert all(p.grad is not None for p in model.generator_parameters())
    assert set(out) >= {"loss", "d_fake"}
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("critic", batch, shared)


def test_loss_reports_the_game_without_gradients():
    model = build_model("gan", RING, {})
    out = model.loss(torch.randn(16, 2))
    assert not out["loss"].requires_grad and set(out) >= {"loss", "g_loss", "d_real", "d_fake"}


@pytest.mark.parametrize("spec", [RING, DIGITS])
def test_save_load_reproduces_samples(tmp_path, spec):
    model = build_model("gan", spec, {"hidden": 16})
    model.train()
    for _ in range(3):  # move BatchNorm running statistics away from their initial values
        model.generate(model.noise(32))
    model.eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert not loaded.training
    torch.manual_seed(7)
    a = model.sample(20)
    torch.manual_seed(7)
    b = loaded.sample(20)
    assert torch.equal(a, b)


# --- the adapter ----------------------------------------------------------------------

def tiny_setup(d_steps=1, steps=3, grad_clip=0.0, data="ring8", **cfg_fields):
    centers, std = MODES["ring8"]
    g = torch.Generator().manual_seed(0)
    x = centers[torch.randint(8, (64,), generator=g)] + std * torch.randn(64, 2, generator=g)
    model = build_model("gan", DataSpec(data, (2,)), {"hidden": 8, "latent": 2, "d_steps": d_steps})
    cfg = TrainConfig.from_dict({"model": "gan", "data": data, "steps": steps, "batch_size": 8,
                                 "lr_schedule": "constant", "grad_clip": grad_clip, **cfg_fields})
    return model, cfg, x


def fit(module, x, steps, val_every=None, batch=8):
    trainer = pl.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0, deterministic=True,
        val_check_interval=val_every or steps, check_val_every_n_epoch=None,
        limit_val_batches=None if val_every else 0,
    )
    loader = DataLoader(TensorDataset(x), batch_size=batch, shuffle=True, drop_last=True)
    trainer.fit(module, loader, DataLoader(TensorDataset(x[:32]), batch_size=16))
    return trainer


class RecordingModule(AdversarialModule):
    """Records, for every optimizer step, which network it was and which parameters it changed."""

    def configure_optimizers(self):
        opts, scheds = super().configure_optimizers()
        self.events = []
        nets = {"D": self.model.discriminator_parameters(), "G": self.model.generator_parameters()}

        def snapshot():
            return {k: [p.detach().clone() for p in ps] for k, ps in nets.items()}

        for name, opt in zip("DG", opts):
            def pre(opt, args, kwargs):
                self._before = snapshot()

            def post(opt, args, kwargs, name=name):
                after = snapshot()
                changed = {k for k in nets if any(not torch.equal(a, b) for a, b in zip(self._before[k], after[k]))}
                # gradients as the step used them (clipping runs inside step(), after pre-hooks)
                norm = torch.norm(torch.stack([p.grad.norm() for g in opt.param_groups for p in g["params"]]))
                self.events.append((name, changed, float(norm)))

            opt.register_step_pre_hook(pre)
            opt.register_step_post_hook(post)
        return opts, scheds


def test_adapter_takes_d_steps_discriminator_steps_per_generator_step():
    model, cfg, x = tiny_setup(d_steps=3, steps=4)
    module = RecordingModule(model, cfg, step_offset=10)
    trainer = fit(module, x, steps=4)
    names = "".join(name for name, _, _ in module.events)
    assert names == "DDDG" * 4
    # D steps move only D's parameters, G steps only G's
    assert all(changed == {"D" if name == "D" else "G"} for name, changed, _ in module.events)
    # max_steps and global_step count generator steps
    assert trainer.global_step == 4 and module.absolute_step == 14
    assert module.lr_schedulers()[0].last_epoch == 4


def test_extra_discriminator_steps_see_fresh_real_batches():
    model, cfg, x = tiny_setup(d_steps=2, steps=2)
    seen = []
    original = model.player_loss

    def spy(name, batch, shared):
        if name == "discriminator":
            seen.append(batch[0].clone())
        return original(name, batch, shared)

    model.player_loss = spy
    fit(AdversarialModule(model, cfg), x, steps=2)
    assert len(seen) == 4 and all(len(b) == 8 for b in seen)
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[2], seen[3])


def test_adapter_clips_gradient_norms():
    model, cfg, x = tiny_setup(steps=3, grad_clip=1e-3)
    module = RecordingModule(model, cfg)
    fit(module, x, steps=3)
    assert all(norm <= 1e-3 * (1 + 1e-4) for _, _, norm in module.events)


def test_validation_logs_sample_metrics_and_does_not_change_training():
    runs = []
    for val_every in (None, 2):
        torch.manual_seed(0)
        model, cfg, x = tiny_setup(steps=6)
        trainer = fit(AdversarialModule(model, cfg), x, steps=6, val_every=val_every)
        runs.append((model, trainer))
    (plain, _), (validated, trainer) = runs
    for a, b in zip(plain.state_dict().values(), validated.state_dict().values()):
        assert torch.equal(a, b)
    metrics = trainer.callback_metrics
    assert {"val/energy_distance", "val/modes_covered", "val/high_quality_pct"} <= set(metrics)
    assert {"train/discriminator_loss", "train/generator_loss", "train/discriminator_d_real",
            "train/discriminator_d_fake", "train/generator_d_fake"} <= set(trainer.lightning_module.train_terms)


def test_resume_loads_both_optimizer_states():
    model, cfg, x = tiny_setup(steps=2)
    trainer = fit(AdversarialModule(model, cfg), x, steps=2)
    states = [opt.state_dict() for opt in trainer.optimizers]
    resumed = AdversarialModule(model, cfg, step_offset=2, optimizer_states=states)
    opts, _ = resumed.configure_optimizers()
    for opt, state in zip(opts, states):
        assert torch.equal(next(iter(opt.state_dict()["state"].values()))["exp_avg"],
                           next(iter(state["state"].values()))["exp_avg"])
    with pytest.raises(CheckpointError, match="2 players"):
        AdversarialModule(model, cfg, optimizer_states=states[:1]).configure_optimizers()


# --- one-sided label smoothing --------------------------------------------------------

def test_label_smoothing_targets_match_hand_computed_values():
    eps = 0.1
    t = torch.tensor(LOGITS, dtype=torch.float64)
    real, fake = t, -t
    # real targets 1 - eps: -(1 - eps) log D(x) - eps log(1 - D(x)); fake targets stay 0
    d_real = -sum((1 - eps) * log_sigmoid(l) + eps * log_one_minus_sigmoid(l) for l in LOGITS) / 3
    d_fake = -sum(log_one_minus_sigmoid(-l) for l in LOGITS) / 3
    assert discriminator_bce(real, fake, label_smoothing=eps).item() == pytest.approx(d_real + d_fake, rel=1e-12)
    assert discriminator_bce(real, fake, 0.0).item() == discriminator_bce(real, fake).item()
    # the loss on a real example is smallest where D(x) = 1 - eps, not at D(x) -> 1
    l = torch.tensor([math.log((1 - eps) / eps)], dtype=torch.float64, requires_grad=True)
    discriminator_bce(l, torch.tensor([-50.0], dtype=torch.float64), eps).backward()
    assert abs(l.grad.item()) < 1e-12
    # one-sided: the fake term does not depend on eps
    f = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    discriminator_bce(torch.zeros(1, dtype=torch.float64), f, eps).backward()
    assert f.grad.item() == pytest.approx(1 / (1 + math.exp(-0.3)))  # d softplus(l)/dl = sigmoid(l)


def test_gan_label_smoothing_parameter():
    assert build_model("gan", RING, {}).label_smoothing == 0.0
    model = build_model("gan", RING, {"label_smoothing": 0.2})
    assert model.config()["params"]["label_smoothing"] == 0.2
    batch = torch.randn(8, 2)
    shared = model.adversarial_forward(batch)
    real_logits = model.discriminate(shared["real"])
    fake_logits = model.discriminate(shared["fake"].detach())
    out = model.player_loss("discriminator", batch, shared)
    assert out["loss"].item() == pytest.approx(discriminator_bce(real_logits, fake_logits, 0.2).item(), rel=1e-6)
    assert out["loss"].item() != pytest.approx(discriminator_bce(real_logits, fake_logits).item(), rel=1e-6)
    # the generator's loss is not smoothed
    g = model.player_loss("generator", batch, shared)["loss"]
    assert g.item() == pytest.approx(generator_nonsaturating(model.discriminate(shared["fake"])).item(), rel=1e-6)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="label_smoothing"):
            build_model("gan", RING, {"label_smoothing": bad})
