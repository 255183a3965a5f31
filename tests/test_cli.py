"""CLI end to end on tiny budgets, and every bad input: one clear line, non-zero exit, no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from deepgen.cli import main

TRAIN = ["train", "--model", "realnvp", "--data", "moons", "--steps", "30", "--eval-every", "15",
         "--param", "couplings=2", "--param", "hidden=8", "--no-progress", "--warmup-steps", "5"]


def run_cli(*args):
    """Run the real console entry point in a subprocess (to see exactly what a user sees)."""
    return subprocess.run([sys.executable, "-m", "deepgen", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "moons"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("realnvp", "moons", "ring8", "digits-binary", "realnvp-digits"):
        assert word in out


def test_score_prints_json_matching_training(moons_run, capsys):
    assert main(["score", str(moons_run), "--data", "moons", "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out)
    trained = json.loads((moons_run / "scores.json").read_text())
    assert result["nll_nats"] == trained["nll_nats"]
    for key in ("nll_nats", "bits_per_dim", "n", "split", "data", "density"):
        assert key in result
    assert result["density"] == "exact" and result["n"] == 2000
    rows = (moons_run / "scores-moons-test.csv").read_text().splitlines()
    assert len(rows) == 2001 and rows[0].startswith("index,log_prob_nats")


def test_sample_png_and_npy(moons_run, tmp_path):
    assert main(["sample", str(moons_run), "-n", "50", "--out", str(tmp_path / "s.png"), "--npy",
                 "--temperature", "0.7"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (50, 2) and np.isfinite(arr).all()


def test_preset_with_override(tmp_path):
    out = tmp_path / "digits"
    code = main(["train", "realnvp-digits", "--steps", "4", "--eval-every", "2", "--out", str(out), "--no-progress",
                 "--param", "channels=4"])
    assert code == 0
    cfg = (out / "config.yaml").read_text()
    assert "steps: 4" in cfg and "channels: 4" in cfg and "data: digits" in cfg
    assert (out / "samples.png").is_file() and (out / "data.png").is_file()


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("deepgen: error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_model_suggests_closest(tmp_path):
    assert_clean_error(run_cli("train", "--model", "realnvpp", "--data", "moons", "--out", str(tmp_path / "r")),
                       "unknown model 'realnvpp'", "did you mean 'realnvp'")


def test_unknown_dataset_suggests_closest(tmp_path):
    assert_clean_error(run_cli("train", "--model", "realnvp", "--data", "moon", "--out", str(tmp_path / "r")),
                       "unknown dataset 'moon'", "did you mean 'moons'")


@pytest.mark.parametrize("content,needle", [
    ("1,2\n3,nan\n4,5\n", "NaN or infinite"),
    ("1,2\n3\n4,5\n", "line 2"),
    ("", "empty"),
])
def test_bad_csv_file(tmp_path, capsys, content, needle):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    assert main(["train", "--model", "realnvp", "--data", str(f), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and needle in err
    assert not (tmp_path / "r").exists() or not (tmp_path / "r" / "config.yaml").exists()


def test_truncated_idx_file(tmp_path, capsys):
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (8).to_bytes(4, "big") * 2 + b"\x01" * 100)
    assert main(["train", "--model", "realnvp", "--data", f"idx:{f}", "--out", str(tmp_path / "r")]) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def test_existing_run_is_not_clobbered(moons_run, capsys):
    before = (moons_run / "model.safetensors").read_bytes()
    assert main([*TRAIN, "--out", str(moons_run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (moons_run / "model.safetensors").read_bytes() == before


def test_corrupt_weights_and_missing_weights(moons_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(moons_run, broken)
    w = broken / "model.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    assert_clean_error(run_cli("score", str(broken)), "model.safetensors", "corrupt or truncated")
    w.unlink()
    assert_clean_error(run_cli("sample", str(broken), "--out", str(tmp_path / "x.png")), "weights file not found")
    assert_clean_error(run_cli("score", str(tmp_path / "nowhere")), "run directory not found")


def test_score_on_incompatible_data(moons_run, capsys):
    assert main(["score", str(moons_run), "--data", "digits"]) == 2
    assert "shape" in capsys.readouterr().err


def test_bad_field_values(tmp_path, capsys):
    assert main(["train", "--model", "realnvp", "--data", "moons", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "'steps' must be >= 1" in capsys.readouterr().err
    preset = tmp_path / "p.yaml"
    preset.write_text("model: realnvp\ndata: moons\nstepz: 3\n")
    assert main(["train", str(preset), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "p.yaml" in err and "did you mean 'steps'" in err


def test_resume_refuses_conflicting_flags(tmp_path, capsys):
    from deepgen.cli import main

    out = tmp_path / "run"
    base = ["train", "--model", "realnvp", "--data", "moons", "--steps", "4", "--param", "couplings=2",
            "--eval-every", "4", "--out", str(out), "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()
    for flags, field in ((["--data", "circles"], "data"), (["--model", "made"], "model"),
                         (["--param", "couplings=4"], "couplings"), (["--out", str(tmp_path / "other")], "--out"),
                         (["--lr", "0.1"], "lr")):
        assert main(["train", "--resume", str(out), "--steps", "6", *flags, "--no-progress"]) == 2, flags
        err = capsys.readouterr().err
        assert field in err and err.count("\n") == 1, err
    assert main(["train", "--resume", str(out), "--steps", "6", "--data", "moons", "--param", "couplings=2",
                 "--no-progress"]) == 0


def test_the_catalog_deepgen_list_prints_is_the_code_s_own():
    """`deepgen list` prints src/deepgen/catalog.json (no torch import: 0.06 s instead of 2 s); it must say what
    the models and datasets declare.  On a failure: PYTHONPATH=src python scripts/write_catalog.py"""
    import json

    from deepgen.cli import CATALOG_FILE, catalog_now

    assert json.loads(CATALOG_FILE.read_text()) == json.loads(json.dumps(catalog_now())), \
        "src/deepgen/catalog.json is out of date: run PYTHONPATH=src python scripts/write_catalog.py"


def test_deepgen_list_imports_no_torch_and_shows_registered_models(capsys):
    import subprocess
    import sys

    probe = ("import sys; from deepgen.cli import main; rc = main(['list']); print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False" and "realnvp " in done.stdout and "moons " in done.stdout

    from deepgen.cli import main
    from deepgen.models.registry import get_model_class, register, unregister

    mine = type("MyFlow", (get_model_class("realnvp"),), {"name": "my-flow", "description": "a user's own flow"})
    register(mine)  # a model the user's code registered is listed with the built-in ones
    try:
        capsys.readouterr()
        assert main(["list"]) == 0
        assert "a user's own flow" in capsys.readouterr().out
    finally:
        unregister("my-flow")


def test_weight_decay_flag_overrides_the_preset_and_reaches_adam(tmp_path):
    import yaml

    from deepgen.training.config import TrainConfig, resolve_preset
    from deepgen.training.schedule import make_optimizer

    out = tmp_path / "g"
    assert main(["train", "gated-pixelcnn-digits", "--steps", "2", "--eval-every", "2", "--weight-decay", "0.01",
                 "--param", "channels=4", "--out", str(out), "--no-progress"]) == 0
    train = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert train["weight_decay"] == 0.01 and train["model_params"]["layers"] == 8 and train["keep"] == "best"
    assert yaml.safe_load(resolve_preset("gated-pixelcnn-digits").read_text())["weight_decay"] == 0.001
    opt, _ = make_optimizer([torch_param()], TrainConfig(**{k: train[k] for k in ("model", "data", "weight_decay")}))
    assert opt.param_groups[0]["weight_decay"] == 0.01


def torch_param():
    import torch

    return torch.nn.Parameter(torch.zeros(2))
