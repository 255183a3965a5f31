"""MAD-GAN: (k+1)-way losses against hand-computed values, the k = 1 identity with the GAN's BCE,
the k generators (shared or separate), sampling, gradients per player, save/load, a short run."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data.spec import DataSpec
from deepgen.data.toy2d import MODES
from deepgen.errors import ConfigError, DensityError
from deepgen.evaluation.sample_metrics import energy_distance
from deepgen.losses.adversarial import discriminator_bce, generator_nonsaturating
from deepgen.losses.multiclass import multiclass_discriminator_loss, multiclass_generator_loss, real_class_logit
from deepgen.models.adversarial.mad_gan import MADGAN
from deepgen.models.players import check_players
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.nets import DCGANDiscriminator, DCGANGenerator, FlatMLP
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

RING = DataSpec("ring8", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)


# --- losses ---------------------------------------------------------------------------

def neg_log_softmax(row, j):
    return math.log(sum(math.exp(v) for v in row)) - row[j]


def test_losses_match_hand_computed_values():
    # k = 2 generators: classes 0, 1 = generators, 2 = real
    real = [[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]]
    fake = [[1.0, 0.0, 0.0], [-2.0, 2.0, 1.0], [0.0, 0.0, 0.0]]
    labels = [0, 1, 1]
    d = (sum(neg_log_softmax(r, 2) for r in real) / 2
         + sum(neg_log_softmax(f, c) for f, c in zip(fake, labels)) / 3)
    g = sum(neg_log_softmax(f, 2) for f in fake) / 3
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    assert multiclass_discriminator_loss(t(real), t(fake), torch.tensor(labels)).item() == pytest.approx(d, rel=1e-12)
    assert multiclass_generator_loss(t(fake)).item() == pytest.approx(g, rel=1e-12)
    # uniform logits: -log(1/(k+1)) for both terms
    assert multiclass_discriminator_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])).item() \
        == pytest.approx(2 * math.log(3))
    # real-vs-any-generator logit: log D_{k+1} / (1 - D_{k+1})
    p = torch.softmax(t(real), 1)[:, 2]
    assert torch.allclose(real_class_logit(t(real)), torch.log(p / (1 - p)), atol=1e-12)


def test_k_equal_one_is_the_gan_bce_with_logit_l2_minus_l1():
    """With k = 1 the softmax over (l_1, l_2) is sigmoid(l_2 - l_1) for "real": the (k+1)-way loss is
    exactly the GAN's BCE (and G's loss its non-saturating loss) with the logit l_2 - l_1."""
    torch.manual_seed(0)
    real, fake = torch.randn(7, 2, dtype=torch.float64) * 3, torch.randn(5, 2, dtype=torch.float64) * 3
    lr, lf = real[:, 1] - real[:, 0], fake[:, 1] - fake[:, 0]
    assert multiclass_discriminator_loss(real, fake, torch.zeros(5, dtype=torch.long)).item() == pytest.approx(
        discriminator_bce(lr, lf).item(), rel=1e-12)
    assert multiclass_generator_loss(fake).item() == pytest.approx(generator_nonsaturating(lf).item(), rel=1e-12)
    assert torch.allclose(real_class_logit(real), lr)
    # adding a constant to every logit changes nothing (softmax parametrisation)
    assert multiclass_discriminator_loss(real + 5, fake - 2, torch.zeros(5, dtype=torch.long)).item() == pytest.approx(
        discriminator_bce(lr, lf).item(), rel=1e-12)


def test_losses_are_finite_and_gradients_do_not_saturate():
    big = torch.tensor([[300.0, -300.0, -300.0]], requires_grad=True)  # D sure the fake is generator 1's
    g = multiclass_generator_loss(big)
    assert g.item() == pytest.approx(600.0)
    g.backward()
    # d L_G / d l_real = -(1 - D_real) = -1: the generator still gets a signal
    assert big.grad[0, 2].item() == pytest.approx(-1.0)
    d = multiclass_discriminator_loss(-big.detach(), big.detach(), torch.tensor([1]))
    assert torch.isfinite(d)


# --- the model ------------------------------------------------------------------------

def test_registered_with_its_parameters():
    model = build_model("mad-gan", RING, {})
    assert isinstance(model, MADGAN)
    assert (model.name, model.family, model.density, model.objective) == ("mad-gan", "implicit", "none",
                                                                          "adversarial")
    params = model.config()["params"]
    assert set(params) == {"generators", "share", "fake_batch", "latent", "hidden", "depth", "arch", "d_steps",
                           "context_features", "standardize"}
    with pytest.raises(DensityError, match="implicit"):
        model.log_prob(torch.zeros(3, 2))


@pytest.mark.parametrize("params, match", [
    ({"generators": 1}, "generators"), ({"generators": 0}, "generators"), ({"fake_batch": "all"}, "fake_batch"),
    ({"arch": "conv"}, "needs images"), ({"d_steps": 0}, "d_steps"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("mad-gan", RING, params)


def test_direct_construction_refuses_one_generator():
    with pytest.raises(ConfigError, match="generators must be an integer >= 2"):
        MADGAN(RING, generators=1)


def test_train_defaults_are_merged_under_user_fields():
    defaults = MADGAN.train_defaults
    cfg = TrainConfig.from_dict({"model": "mad-gan", "data": "ring8"})
    assert all(getattr(cfg, k) == v for k, v in defaults.items())
    assert TrainConfig.from_dict({"model": "mad-gan", "data": "ring8", "lr": 2e-4}).lr == 2e-4


def test_networks_shared_and_separate():
    shared = build_model("mad-gan", RING, {"generators": 3, "hidden": 8, "latent": 4})
    assert isinstance(shared.generator, FlatMLP) and shared.generator.net.body[0].in_features == 4 + 3
    assert shared.discriminate(torch.zeros(5, 2)).shape == (5, 4)
    separate = build_model("mad-gan", RING, {"generators": 3, "hidden": 8, "latent": 4, "share": False})
    assert isinstance(separate.generator, torch.nn.ModuleList) and len(separate.generator) == 3
    assert all(net.net.body[0].in_features == 4 for net in separate.generator)
    conv = build_model("mad-gan", DIGITS, {"generators": 3, "hidden": 8})
    assert isinstance(conv.generator, DCGANGenerator) and isinstance(conv.discriminator, DCGANDiscriminator)
    assert conv.discriminate(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    conv_sep = build_model("mad-gan", DIGITS, {"generators": 2, "hidden": 8, "share": False})
    assert all(isinstance(net, DCGANGenerator) for net in conv_sep.generator)


@pytest.mark.parametrize("share", [True, False])
def test_generators_differ_and_sampling_draws_each_uniformly(share):
    k = 5
    model = build_model("mad-gan", RING, {"generators": k, "hidden": 16, "share": share}).eval()
    z = torch.randn(4, 16)
    outs = [model.generate(z, index=i) for i in range(k)]
    assert all(not torch.allclose(outs[0], o) for o in outs[1:])  # the index changes the output
    drawn = []
    original = model.generate
    model.generate = lambda z, context=None, index=None: (drawn.append(index), original(z, context, index))[1]
    model.sample(5000)
    counts = torch.bincount(drawn[0], minlength=k)
    assert (counts - 1000).abs().max() < 5 * math.sqrt(1000 * 0.8)  # multinomial, p = 1/5
    model.generate = original
    # sample(index=i) is G_i(z) for the same z
    torch.manual_seed(1)
    x = model.sample(6, index=2)
    torch.manual_seed(1)
    assert torch.allclose(x, model.from_model_space(model.generate(model.noise(6), index=2)))
    with pytest.raises(ConfigError, match="generator index"):
        model.sample(3, index=k)


@pytest.mark.parametrize("fake_batch", ["each", "split"])
def test_shared_pass_gives_every_generator_its_fakes(fake_batch):
    k, n = 3, 10
    model = build_model("mad-gan", RING, {"generators": k, "hidden": 8, "fake_batch": fake_batch})
    shared = model.adversarial_forward(torch.randn(n, 2))
    counts = torch.bincount(shared["index"], minlength=k)
    if fake_batch == "each":
        assert counts.tolist() == [n] * k and shared["fake"].shape == (k * n, 2)
    else:
        assert sorted(counts.tolist()) == [3, 3, 4] and shared["fake"].shape == (n, 2)


@pytest.mark.parametrize("share", [True, False])
def test_losses_reach_only_the_right_player(share):
    model = build_model("mad-gan", RING, {"generators": 3, "hidden": 8, "share": share})
    check_players(model.players())  # disjoint parameters
    batch = torch.randn(6, 2)
    shared = model.adversarial_forward(batch)
    out = model.player_loss("discriminator", batch, shared)
    assert set(out) == {"loss", "d_real", "d_fake", "generator_accuracy"}
    out["loss"].backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert all(p.grad is not None for p in model.discriminator_parameters())
    model.zero_grad(set_to_none=True)
    model.player_loss("generator", batch, shared)["loss"].backward(retain_graph=True)
    assert all(p.grad is not None for p in model.generator_parameters())
    if not share:  # the fakes of generator 1 alone reach G_1 alone
        model.zero_grad(set_to_none=True)
        rows = shared["index"] == 1
        multiclass_generator_loss(model.discriminate(shared["fake"][rows])).backward()
        for i, net in enumerate(model.generator):
            norm = sum(0.0 if p.grad is None else float(p.grad.abs().sum()) for p in net.parameters())
            assert (norm > 0) == (i == 1)
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("critic", batch, shared)


def test_loss_reports_the_game_without_gradients():
    out = build_model("mad-gan", RING, {"hidden": 8}).loss(torch.randn(8, 2))
    assert set(out) == {"loss", "g_loss", "d_real", "d_fake", "generator_accuracy"}
    assert not out["loss"].requires_grad and 0 <= out["generator_accuracy"] <= 1


@pytest.mark.parametrize("spec, share", [(DIGITS, True), (DIGITS, False), (RING, False)])
def test_context_changes_the_output(spec, share):
    model = build_model("mad-gan", spec, {"generators": 2, "hidden": 8, "share": share, "context_features": 3})
    model.eval()
    c = torch.eye(3)[torch.tensor([0, 1])]
    z = torch.zeros(1, 16).expand(2, 16)
    a = model.generate(z, c, index=0)
    assert not torch.allclose(a[0], a[1])  # same z and generator, different context
    with pytest.raises(ConfigError, match="conditional"):
        model.sample(2)
    batch = (torch.zeros(4, *spec.shape), torch.eye(3)[torch.tensor([0, 1, 2, 0])])
    shared = model.adversarial_forward(batch)
    assert torch.isfinite(model.player_loss("discriminator", batch, shared)["loss"])
    x = model.sample(4, context=batch[1])
    assert x.shape == (4, *spec.shape)
    if spec.levels is not None:
        assert torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 16


@pytest.mark.parametrize("spec, share", [(RING, True), (RING, False), (DIGITS, True), (DIGITS, False)])
def test_save_load_reproduces_samples(tmp_path, spec, share):
    model = build_model("mad-gan", spec, {"generators": 3, "hidden": 8, "share": share})
    if spec.is_image:  # move BatchNorm running statistics away from their initial values
        for _ in range(2):
            model.generate(model.noise(24), index=torch.arange(24) % 3)
    model.eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert type(loaded) is MADGAN and loaded.config() == model.config()
    torch.manual_seed(7)
    a = model.sample(30)
    torch.manual_seed(7)
    assert torch.equal(a, loaded.sample(30))


def ring_data(n=1024):
    centers, std = MODES["ring8"]
    g = torch.Generator().manual_seed(0)
    return centers[torch.randint(8, (n,), generator=g)] + std * torch.randn(n, 2, generator=g)


def fit(model, steps, x, batch):
    cfg = TrainConfig.from_dict({"model": "mad-gan", "data": "ring8", "steps": steps, "seed": 0})
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(AdversarialModule(model.train(), cfg),
                DataLoader(TensorDataset(x), batch_size=batch, shuffle=True, drop_last=True))
    return trainer


@pytest.mark.parametrize("share", [True, False])
def test_adapter_updates_both_players(share):
    model = build_model("mad-gan", RING, {"generators": 3, "hidden": 8, "latent": 2, "share": share})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert fit(model, 3, ring_data(64), 16).global_step == 3
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {n.split(".")[0] for n in moved} == {"generator", "discriminator"}
    if not share:  # every separate generator got its own fakes' gradient
        assert {n.split(".")[1] for n in moved if n.startswith("generator")} == {"0", "1", "2"}


@pytest.mark.slow
def test_short_run_beats_the_untrained_model():
    torch.manual_seed(0)
    x = ring_data(2048)
    model = build_model("mad-gan", RING, {"generators": 4, "hidden": 64, "latent": 4, "share": False})
    model.fit_preprocessing(x)
    torch.manual_seed(0)
    before = energy_distance(model.eval().sample(1000), x[:1000])
    fit(model, 500, x, 128)  # measured: 1.26 -> 0.35
    torch.manual_seed(0)
    after = energy_distance(model.eval().sample(1000), x[:1000])
    assert after < 0.5 * before


def test_each_generators_fakes_meet_the_discriminator_in_a_batch_the_size_of_the_real_one():
    # the conv D's minibatch features sum over the batch it sees: k B fakes in one call would differ from the B
    # real examples by batch size alone (what broke mad-gan on digits); each generator's B fakes go alone
    torch.manual_seed(0)
    model = build_model("mad-gan", DIGITS, {"hidden": 8, "latent": 4, "generators": 3}).eval()
    assert model.discriminator.minibatch is not None
    x = torch.randint(0, 17, (5, 1, 8, 8)).float()
    shared = model.adversarial_forward(x)
    assert len(shared["fake"]) == 15
    logits = model.discriminate_fakes(shared, detach=True)
    for i in range(3):
        alone = model.discriminate(shared["fake"][5 * i:5 * i + 5].detach())
        assert torch.allclose(logits[5 * i:5 * i + 5], alone, atol=1e-6)
    together = model.discriminate(shared["fake"].detach())
    assert not torch.allclose(logits, together, atol=1e-3)
