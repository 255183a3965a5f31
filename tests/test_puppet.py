"""PuppetGAN (``puppet``): the puppet renderer, the game's players and gradients, manipulate(), save/load,
a short fit that teaches the attribute code the puppets' angles, and the evaluation's baselines."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data.puppet import digit_prototypes, draw_puppets, render, rotate, rotate_digits
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.models.pretrained import load_model, save_model
from deepgen.models.translation.puppet import PuppetGAN
from deepgen.training.adversarial import AdversarialModule
from deepgen.training.config import TrainConfig
from translation_checks import check_players_partition, gradient_owners

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"rest": 4, "channels": 16, "d_channels": 8, "patch": 5}
NETS = ("encoder", "decoder_trunk", "real_decoder", "synthetic_decoder", "d_real", "d_synthetic")


def fit(model, x, steps, batch=32, lr=1e-3):
    """``steps`` steps of the N-player adapter on batches of real images ``x``."""
    cfg = TrainConfig.from_dict({"model": model.name, "data": "digits", "steps": steps, "batch_size": batch, "lr": lr})
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    trainer.fit(AdversarialModule(model, cfg), DataLoader(TensorDataset(x), batch_size=batch, shuffle=True,
                                                          drop_last=True))
    return model.eval()


def small(spec, **kw):
    torch.manual_seed(0)
    return PuppetGAN(spec, **{**SMALL, **kw})


def jittered(model, scale=0.2):
    """``model`` with noise added to its weights (an untrained decoder outputs grey 8 everywhere)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


# --- the puppet domain ---------------------------------------------------------------------------------
def test_angle_zero_renders_the_prototypes_on_the_levels():
    protos = digit_prototypes()
    assert protos.shape == (10, 1, 8, 8) and 10 < protos.max() <= 16 and protos.min() >= 0
    puppets = render(torch.arange(10), 0.0, protos, 17)
    assert torch.equal(puppets, torch.floor(protos + 0.5))
    tilted = render(torch.arange(10), torch.linspace(-45, 45, 10), protos, 17)
    assert tilted.shape == (10, 1, 8, 8) and torch.equal(tilted, tilted.round())
    assert tilted.min() >= 0 and tilted.max() <= 16
    # k training digits of each class, class-major, as they are
    few = digit_prototypes(per_class=3)
    assert few.shape == (30, 1, 8, 8) and torch.equal(few, few.round())
    assert torch.equal(render(torch.arange(30), 0.0, few, 17), few)
    # two levels: the prototypes scale to 0..1
    assert render(torch.arange(10), 20.0, digit_prototypes(2), 2).unique().tolist() == [0.0, 1.0]


def test_rotation_turns_counter_clockwise_and_undoes_itself(digits):
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 7] = 16  # right of the centre
    assert rotate(dot, 90.0, 17)[0, 0].nonzero().tolist() == [[1, 4]]  # -> above the centre
    x = digits.test[:100]
    there = rotate_digits(x, 30.0)
    back = rotate_digits(there, -30.0)
    moved, returned = (there - x).abs().mean(), (back - x).abs().mean()
    assert returned < 0.5 * moved, (returned, moved)
    # one angle per example is the same as each example alone
    angles = torch.tensor([-40.0, 0.0, 12.5])
    assert torch.equal(rotate_digits(x[:3], angles), torch.cat([rotate_digits(x[i:i + 1], a) for i, a in
                                                                 enumerate(angles.tolist())]))
    with pytest.raises(ConfigError, match="one angle or 3 angles"):
        rotate_digits(x[:3], torch.zeros(2))


def test_puppets_come_from_the_global_rng():
    protos = digit_prototypes()
    torch.manual_seed(3)
    a = draw_puppets(50, protos, 45.0)
    torch.manual_seed(3)
    b = draw_puppets(50, protos, 45.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].abs().max() <= 45 and set(a[0].tolist()) <= set(range(10))


# --- the model -------------------------------------------------------------------------------------------
def test_declarations_and_refusals(digits):
    model = small(digits.spec)
    assert (model.family, model.density, model.objective) == ("translation", "none", "adversarial")
    assert model.can("manipulate") and not model.can("translate") and not model.can("log_prob")
    x = digits.test[:4]
    with pytest.raises(DensityError):
        model.log_prob(x)
    with pytest.raises(ConfigError, match="manipulate sets angle.*got colour"):
        model.manipulate(x, colour=3)
    with pytest.raises(ConfigError, match="got no setting"):
        model.manipulate(x)
    with pytest.raises(ConfigError, match="outside the trained range"):
        model.manipulate(x, angle=60)
    with pytest.raises(ConfigError, match="number of degrees"):
        model.manipulate(x, angle="steep")
    with pytest.raises(ConfigError, match="expected real images of shape"):
        model.manipulate(x[:, :, :4], angle=10)
    with pytest.raises(ConfigError, match="use manipulate"):
        model.translate(x)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(4, context=torch.zeros(4, 10))
    with pytest.raises(ConfigError, match="no context"):
        model.loss((x, torch.zeros(4, 10)))
    for spec in (DataSpec("vec", (64,), 17), DataSpec("big", (1, 16, 16), 17), DataSpec("cont", (1, 8, 8), None)):
        with pytest.raises(ConfigError, match="1x8x8 images with grey levels"):
            PuppetGAN(spec, **SMALL)


def test_manipulate_and_sample_return_levels_deterministically(digits):
    model = jittered(small(digits.spec))
    model.train()
    x = digits.test[:6]
    y = model.manipulate(x, angle=30)
    assert model.training and all(m.training for m in model.modules())
    assert y.shape == x.shape and torch.equal(y, y.round()) and y.min() >= 0 and y.max() <= 16
    assert torch.equal(y, model.manipulate(x, angle=30.0))
    per_example = model.manipulate(x, angle=torch.full((6,), 30.0))
    assert torch.equal(per_example, y)
    assert not torch.equal(model.manipulate(x, angle=-30), y)
    s = model.sample(5)
    assert s.shape == (5, 1, 8, 8) and torch.equal(s, s.round()) and s.max() <= 16
    assert model.read_angle(x).shape == (6,)


@pytest.mark.parametrize("trunk", [True, False])
def test_players_own_disjoint_parameters_and_get_their_gradients(digits, trunk):
    model = small(digits.spec, shared_decoder=trunk)
    check_players_partition(model)
    assert [p.name for p in model.players()] == ["autoencoder", "discriminators"]
    x = digits.train[:16]
    shared = model.adversarial_forward(x)
    ae = model.player_loss("autoencoder", x, shared)
    reached = gradient_owners(model, ae["loss"], NETS)
    # E, G_R and G_S all learn from the autoencoder's loss (the D's are frozen by the adapter then)
    assert reached["encoder"] and reached["real_decoder"] and reached["synthetic_decoder"]
    assert reached["decoder_trunk"] == trunk  # an nn.Identity trunk has no parameters
    d = model.player_loss("discriminators", x, shared)
    assert gradient_owners(model, d["loss"], NETS) == {"encoder": False, "decoder_trunk": False,
                                                       "real_decoder": False, "synthetic_decoder": False,
                                                       "d_real": True, "d_synthetic": True}
    with pytest.raises(ConfigError, match="no player named 'generator'"):
        model.player_loss("generator", x, shared)


def test_composition_reads_the_attribute_through_a_fixed_encoder(digits):
    """The composition term's angle reader is E itself (same value) but sends no gradient to E's weights."""
    model = small(digits.spec)
    h = (digits.train[:8] + 0.5).div(17).requires_grad_(True)
    a = model.read_attribute_fixed(h)
    assert torch.allclose(a, model.encode(h)[0])
    model.zero_grad(set_to_none=True)
    a.sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_loss_terms_add_up_with_their_weights(digits):
    model = small(digits.spec, recon_weight=1.0, attribute_weight=2.0, pair_weight=3.0, cycle_weight=4.0,
                  compose_weight=5.0, gan_weight=6.0)
    torch.manual_seed(1)
    out = model.loss(digits.train[:16])
    total = (out["recon"] + 2 * out["attribute"] + 3 * out["pair"] + 4 * out["cycle"] + 5 * out["compose"]
             + 6 * out["gan"])
    assert torch.allclose(out["loss"], total, rtol=1e-5)
    assert {"d_loss", "d_real", "d_synthetic", "angle_error"} <= set(out)


def test_save_load_reproduces_manipulate_exactly(digits, tmp_path):
    model = jittered(small(digits.spec))
    save_model(model, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    x = digits.test[:20]
    for angle in (-30, 0, 45):
        assert torch.equal(loaded.manipulate(x, angle=angle), model.manipulate(x, angle=angle))
    assert torch.equal(loaded.prototypes, model.prototypes)


def test_short_fit_teaches_the_attribute_code_the_puppets_angles(digits):
    """Through the adapter, 80 steps: the encoder's reading of fresh puppets' angles goes from chance to a few
    degrees (a real figure, printed)."""
    model = small(digits.spec)
    g = torch.Generator().manual_seed(5)
    content, angle = draw_puppets(300, model.prototypes, 45.0, generator=g)
    puppets = model.render(content, angle)

    def error():
        return (model.read_angle(puppets) - angle).abs().mean().item()

    before = error()
    fit(model, digits.train[:512], steps=80, lr=2e-3)
    after = error()
    print("puppet angle error (degrees) before", before, "after", after)
    assert before > 15 and after < 0.4 * before, (before, after)


# --- evaluation -------------------------------------------------------------------------------------------
def test_scores_put_the_baselines_where_they_belong(digits):
    from deepgen.evaluation.puppet import puppet_scores

    model = small(digits.spec)
    s = puppet_scores(model, digits, angles=(-30, 30), regressor_steps=150)
    oracle, identity, mean = s["mean"]["oracle"], s["mean"]["identity"], s["mean"]["model"]
    assert oracle["mae"] == 0 and identity["mae"] > 0.05
    assert identity["label_preservation"] == pytest.approx(s["classifier_accuracy"])
    assert s["classifier_accuracy"] > 0.9
    # the untrained regressor-of-150-steps still tells rotated digits from upright ones
    assert oracle["angle_error_regressor"] < identity["angle_error_regressor"]
    assert set(s["per_angle"]) == {"-30", "30"} and s["n"] == len(digits.test)
    assert 0 <= mean["label_preservation"] <= 1 and mean["angle_error_model"] >= 0
    with pytest.raises(ConfigError, match="no capability 'manipulate'"):
        from deepgen.models.registry import build_model
        puppet_scores(build_model("gan", digits.spec, {}), digits)


def test_translate_set_writes_the_manipulated_split_and_refuses_misuse(digits, tmp_path):
    """`deepgen translate RUN --set angle=30` = model.manipulate(test digits, angle=30), on the data scale."""
    import numpy as np

    from deepgen.workflows.train import train
    from deepgen.workflows.translate import translate_run

    cfg = TrainConfig.from_dict({"model": "puppet", "data": "digits", "steps": 2, "eval_every": 2,
                                 "batch_size": 16, "model_params": SMALL})
    train(cfg, tmp_path / "run")
    summary = translate_run(tmp_path / "run", "test", tmp_path / "out", settings={"angle": 30})
    assert summary["settings"] == {"angle": 30} and summary["n"] == len(digits.test)
    written = torch.from_numpy(np.load(tmp_path / "out" / "translated.npy"))
    model = load_model(tmp_path / "run").eval()
    with torch.no_grad():
        expected = model.manipulate(digits.test, angle=30)
    assert torch.equal(written.float(), expected.float())
    assert (tmp_path / "out" / "translated.png").is_file()
    with pytest.raises(ConfigError, match="give --set NAME=VALUE"):
        translate_run(tmp_path / "run", "test", tmp_path / "out2")
    with pytest.raises(ConfigError, match="--reverse does not apply with --set"):
        translate_run(tmp_path / "run", "test", tmp_path / "out3", reverse=True, settings={"angle": 10})
