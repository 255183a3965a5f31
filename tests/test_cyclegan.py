"""CycleGAN: the translator protocol both ways, the four-network game (who gets which gradient), the loss
terms, the image pools as training-only state, save/load, determinism, and a short unpaired fit."""

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.registry import build_model, get_model_class
from deepgen.models.translation.cyclegan import CycleGAN
from translation_checks import check_players_partition, check_protocol, check_save_load, fit_translator, gradient_owners

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = DataSpec("tiny", (1, 8, 8), 17)
VECTORS = DataSpec("points", (2,), None)
SMALL = {"channels": 8, "blocks": 1, "d_channels": 8}
SMALL_MLP = {"hidden": 16, "depth": 1}
NETS = ["g_ab", "g_ba", "d_a", "d_b"]


def levels(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, IMAGES.levels, (n, *IMAGES.shape), generator=g).float()


def test_registered_as_a_two_way_translator():
    cls = get_model_class("cyclegan")
    assert cls is CycleGAN and cls.bidirectional and not cls.needs_pairs


@pytest.mark.parametrize("spec, params", [(IMAGES, SMALL), (IMAGES, {**SMALL, "arch": "unet"}),
                                          (DataSpec("wide", (3, 16, 24), 256), SMALL), (VECTORS, SMALL_MLP)])
def test_protocol_both_ways(spec, params):
    model = build_model("cyclegan", spec, params)
    a = levels() if spec == IMAGES else (torch.randint(0, 256, (6, *spec.shape)).float() if spec.levels
                                         else torch.randn(6, *spec.shape))
    check_protocol(model, a)
    back = model.translate(a, reverse=True)
    assert back.shape == a.shape and torch.equal(back, model.translate(a, reverse=True))


def test_architectures():
    assert build_model("cyclegan", IMAGES, SMALL).arch == "resnet"
    assert build_model("cyclegan", VECTORS, SMALL_MLP).arch == "mlp"
    d = build_model("cyclegan", IMAGES, {**SMALL, "patch": 5}).d_b
    assert d(torch.rand(2, 1, 8, 8)).shape == (2, 1, 8, 8)  # one score per 5x5 patch
    with pytest.raises(ConfigError, match="arch 'unet' needs images"):
        build_model("cyclegan", VECTORS, {**SMALL_MLP, "arch": "unet"})
    with pytest.raises(ConfigError, match="arch 'mlp' is for vectors"):
        build_model("cyclegan", IMAGES, {**SMALL, "arch": "mlp"})


def test_players_and_gradients():
    torch.manual_seed(0)
    model = build_model("cyclegan", IMAGES, SMALL)
    check_players_partition(model)
    assert [p.name for p in model.players()] == ["generators", "discriminators"]
    batch = (levels(8), levels(8, seed=1))
    shared = model.adversarial_forward(batch)
    g = model.player_loss("generators", batch, shared)
    # both generators get a gradient (D's are frozen by the adapter during this update)
    reached = gradient_owners(model, g["loss"], NETS)
    assert reached["g_ab"] and reached["g_ba"]
    d = model.player_loss("discriminators", batch, shared)
    assert gradient_owners(model, d["loss"], NETS) == {"g_ab": False, "g_ba": False, "d_a": True, "d_b": True}
    with pytest.raises(ConfigError, match="no player named 'generator'"):
        model.player_loss("generator", batch, shared)


def test_each_discriminator_judges_its_own_domain():
    model = build_model("cyclegan", IMAGES, SMALL)
    shared = model.adversarial_forward((levels(8), levels(8, seed=1)))
    d = model.discriminator_losses(shared, pooled=False)
    expected_b = model.losses.discriminator(model.d_b(shared["b"]), model.d_b(shared["fake_b"]))
    expected_a = model.losses.discriminator(model.d_a(shared["a"]), model.d_a(shared["fake_a"]))
    assert d["d_b"].item() == pytest.approx(expected_b.item()) and d["d_a"].item() == pytest.approx(expected_a.item())


def test_generator_loss_adds_its_terms_with_the_papers_weights():
    torch.manual_seed(0)
    model = build_model("cyclegan", IMAGES, SMALL)
    out = model.loss((levels(8), levels(8, seed=1)))
    assert set(out) == {"loss", "gan_ab", "gan_ba", "cycle", "identity", "d_loss", "d_a", "d_b"}
    expected = out["gan_ab"] + out["gan_ba"] + 10 * out["cycle"] + 0.5 * 10 * out["identity"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert not any(v.requires_grad for v in out.values())
    assert "identity" not in build_model("cyclegan", IMAGES, {**SMALL, "identity": 0.0}).loss(
        (levels(8), levels(8, seed=1)))


def test_cycle_and_identity_terms_vanish_for_identity_generators():
    """With G_AB = G_BA = identity (in data units) the cycle and identity terms are exactly 0, also for
    continuous domains with different statistics: the identity term compares like with like."""
    model = build_model("cyclegan", VECTORS, SMALL_MLP)
    b, a = torch.randn(300, 2) * 3 + 5, torch.randn(300, 2) - 2
    model.fit_preprocessing(b, source=a)
    model.generate = lambda h, reverse=False: model.recode(h, "B", "A") if reverse else model.recode(h, "A", "B")
    out = model.loss((b[:16], a[:16]))
    assert out["cycle"].item() == pytest.approx(0.0, abs=1e-5) and out["identity"].item() == pytest.approx(0.0, abs=1e-5)
    assert torch.allclose(model.translate(a[:5]), a[:5], atol=1e-5)


def test_pools_are_training_state_only(tmp_path):
    model = build_model("cyclegan", IMAGES, {**SMALL, "pool_size": 5})
    batch = (levels(4), levels(4, seed=1))
    model.loss(batch)
    assert model.pool_a.filled == model.pool_b.filled == 0  # figures leave the pools alone
    shared = model.adversarial_forward(batch)
    model.player_loss("discriminators", batch, shared)
    assert model.pool_a.filled == model.pool_b.filled == 4
    assert torch.equal(model.pool_b.images[:4], shared["fake_b"].detach())
    assert not any("pool" in k for k in model.state_dict())
    loaded = check_save_load(model, levels(), tmp_path, reverse=True)
    assert loaded.pool_a.filled == 0


def test_save_load_reproduces_both_directions_on_vectors(tmp_path):
    model = build_model("cyclegan", VECTORS, SMALL_MLP)
    model.fit_preprocessing(torch.randn(50, 2) * 2 + 1, source=torch.randn(50, 2))
    check_save_load(model, torch.randn(7, 2), tmp_path, reverse=True)


def test_training_is_deterministic_under_a_seed():
    b, a = levels(64), levels(64, seed=1)

    def run():
        torch.manual_seed(0)
        model = build_model("cyclegan", IMAGES, {**SMALL, "pool_size": 8})
        fit_translator(model, b, a, steps=6, batch=16)
        return torch.cat([model.translate(a), model.translate(b, reverse=True)])

    assert torch.equal(run(), run())


def test_short_unpaired_fit_finds_the_map(digits):
    """A = digits, B = the negatives (16 - x) of *other* digits (unpaired): the translation error against the
    truth 16 - a ends far below the identity map's, both ways."""
    torch.manual_seed(0)
    x = digits.train[:800]
    a, b = x[:400], 16 - x[400:]
    model = build_model("cyclegan", digits.spec, {**SMALL, "identity": 0.0, "patch": 5})
    fit_translator(model, b, a, steps=150, lr=2e-3)
    test = digits.test[:200]
    identity = (test - (16 - test)).abs().mean().item()
    mae = (model.translate(test) - (16 - test)).abs().mean().item()
    mae_back = (model.translate(16 - test, reverse=True) - test).abs().mean().item()
    print("MAE", mae, mae_back, identity)
    assert mae < 0.2 * identity and mae_back < 0.2 * identity, (mae, mae_back, identity)
