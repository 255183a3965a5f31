"""``deepgen restore``: the corruptions' statistics, the baselines and PSNR on hand examples, the two restoration
algorithms' guarantees (what is known stays known), a trained VAE and a completion model restoring, and the
command's files and refusals."""

import json
import math

import numpy as np
import pytest
import torch

from deepgen.cli import main
from deepgen.evaluation import restoration as R
from deepgen.training.config import TrainConfig
from deepgen.workflows.restore import restore
from deepgen.workflows.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_noise_has_the_std_asked_and_stays_valid():
    g = torch.Generator().manual_seed(0)
    x = torch.full((400, 1, 8, 8), 50.0)
    y = R.add_noise(x, 2.0, -1e9, 1e9, None, g)  # no clipping in reach
    assert abs((y - x).std().item() - 2.0) < 0.03 and abs((y - x).mean().item()) < 0.02
    levels = torch.randint(17, (50, 1, 8, 8)).float()
    z = R.add_noise(levels, 3.2, 0, 16, 17, torch.Generator().manual_seed(1))
    assert torch.equal(z, z.round()) and z.min() >= 0 and z.max() <= 16 and not torch.equal(z, levels)
    again = R.add_noise(levels, 3.2, 0, 16, 17, torch.Generator().manual_seed(1))
    assert torch.equal(z, again)  # seeded


def test_block_masks_are_squares_inside_the_image():
    shape = (3, 6, 10)
    m = R.block_masks(500, shape, 4, torch.Generator().manual_seed(0))
    assert m.shape == (500, *shape) and (m.sum((1, 2, 3)) == 3 * 16).all()
    assert torch.equal(m[:, 0], m[:, 2])  # every channel
    rows, cols = m[:, 0].any(2), m[:, 0].any(1)  # (n, h), (n, w): one run of 4 each
    assert (rows.sum(1) == 4).all() and (cols.sum(1) == 4).all()
    tops, lefts = rows.float().argmax(1), cols.float().argmax(1)
    assert set(tops.tolist()) == {0, 1, 2} and set(lefts.tolist()) == set(range(7))  # every position, inside
    assert torch.equal(m, R.block_masks(500, shape, 4, torch.Generator().manual_seed(0)))
    assert R.default_block((1, 8, 8)) == 4 and R.default_block((1, 1, 9)) == 1
    with pytest.raises(R.ConfigError, match="--block 7"):
        R.block_masks(1, shape, 7, torch.Generator())


def test_downsample_then_upsample_keeps_block_means():
    x = torch.randn(5, 2, 8, 12)
    low = R.downsample(x, 4)
    assert low.shape == (5, 2, 2, 3)
    torch.testing.assert_close(low[0, 1, 1, 2], x[0, 1, 4:8, 8:12].mean())
    up = R.upsample(low, 4)
    assert up.shape == x.shape and torch.equal(up[0, 0, :4, :4], low[0, 0, 0, 0].expand(4, 4))
    torch.testing.assert_close(R.downsample(up, 4), low)
    R.check_factor((1, 8, 8), 2)
    for bad in (3, 1, 16):
        with pytest.raises(R.ConfigError, match=f"--factor {bad}"):
            R.check_factor((1, 8, 8), bad)


def test_psnr_and_mse_by_hand():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[0.0, 0.0], [0.0, 3.2]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(R.mse_per_image(b, a), torch.tensor([2.56, 0.0], dtype=torch.double))
    assert math.isclose(R.psnr_db(2.56, 16), 20.0)  # 10 log10(256 / 2.56)
    assert math.isclose(R.psnr_db(0.01, 1), 20.0)
    assert R.psnr_db(0.0, 16) == R.PSNR_CAP_DB  # identical images: capped, a finite JSON number
    assert R.data_range(17, a) == (0.0, 16.0) and R.data_range(None, b) == (0.0, 3.2000000476837158)


def test_median_filter_by_hand():
    x = torch.tensor([[1.0, 2, 3], [4, 100, 6], [7, 8, 9]])[None, None]
    got = R.median3(x)[0, 0]
    # centre: median of 1..9 with 5 -> 100 = 6; corner (0, 0), edges replicated: 1 1 2 / 1 1 2 / 4 4 100 -> 2
    assert got[1, 1] == 6 and got[0, 0] == 2
    assert got[2, 2] == 9  # 100 6 6 / 8 9 9 / 8 9 9
    spike = torch.zeros(1, 2, 5, 5)
    spike[0, 1, 2, 2] = 9
    assert torch.equal(R.median3(spike), torch.zeros_like(spike))  # a lone spike is removed, per channel


class Shrink:
    """A stand-in "encode" model: reconstruct(x) = x / 2 + a ramp along the columns."""

    def reconstruct(self, x, context=None):
        return x / 2 + torch.arange(x.shape[-1]) / 4


def test_reconstruction_reimposes_what_is_known():
    clean = torch.rand(4, 1, 8, 8) * 16
    missing = R.block_masks(4, (1, 8, 8), 4, torch.Generator().manual_seed(0))
    out = R.restore_by_reconstruction(Shrink(), "inpaint", clean, clean, 3, 0, 100, missing=missing)
    assert torch.equal(out[~missing], clean[~missing]) and not torch.equal(out[missing], clean[missing])
    low = R.downsample(clean, 4)
    out = R.restore_by_reconstruction(Shrink(), "upscale", R.upsample(low, 4), low, 3, -100, 100, factor=4)
    torch.testing.assert_close(R.downsample(out, 4), low)
    assert not torch.allclose(out, R.upsample(low, 4))
    out = R.restore_by_reconstruction(Shrink(), "denoise", clean, clean, 2, 0, 4.5)
    ramp = torch.arange(8) / 4
    torch.testing.assert_close(out, ((clean / 2 + ramp) / 2 + ramp).clamp(max=4.5))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small VAE on digits (a few hundred steps) and a barely trained FVSBN on binary digits."""
    root = tmp_path_factory.mktemp("runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures come before the one_thread fixture
    train(TrainConfig.from_dict({"model": "vae", "data": "digits", "steps": 250, "eval_every": 250,
                                 "batch_size": 64, "lr": 3e-3, "progress": False,
                                 "model_params": {"arch": "mlp", "hidden": 64, "latent": 8, "iw_samples": 2}}),
          root / "vae")
    train(TrainConfig.from_dict({"model": "fvsbn", "data": "digits-binary", "steps": 30, "eval_every": 30,
                                 "progress": False}), root / "fv")
    torch.set_num_threads(before)
    return root


def test_trained_vae_restores(runs, tmp_path):
    got = restore(runs / "vae", task="inpaint", out=tmp_path / "i.npz", n=100)
    mse = got["mse"]
    assert mse["restored"] < mse["corrupted"] / 2  # (about 6.2 against 19.7; the mean-image baseline 6.4)
    assert got["psnr_db"]["restored"] > got["psnr_db"]["corrupted"] and got["settings"]["method"] == "reconstruct"
    z = np.load(tmp_path / "i.npz")
    assert z["restored"].shape == (12, 1, 8, 8) and z["missing"].sum() == 12 * 16
    assert (z["restored"][~z["missing"]] == z["clean"][~z["missing"]]).all()  # observed pixels kept
    up = restore(runs / "vae", task="upscale", n=100, factor=2)
    assert up["mse"]["corrupted"] == up["mse"]["baseline"] and up["settings"]["factor"] == 2
    denoise = restore(runs / "vae", task="denoise", n=100, noise=0.3)  # too small a VAE to beat the noise
    assert math.isclose(denoise["settings"]["noise_std"], 0.3 * 16) and denoise["settings"]["steps"] == 1


def test_completion_model_inpaints_keeping_observed_pixels(runs, tmp_path):
    got = restore(runs / "fv", task="inpaint", out=tmp_path / "f.npz", n=40, completions=4, block=3)
    assert got["settings"] == {"seed": 0, "method": "complete", "block": 3, "completions": 4}
    z = np.load(tmp_path / "f.npz")
    kept = ~z["missing"]
    assert (z["restored"][kept] == z["clean"][kept]).all()
    hidden = z["restored"][z["missing"]]
    assert (hidden >= 0).all() and (hidden <= 1).all() and (hidden * 4 == np.round(hidden * 4)).all()  # means of 4
    assert got["mse"]["restored"] < got["mse"]["corrupted"]
    assert restore(runs / "fv", task="inpaint", n=40, completions=4, block=3)["mse"] == got["mse"]  # seeded


def test_cli_writes_picture_and_json(runs, tmp_path, capsys):
    png = tmp_path / "r.png"
    assert main(["restore", str(runs / "vae"), "--task", "denoise", "--out", str(png), "-n", "20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(png.with_suffix(".json").read_text())
    assert png.stat().st_size > 1000 and printed["mse"] == saved["mse"] and saved["n"] == 20
    assert set(saved["psnr_db"]) == {"corrupted", "baseline", "restored"} and saved["data"] == "digits"


@pytest.mark.parametrize("args,match", [
    (["--task", "denoise"], "can only fill in hidden pixels"),
    (["--task", "upscale"], "can only fill in hidden pixels"),
    (["--task", "inpaint", "--data", "digits"], "levels"),
    (["--task", "blur"], "invalid choice"),
    (["--task", "inpaint", "--out", "x.txt"], "expected a picture"),
])
def test_cli_refusals_on_a_completion_model(runs, tmp_path, capsys, args, match):
    argv = ["restore", str(runs / "fv"), "--out", str(tmp_path / "r.png"), *args]
    assert_one_line_error(argv, match, capsys)
    assert not (tmp_path / "r.png").exists()


def test_cli_refusals(runs, tmp_path, capsys):
    out = ["--out", str(tmp_path / "r.png")]
    assert_one_line_error(["restore", str(tmp_path / "nowhere"), "--task", "inpaint", *out], "nowhere", capsys)
    assert_one_line_error(["restore", str(runs / "vae"), "--task", "upscale", "--factor", "3", *out], "--factor 3",
                          capsys)
    assert_one_line_error(["restore", str(runs / "vae"), "--task", "inpaint", "--block", "9", *out], "--block 9",
                          capsys)
    assert_one_line_error(["restore", str(runs / "vae"), "--task", "denoise", "--noise", "-1", *out], "--noise",
                          capsys)
    flow = tmp_path / "flow"
    train(TrainConfig.from_dict({"model": "realnvp", "data": "moons", "steps": 2, "eval_every": 2,
                                 "progress": False}), flow)
    assert_one_line_error(["restore", str(flow), "--task", "inpaint", *out], "neither reconstruct", capsys)


def assert_one_line_error(argv, match, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err
