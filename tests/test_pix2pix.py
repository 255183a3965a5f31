"""pix2pix: the translator protocol, the conditional game (who gets which gradient), the L1-only baseline,
save/load, and a short fit on a paired task with a known map."""

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.registry import build_model, get_model_class
from deepgen.models.translation.pix2pix import Pix2Pix
from translation_checks import check_players_partition, check_protocol, check_save_load, fit_translator, gradient_owners

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = DataSpec("tiny", (1, 8, 8), 17)
SMALL = {"channels": 8, "d_channels": 8}


def levels(n=6, spec=IMAGES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, spec.levels, (n, *spec.shape), generator=g).float()


def test_registered_as_a_translator():
    cls = get_model_class("pix2pix")
    assert cls is Pix2Pix and cls.needs_pairs and not cls.bidirectional
    assert cls.capabilities == frozenset({"translate", "fit_data"})


@pytest.mark.parametrize("spec", [IMAGES, DataSpec("wide", (3, 16, 24), 256), DataSpec("vec", (2,), None)])
def test_protocol(spec):
    params = SMALL if spec.is_image else {"hidden": 16, "depth": 1}
    model = build_model("pix2pix", spec, params)
    a = levels(spec=spec) if spec.levels else torch.randn(6, *spec.shape)
    check_protocol(model, a)


def test_reverse_translation_is_refused():
    model = build_model("pix2pix", IMAGES, SMALL)
    with pytest.raises(ConfigError, match="A -> B only.*cyclegan"):
        model.translate(levels(), reverse=True)


def test_dropout_is_the_noise_in_training_and_off_in_translate():
    torch.manual_seed(0)
    model = build_model("pix2pix", IMAGES, SMALL).train()
    h = model.to_net(levels(), "A")
    assert not torch.equal(model.generate(h), model.generate(h))  # dropout active in training
    assert torch.equal(model.translate(levels()), model.translate(levels()))


def test_discriminator_judges_pairs():
    model = build_model("pix2pix", IMAGES, {**SMALL, "patch": 12}).eval()
    a, b = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    scores = model.discriminate(a, b)
    assert scores.shape == (4, 1, 4, 4)  # one score per patch: 12-pixel receptive field, grid 8 / 2
    assert model.discriminator.net[0].in_channels == 2  # the input's and the output's channels
    assert not torch.allclose(model.discriminate(torch.rand(4, 1, 8, 8), b), scores)  # D sees the input too


def test_player_losses_and_gradients():
    torch.manual_seed(0)
    model = build_model("pix2pix", IMAGES, SMALL)
    check_players_partition(model)
    assert [p.name for p in model.players()] == ["discriminator", "generator"]
    batch = (levels(8), levels(8, seed=1))
    shared = model.adversarial_forward(batch)
    d = model.player_loss("discriminator", batch, shared)
    assert gradient_owners(model, d["loss"], ["generator", "discriminator"]) == {"generator": False,
                                                                                  "discriminator": True}
    g = model.player_loss("generator", batch, shared)
    assert g["loss"].item() == pytest.approx(100 * g["l1"].item() + g["gan"].item(), rel=1e-5)
    # G's loss reaches G (D is frozen by the adapter during G's update)
    assert gradient_owners(model, g["loss"], ["generator"]) == {"generator": True}
    # the L1 term against the target on the networks' scale
    assert g["l1"].item() == pytest.approx((shared["fake"] - shared["b"]).abs().mean().item(), rel=1e-6)
    with pytest.raises(ConfigError, match="no player named 'critic'"):
        model.player_loss("critic", batch, shared)


def test_loss_reports_detached_figures():
    model = build_model("pix2pix", IMAGES, SMALL)
    out = model.loss((levels(8), levels(8, seed=1)))
    assert set(out) == {"loss", "l1", "gan", "d_loss", "d_real", "d_fake"}
    assert not any(v.requires_grad for v in out.values())


def test_gan_weight_zero_is_the_l1_only_unet():
    model = build_model("pix2pix", IMAGES, {**SMALL, "gan_weight": 0.0})
    assert model.discriminator is None and [p.name for p in model.players()] == ["generator"]
    check_players_partition(model)
    out = model.loss((levels(8), levels(8, seed=1)))
    assert set(out) == {"loss", "l1"} and out["loss"].item() == pytest.approx(100 * out["l1"].item(), rel=1e-6)


def test_least_squares_option():
    model = build_model("pix2pix", IMAGES, {**SMALL, "gan_loss": "least_squares"})
    assert set(model.loss((levels(8), levels(8, seed=1)))) >= {"gan", "d_loss"}


@pytest.mark.parametrize("params, match", [({"patch": 110}, "patch=110 needs 4 halvings"),
                                           ({"gan_loss": "hinge"}, "gan_loss"), ({"dropout": 1.0}, "dropout"),
                                           ({"hidden": 8}, "hidden")])
def test_bad_parameters(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("pix2pix", IMAGES, params)


def test_save_load_reproduces_translations(tmp_path):
    torch.manual_seed(0)
    model = build_model("pix2pix", IMAGES, SMALL)
    # move the BatchNorm running statistics away from their initial values, so loading must restore them
    model.train()
    for _ in range(3):
        model.loss((levels(8), levels(8, seed=1)))
    check_save_load(model, levels(), tmp_path)


def test_continuous_vectors_use_each_domains_statistics():
    spec = DataSpec("vec", (2,), None)
    model = build_model("pix2pix", spec, {"hidden": 16, "depth": 1})
    b, a = torch.randn(200, 2) * 3 + 5, torch.randn(200, 2) - 2
    model.fit_preprocessing(b, source=a)
    assert model.data_loc.tolist() == pytest.approx(b.mean(0).tolist(), abs=1e-5)
    assert model.source_loc.tolist() == pytest.approx(a.mean(0).tolist(), abs=1e-5)
    assert model.to_net(a, "A").mean(0).abs().max() < 1e-5
    assert torch.allclose(model.from_net(model.to_net(b, "B"), "B"), b, atol=1e-5)


def test_short_fit_learns_a_paired_map(digits):
    """B = digits, A = their negatives (16 - B): a few hundred steps take the translation error far
    below the identity map's."""
    torch.manual_seed(0)
    b = digits.train[:512]
    a = 16 - b
    model = build_model("pix2pix", digits.spec, {**SMALL, "patch": 5})
    fit_translator(model, b, a, steps=150, lr=2e-3)
    test_b = digits.test[:200]
    mae = (model.translate(16 - test_b) - test_b).abs().mean().item()
    identity = (16 - test_b - test_b).abs().mean().item()
    print("MAE", mae, identity)
    assert mae < 0.2 * identity, (mae, identity)
