"""InfoGAN: the information terms against hand-computed values, the bound, players and gradients,
codes, save/load, parameters, the code pictures, and a short training run."""

import math

import pytest
import torch

from deepgen.data.spec import DataSpec, Splits
from deepgen.data.toy2d import MODES
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.information import (
    categorical_code_nll, categorical_entropy, gaussian_code_nll, mutual_information_bound, uniform_entropy,
)
from deepgen.models.players import check_players
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.registry import build_model
from deepgen.workflows.code_pictures import write_code_pictures

pytestmark = pytest.mark.usefixtures("one_thread")

RING = DataSpec("ring8", (2,))
DIGITS = DataSpec("digits", (1, 8, 8), levels=17)


# --- the information terms ---------------------------------------------------------------

def test_categorical_code_nll_matches_hand_computed_values():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]], dtype=torch.float64)
    codes = torch.tensor([1, 0])
    # softmax([0, log 3]) = [1/4, 3/4]: -log 3/4; softmax([2, 2]) = [1/2, 1/2]: log 2
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert categorical_code_nll(logits, codes).item() == pytest.approx(expected, rel=1e-12)


def test_gaussian_code_nll_matches_hand_computed_values():
    mean = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    codes = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    # sigma = 1: sum_j (c - mu)^2 / 2 + log(2 pi) / 2
    fixed = 0.5 * 0.25 + 0.5 * 4.0 + 2 * half_log_2pi
    assert gaussian_code_nll(mean, codes).item() == pytest.approx(fixed, rel=1e-12)
    # sigma = (2, 1/2): (0.5 / 2)^2 / 2 + log 2 + (2 / 0.5)^2 / 2 - log 2
    log_std = torch.log(torch.tensor([[2.0, 0.5]], dtype=torch.float64))
    learned = 0.5 * 0.0625 + math.log(2) + 0.5 * 16.0 - math.log(2) + 2 * half_log_2pi
    assert gaussian_code_nll(mean, codes, log_std).item() == pytest.approx(learned, rel=1e-12)
    # log sigma = 0 is sigma = 1; the batch is averaged, the codes summed
    two = torch.cat([codes, codes])
    assert gaussian_code_nll(torch.cat([mean, mean]), two, torch.zeros(2, 2, dtype=torch.float64)).item() == \
        pytest.approx(fixed, rel=1e-12)


def test_entropies_and_bound():
    assert categorical_entropy(10) == pytest.approx(math.log(10))
    assert categorical_entropy(1) == 0.0
    assert uniform_entropy(2) == pytest.approx(2 * math.log(2))  # U(-1, 1) per code
    assert uniform_entropy(3, 0.0, 1.0) == 0.0
    assert mutual_information_bound(0.5, math.log(10)) == pytest.approx(math.log(10) - 0.5)


def test_bound_is_zero_for_a_q_that_ignores_x_and_never_exceeds_log_k():
    k = 10
    codes = torch.randint(k, (500,))
    uniform = categorical_code_nll(torch.zeros(500, k), codes)
    assert mutual_information_bound(uniform, categorical_entropy(k)).item() == pytest.approx(0.0, abs=1e-6)
    # a confident, right Q approaches H(c) = log K from below
    right = categorical_code_nll(5 * torch.nn.functional.one_hot(codes, k).double(), codes)
    assert 0.9 * math.log(k) < mutual_information_bound(right, categorical_entropy(k)).item() <= math.log(k)


def test_model_mi_bound_is_at_most_log_categories():
    model = build_model("infogan", DIGITS, {"hidden": 16, "categories": 7})
    with torch.no_grad():  # make Q confident to push the estimate towards its ceiling
        model.q_head[-1].weight.mul_(50)
    out = model.loss(torch.randint(0, 17, (64, 1, 8, 8)).float())
    assert out["mi_bound"].item() <= math.log(7) + 1e-6
    assert out["mi_bound"].item() == pytest.approx(math.log(7) - out["cat_nll"].item(), abs=1e-5)


# --- the model ----------------------------------------------------------------------

def test_registered_with_defaults():
    model = build_model("infogan", DIGITS, {})
    assert (model.name, model.family, model.density, model.objective) == ("infogan", "implicit", "none", "adversarial")
    assert model.config()["params"] == {
        "latent": 16, "categories": 10, "continuous": 2, "info_weight": 1.0, "continuous_weight": 1.0,
        "learn_std": False, "hidden": 128, "depth": 2, "arch": "auto", "d_steps": 1, "context_features": 0,
        "standardize": True}
    assert model.generator.fc.in_features == 16 + 10 + 2 and model.latent == 16
    assert model.q_head[-1].out_features == 12
    assert build_model("infogan", RING, {"learn_std": True}).q_head[-1].out_features == 10 + 2 * 2
    with pytest.raises(DensityError, match="implicit"):
        model.log_prob(torch.zeros(2, 1, 8, 8))
    assert {"lr", "betas", "lr_schedule"} <= set(type(model).train_defaults)


@pytest.mark.parametrize("params, match", [
    ({"categories": 1}, "categories=1"), ({"categories": 0, "continuous": 0}, "no code"),
    ({"categories": -2}, "categories"), ({"info_weight": -1.0}, "info_weight"),
    ({"continuous_weight": -0.5}, "continuous_weight"), ({"learn_std": "yes"}, "learn_std"),
    ({"arch": "conv"}, "needs images"), ({"loss": "minimax"}, "loss"),
])
def test_bad_parameters_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("infogan", RING, params)


def test_players_are_disjoint_and_q_goes_with_the_discriminator():
    model = build_model("infogan", DIGITS, {"hidden": 16})
    players = model.players()
    check_players(players)
    assert [p.name for p in players] == ["discriminator", "generator"]
    d_ids = {id(p) for p in players[0].parameters()}
    assert {id(p) for p in model.q_head.parameters()} <= d_ids
    assert {id(p) for p in model.discriminator.parameters()} <= d_ids
    everything = d_ids | {id(p) for p in players[1].parameters()}
    assert everything == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("spec", [RING, DIGITS])
def test_gradients_reach_the_right_networks(spec):
    model = build_model("infogan", spec, {"hidden": 16})
    batch = torch.randn(8, 2) if spec is RING else torch.randint(0, 17, (8, 1, 8, 8)).float()
    shared = model.adversarial_forward(batch)
    out = model.player_loss("discriminator", batch, shared)
    out["loss"].backward()
    assert all(p.grad is None for p in model.generator_parameters())  # fakes detached for D and Q
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.q_head.parameters())  # Q learns
    assert all(p.grad is not None for p in model.discriminator.parameters())
    assert set(out) >= {"loss", "d_real", "d_fake", "cat_nll", "cont_nll", "cat_accuracy", "mi_bound"}
    model.zero_grad(set_to_none=True)
    model.player_loss("generator", batch, shared)["loss"].backward()
    assert all(p.grad is not None for p in model.generator_parameters())
    with pytest.raises(ConfigError, match="no player"):
        model.player_loss("q", batch, shared)


def test_information_term_reaches_the_generator_and_is_weighted():
    model = build_model("infogan", RING, {"hidden": 16})
    batch = torch.randn(8, 2)
    shared = model.adversarial_forward(batch)
    grads = {}
    for w in (0.0, 1.0):
        model.info_weight = w
        model.zero_grad(set_to_none=True)
        out = model.player_loss("generator", batch, shared)
        out["loss"].backward(retain_graph=True)
        grads[w] = torch.cat([p.grad.flatten() for p in model.generator_parameters()])
        info = out["cat_nll"] + out["cont_nll"]
        gan = out["loss"] - w * info
    assert not torch.allclose(grads[0.0], grads[1.0])
    from deepgen.losses.adversarial import generator_nonsaturating
    assert gan.item() == pytest.approx(generator_nonsaturating(model.discriminate(shared["fake"])).item(), rel=1e-5)


def test_codes_change_the_samples_and_sample_draws_random_codes():
    model = build_model("infogan", DIGITS, {"hidden": 16}).eval()
    z = model.noise(1).expand(3, -1)
    cont = torch.zeros(3, 2)
    by_cat = model.generate_codes(z, torch.tensor([0, 1, 2]), cont)
    assert not torch.allclose(by_cat[0], by_cat[1]) and not torch.allclose(by_cat[1], by_cat[2])
    by_cont = model.generate_codes(z, torch.zeros(3, dtype=torch.long), torch.tensor([[-1.0, 0], [0, 0], [1.0, 0]]))
    assert not torch.allclose(by_cont[0], by_cont[2])
    assert torch.allclose(model.generate_codes(z, torch.zeros(3, dtype=torch.long), cont)[0], by_cat[0])
    x = model.sample(6)
    assert x.shape == (6, 1, 8, 8) and torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= 16
    torch.manual_seed(3)
    a = model.sample(5)
    torch.manual_seed(3)
    z = model.noise(5)
    cat, cont = model.random_codes(5)
    assert torch.equal(a, model.sample_codes(z, cat, cont))
    assert 0 <= cat.min() and cat.max() < 10 and -1 <= cont.min() and cont.max() <= 1


def test_generate_codes_checks_the_codes():
    model = build_model("infogan", RING, {"hidden": 8})
    z = model.noise(4)
    with pytest.raises(ConfigError, match="categorical codes"):
        model.generate_codes(z, None, torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="0..9"):
        model.generate_codes(z, torch.full((4,), 10), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="continuous codes"):
        model.generate_codes(z, torch.zeros(4, dtype=torch.long), torch.zeros(4, 3))
    only_cont = build_model("infogan", RING, {"hidden": 8, "categories": 0})
    assert only_cont.generate_codes(z, None, torch.zeros(4, 2)).shape == (4, 2)
    with pytest.raises(ConfigError, match="categories=0"):
        only_cont.generate_codes(z, torch.zeros(4, dtype=torch.long), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="categories=0"):
        only_cont.code_logits(torch.zeros(4, 2))


def test_q_reads_real_data_and_features():
    model = build_model("infogan", DIGITS, {"hidden": 16, "learn_std": True}).eval()
    x = torch.randint(0, 17, (5, 1, 8, 8)).float()
    q = model.infer_codes(x, batch_size=2)
    assert q["logits"].shape == (5, 10) and q["mean"].shape == (5, 2) and q["log_std"].shape == (5, 2)
    assert torch.allclose(model.code_logits(x), q["logits"], atol=1e-6)
    assert model.features(x).shape == (5, 16 * 2 * 2)
    assert torch.allclose(model.d_logit(model.features(x)), model.discriminate((x + 0.5) / 17), atol=1e-6)


def test_conditional_infogan_uses_context():
    model = build_model("infogan", DIGITS, {"hidden": 16, "context_features": 3}).eval()
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    assert model.sample(4, context=c).shape == (4, 1, 8, 8)
    z = model.noise(1).expand(2, -1)
    a = model.generate_codes(z, torch.zeros(2, dtype=torch.long), torch.zeros(2, 2), c[:2])
    assert not torch.allclose(a[0], a[1])  # same z and codes, different context
    batch = (torch.zeros(4, 1, 8, 8), c)
    out = model.player_loss("discriminator", batch, model.adversarial_forward(batch))
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("spec", [RING, DIGITS])
def test_save_load_reproduces_samples(tmp_path, spec):
    model = build_model("infogan", spec, {"hidden": 16, "learn_std": True})
    model.train()
    for _ in range(3):  # move BatchNorm running statistics
        model.sample_codes(model.noise(32), *model.random_codes(32))
        model.generate_codes(model.noise(32), *model.random_codes(32))
    model.eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    torch.manual_seed(7)
    a = model.sample(20)
    torch.manual_seed(7)
    assert torch.equal(a, loaded.sample(20))
    x = a.float()
    assert torch.equal(model.code_logits(x), loaded.code_logits(x))


# --- pictures -----------------------------------------------------------------------

def test_code_pictures_for_images_and_2d(tmp_path):
    model = build_model("infogan", DIGITS, {"hidden": 16, "categories": 3})
    splits = Splits(DIGITS, *(torch.randint(0, 17, (20, 1, 8, 8)).float() for _ in range(3)))
    assert write_code_pictures(model, splits, tmp_path) == ["codes_categorical.png", "codes_continuous.png"]
    assert model.training  # mode restored
    ring = build_model("infogan", RING, {"hidden": 8, "continuous": 1})
    splits2 = Splits(RING, *(torch.randn(50, 2) for _ in range(3)))
    (tmp_path / "ring").mkdir()
    assert write_code_pictures(ring, splits2, tmp_path / "ring") == ["codes_categorical.png", "codes_continuous.png"]
    assert all((tmp_path / "ring" / f).stat().st_size > 0 for f in ("codes_categorical.png", "codes_continuous.png"))
    gan = build_model("gan", RING, {"hidden": 8})
    assert write_code_pictures(gan, splits2, tmp_path / "ring") == []


# --- training -------------------------------------------------------------------------

def test_short_training_teaches_q_to_recover_the_codes():
    """200 Adam steps of the two players on ring8: Q recovers the categorical code of fakes far above chance
    and the information bound rises from ~0 towards log K."""
    torch.manual_seed(0)
    centers, std = MODES["ring8"]
    x = centers[torch.randint(8, (2048,))] + std * torch.randn(2048, 2)
    model = build_model("infogan", RING, {"hidden": 32, "latent": 2, "categories": 4, "continuous": 1})
    model.fit_preprocessing(x)
    players = model.players()
    opts = {p.name: torch.optim.Adam(p.parameters(), lr=2e-3, betas=(0.5, 0.999)) for p in players}
    before = model.loss(x[:512])
    for step in range(200):
        batch = x[torch.randint(len(x), (64,))]
        shared = model.adversarial_forward(batch)
        for p in players:
            opts[p.name].zero_grad(set_to_none=True)
            model.player_loss(p.name, batch, shared)["loss"].backward(retain_graph=True)
            opts[p.name].step()
            model.zero_grad(set_to_none=True)
    after = model.loss(x[:512])
    assert before["cat_accuracy"] < 0.5 and after["cat_accuracy"] > 0.9
    assert after["mi_bound"] > 0.8 * math.log(4) and after["mi_bound"] <= math.log(4)
    assert after["cont_nll"] < before["cont_nll"]


@pytest.mark.slow
def test_the_ring8_preset_covers_every_mode_with_high_quality_samples(tmp_path):
    """The shipped preset infogan-ring8 (one category per mode, no continuous code), shortened to 4000 steps:
    all 8 modes and >= 90 % high-quality samples (the full 10000 steps: 8/8 at 100.0 %, seeds 0/1/2).  A plain
    GAN maps the connected z onto a connected set and cannot get there (README "Mode coverage")."""
    import yaml

    from deepgen.training.config import TrainConfig, resolve_preset
    from deepgen.workflows.train import train

    fields = {**yaml.safe_load(resolve_preset("infogan-ring8").read_text()), "steps": 4000, "seed": 0}
    modes = train(TrainConfig.from_dict(fields), tmp_path / "run", progress=False)["modes"]
    assert modes["modes_covered"] == 8 and modes["high_quality_pct"] >= 90.0, modes
