"""BiGAN / ALI: the pairs D sees, which player each loss reaches, the latent-model protocol,
save/load, and a short game that makes E invert G."""

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.models.adversarial.bigan import BiGAN
from deepgen.models.adversarial.gan import GAN
from deepgen.models.latent.base import LatentModel
from deepgen.models.players import check_players
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets.joint import ConvJointDiscriminator, MLPJointDiscriminator
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

VEC = DataSpec("toy", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)
SMALL = {"hidden": 16, "latent": 4}


def digit_batch(n=8):
    return torch.randint(0, 17, (n, 1, 8, 8)).float()


def test_registered_as_implicit_adversarial_latent_model():
    model = build_model("bigan", DIGITS, SMALL)
    assert isinstance(model, BiGAN) and isinstance(model, GAN) and isinstance(model, LatentModel)
    assert (model.name, model.family, model.density, model.objective) == ("bigan", "implicit", "none", "adversarial")
    assert {"encode", "traverse", "conditional", "truncation"} == set(model.capabilities)
    assert isinstance(model.discriminator, ConvJointDiscriminator)
    assert isinstance(build_model("bigan", VEC, SMALL).discriminator, MLPJointDiscriminator)
    assert [p.name for p in model.players()] == ["discriminator", "encoder_generator"]
    check_players(model.players())  # disjoint, non-empty
    eg = {id(p) for p in model.encoder_generator_parameters()}
    assert eg == {id(p) for p in model.generator.parameters()} | {id(p) for p in model.encoder.parameters()}
    with pytest.raises(DensityError, match="implicit"):
        model.log_prob(digit_batch())


def test_discriminator_sees_x_with_e_of_x_and_g_of_z_with_z():
    model = build_model("bigan", DIGITS, {**SMALL, "dropout": 0.0}).eval()
    seen = []
    forward = model.discriminator.forward
    model.discriminator.forward = lambda x, z, c=None: seen.append((x, z)) or forward(x, z, c)
    x = digit_batch()
    shared = model.adversarial_forward(x)
    out = model.player_loss("discriminator", x, shared)
    (x_real, z_real), (x_fake, z_fake) = seen
    assert torch.equal(x_real, (x + 0.5) / 17) and torch.allclose(z_real, model.encode(x))  # eval: cell centres
    assert torch.equal(z_fake, shared["z"]) and torch.allclose(x_fake, model.generate(shared["z"]))
    assert not z_real.requires_grad and not x_fake.requires_grad  # E(x) and G(z) detached for D
    real, fake = forward(x_real, z_real).squeeze(-1), forward(x_fake, z_fake).squeeze(-1)
    assert out["loss"].item() == pytest.approx((F.softplus(-real).mean() + F.softplus(fake).mean()).item(), rel=1e-6)
    assert out["d_real"].item() == pytest.approx(torch.sigmoid(real).mean().item(), rel=1e-6)
    # E and G: the inverted labels, -log D(G(z), z) - log(1 - D(x, E(x))), through the same pairs
    seen.clear()
    eg = model.player_loss("encoder_generator", x, shared)["loss"]
    assert len(seen) == 2 and seen[0][1].requires_grad and seen[1][0].requires_grad
    assert eg.item() == pytest.approx((F.softplus(-fake).mean() + F.softplus(real).mean()).item(), rel=1e-6)
    minimax = build_model("bigan", DIGITS, {**SMALL, "dropout": 0.0, "loss": "minimax"}).eval()
    sh = minimax.adversarial_forward(x)
    assert minimax.player_loss("encoder_generator", x, sh)["loss"].item() == pytest.approx(
        -minimax.player_loss("discriminator", x, sh)["loss"].item(), rel=1e-6)


@pytest.mark.parametrize("spec", [VEC, DIGITS])
def test_losses_reach_only_the_right_player(spec):
    model = build_model("bigan", spec, SMALL)
    batch = torch.randn(8, 2) if spec is VEC else digit_batch()
    shared = model.adversarial_forward(batch)
    model.player_loss("discriminator", batch, shared)["loss"].backward()
    assert all(p.grad is None for p in model.encoder_generator_parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator_parameters())
    model.zero_grad(set_to_none=True)
    model.player_loss("encoder_generator", batch, shared)["loss"].backward()
    for net in (model.encoder, model.generator):  # both E and G get a signal from the one loss
        assert all(p.grad is not None for p in net.parameters())
        assert sum(p.grad.abs().sum() for p in net.parameters()) > 0
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("generator", batch, shared)


def test_latent_protocol_on_discrete_images():
    model = build_model("bigan", DIGITS, SMALL).eval()
    x = digit_batch(5)
    z = model.encode(x)
    assert z.shape == (5, 4)
    g = model.decode(z, mean=True)
    assert torch.allclose(g, (model.generate(z) * 17 - 0.5).clamp(0, 16)) and 0 <= g.min() and g.max() <= 16
    assert torch.equal(model.decode(z), torch.floor(model.generate(z) * 17).clamp(0, 16))
    assert torch.equal(model.reconstruct(x), g)
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, 1, 8, 8)
    assert model.traverse(x[0], torch.linspace(-1, 1, 3)).shape == (4, 3, 1, 8, 8)
    assert model.features(x).shape == (5, 16)  # D's joint hidden layer on (x, E(x))


def test_gaussian_encoder_draws_codes_and_encodes_the_mean():
    model = build_model("bigan", VEC, {**SMALL, "encoder": "gaussian"})
    x = torch.randn(6, 2)
    mu = model.encode(x)
    assert mu.shape == (6, 4) and torch.equal(mu, model.encode(x))
    a = model.adversarial_forward(x)["code"]
    b = model.adversarial_forward(x)["code"]
    assert not torch.equal(a, b) and a.requires_grad
    # the draw is mu + sigma eps: its mean over many draws is mu
    draws = model.encode_scaled(model.to_d_scale(x).repeat(4000, 1)).reshape(4000, 6, 4)
    assert torch.allclose(draws.mean(0), mu, atol=0.1) and draws.std(0).min() > 0.1


def test_conditional_bigan_uses_the_context_everywhere():
    model = build_model("bigan", DIGITS, {**SMALL, "context_features": 3, "dropout": 0.0}).eval()
    c = torch.eye(3)[torch.tensor([0, 1])]
    x = digit_batch(1).expand(2, -1, -1, -1)
    z = model.encode(x, c)
    assert not torch.allclose(z[0], z[1])  # same image, different context
    assert not torch.allclose(model.decode(torch.zeros(2, 4), c, mean=True)[0], model.decode(torch.zeros(2, 4), c, mean=True)[1])
    logits = model.discriminate(x / 16, torch.zeros(2, 4), c)
    assert logits[0] != logits[1]
    with pytest.raises(ConfigError, match="conditional"):
        model.encode(x)
    out = model.loss((x, c))
    assert torch.isfinite(out["loss"]) and not out["loss"].requires_grad and set(out) == {"loss", "eg_loss", "d_real", "d_fake"}


@pytest.mark.parametrize("spec", [VEC, DIGITS])
def test_save_load_reproduces_encode_and_samples(tmp_path, spec):
    model = build_model("bigan", spec, SMALL)
    model.fit_preprocessing(torch.randn(50, 2) * 3 + 1) if spec is VEC else None
    model.train()
    for _ in range(3):  # move BatchNorm running statistics away from their initial values
        model.generate(model.noise(32))
    model.eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, BiGAN) and not loaded.training
    x = torch.randn(7, 2) if spec is VEC else digit_batch(7)
    assert torch.equal(model.encode(x), loaded.encode(x))
    torch.manual_seed(7)
    a = model.sample(20)
    torch.manual_seed(7)
    assert torch.equal(a, loaded.sample(20))


@pytest.mark.parametrize("params, match", [
    ({"encoder": "vae"}, "encoder"), ({"loss": "wasserstein"}, "loss"), ({"dropout": 1.0}, "dropout"),
    ({"latent": 0}, "latent"), ({"arch": "resnet"}, "arch"), ({"d_steps": 0}, "d_steps"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("bigan", VEC, params)


def test_bad_data_raise_config_error():
    with pytest.raises(ConfigError, match="needs images"):
        build_model("bigan", VEC, {"arch": "conv"})
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_model("bigan", DataSpec("img", (1, 10, 10), levels=2), {})
    assert build_model("bigan", DataSpec("img", (1, 10, 10), levels=2), {**SMALL, "arch": "mlp"}).sample(3).shape == \
        (3, 1, 10, 10)


def test_train_defaults_are_merged_under_user_fields():
    cfg = TrainConfig.from_dict({"model": "bigan", "data": "digits"})
    assert (cfg.betas, cfg.lr_schedule) == ([0.5, 0.999], "cosine")
    assert cfg.lr == BiGAN.train_defaults["lr"]


# --- the game -------------------------------------------------------------------------

def fit(model, x, steps, batch=64, **cfg_fields):
    cfg = TrainConfig.from_dict({"model": "bigan", "data": "moons", "steps": steps, "batch_size": batch,
                                 "lr_schedule": "constant", **cfg_fields})
    module = AdversarialModule(model, cfg)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0, deterministic=True)
    trainer.fit(module, DataLoader(TensorDataset(x), batch_size=batch, shuffle=True, drop_last=True))
    return module


def test_each_update_moves_only_its_players_parameters():
    model = build_model("bigan", VEC, {**SMALL, "d_steps": 2})
    nets = {"D": model.discriminator, "E": model.encoder, "G": model.generator}
    events = []
    original = AdversarialModule.configure_optimizers

    def recording(self):
        opts, scheds = original(self)
        for name, opt in zip(("D", "EG"), opts):
            def pre(opt, args, kwargs):
                self._before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}

            def post(opt, args, kwargs, name=name):
                events.append((name, {k for k, n in nets.items()
                                      if any(not torch.equal(a, p) for a, p in zip(self._before[k], n.parameters()))}))
            opt.register_step_pre_hook(pre)
            opt.register_step_post_hook(post)
        return opts, scheds

    AdversarialModule.configure_optimizers = recording
    try:
        fit(model, torch.randn(64, 2), steps=2, batch=16)
    finally:
        AdversarialModule.configure_optimizers = original
    assert [name for name, _ in events] == ["D", "D", "EG"] * 2
    assert all(changed == ({"D"} if name == "D" else {"E", "G"}) for name, changed in events)


def test_one_update_of_each_player_improves_its_own_loss():
    # a sign error or a wrong pairing in either loss would make the player's own step worsen it
    model = build_model("bigan", DIGITS, {**SMALL, "dropout": 0.0})
    x = digit_batch(32)

    def losses():
        torch.manual_seed(5)  # the same z both times
        shared = model.adversarial_forward(x)
        return (model.player_loss("discriminator", x, shared)["loss"],
                model.player_loss("encoder_generator", x, shared)["loss"])

    for k, params in ((0, model.discriminator_parameters()), (1, model.encoder_generator_parameters())):
        before = losses()[k]
        grads = torch.autograd.grad(before, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= 1e-3 * g / (g.norm() + 1e-12)
        assert losses()[k] < before - 1e-6


def errors(model, x, n=2000):
    """(mean ||E(G(z)) - z||^2 / latent over z ~ N(0, I), mean ||G(E(x)) - x||^2 / D on D's scale)."""
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        z = model.noise(n)
        codes = ((model.encode_scaled(model.generate(z)) - z) ** 2).mean().item()
        u = model.to_d_scale(x)
        data = ((model.generate(model.encode_scaled(u)) - u) ** 2).mean().item()
    model.train()
    return codes, data


@pytest.mark.slow
def test_a_short_game_makes_the_encoder_invert_the_generator():
    # data: a 1-D log-normal, a 1-D code.  Nothing asks E(G(z)) = z or G(E(x)) = x but the game on pairs:
    # if (x, E(x)) and (G(z), z) have one joint law, E and G invert each other (the D that compares pairs is
    # what a broken wiring would lose).  1-D, because the prior N(0, I) of a 2-D code is invariant under
    # rotations: G(R z) fits the data as well as G(z), the game drifts along that flat direction while E
    # chases G, and the 2-D errors oscillate (a correlated 2-D Gaussian, 2000 steps, seeds 0-3: code error
    # x 0.12 to x 0.80 of the untrained one).  In 1-D the prior's only symmetry is z -> -z; 3000 steps, seeds
    # 0-3: code error x 0.012 to x 0.15, data error x 0.006 to x 0.14.
    torch.manual_seed(0)
    x = torch.exp(0.5 * torch.randn(512, 1))
    model = build_model("bigan", DataSpec("toy", (1,)), {"hidden": 32, "latent": 1, "dropout": 0.0})
    model.fit_preprocessing(x)
    before = errors(model, x)
    fit(model, x, steps=3000, lr=1e-3, lr_schedule="cosine")
    after = errors(model, x)
    assert after[0] < 0.3 * before[0] and after[1] < 0.3 * before[1], (before, after)


def test_joint_discriminator_sees_the_batch_through_minibatch_features_by_default_on_images():
    # the fix for G's collapse on digits: with minibatch features, D's logit of a pair depends on the other x
    # of its batch (a collapsed batch of G(z) looks collapsed); without, each pair is judged alone
    x, z = torch.rand(4, 1, 8, 8), torch.randn(4, SMALL["latent"])
    for params, batch_aware in (({}, True), ({"minibatch_discrimination": 0}, False)):
        model = build_model("bigan", DIGITS, {**SMALL, "dropout": 0.0, **params}).eval()
        other = x.clone()
        other[1:] = torch.rand(3, 1, 8, 8)
        with torch.no_grad():
            same = torch.allclose(model.discriminate(x, z)[0], model.discriminate(other, z)[0])
        assert same != batch_aware, params
    assert build_model("bigan", DIGITS, SMALL).discriminator.minibatch.kernels == 16
    assert build_model("bigan", VEC, SMALL).discriminator.minibatch is None
    vec = build_model("bigan", VEC, {**SMALL, "minibatch_discrimination": 3})
    assert vec.discriminator.minibatch.kernels == 3 and vec.discriminate(torch.randn(5, 2), torch.randn(5, 4)).shape == (5,)


def test_a_run_saved_before_minibatch_features_existed_loads_without_them(tmp_path):
    # its config.yaml lacks the key (a run records every hyper-parameter), so it gets the value that rebuilds
    # it (params_added_later: 0), not today's default (16 for images); a new run keeps what it recorded
    import yaml

    from deepgen.models.pretrained import load_model, save_model

    old = build_model("bigan", DIGITS, {**SMALL, "minibatch_discrimination": 0}).eval()
    save_model(old, tmp_path / "old")
    cfg_file = tmp_path / "old" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    del cfg["model_config"]["params"]["minibatch_discrimination"]
    cfg_file.write_text(yaml.safe_dump(cfg))
    loaded = load_model(tmp_path / "old")
    assert loaded.discriminator.minibatch is None
    z, x = torch.randn(3, SMALL["latent"]), digit_batch(3)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), old.decode(z)) and torch.equal(loaded.encode(x), old.encode(x))
    save_model(build_model("bigan", DIGITS, SMALL), tmp_path / "new")
    assert load_model(tmp_path / "new").discriminator.minibatch.kernels == 16
