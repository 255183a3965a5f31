"""Every bad value on the command line: exit code 2, exactly one line ``deepgen: error: ...`` naming
the flag or field, no traceback, and no run directory (or output file) created."""

from __future__ import annotations

import pytest
import torch

from deepgen.cli import COMMANDS, main
from deepgen.data.spec import DataSpec
from deepgen.errors import TrainingInterrupted
from deepgen.models.base import GenerativeModel
from deepgen.models.registry import register, unregister

BASE = ["train", "--model", "made", "--data", "moons", "--steps", "5", "--no-progress"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
HAS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def assert_one_line_error(code, capsys, needles=()):
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err)
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepgen: error: "), captured.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def run(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusals (a flag's type) exit through SystemExit
        return exc.code


TRAIN_TABLE = [
    (["--param", "hidden=-4"], ["model parameter 'hidden' of made must be >= 1, got -4"]),
    (["--param", "hidden=abc"], ["model parameter 'hidden' of made must be a number, got 'abc'"]),
    (["--param", "hidden=2.5"], ["'hidden' of made must be an integer"]),
    (["--param", "order=rnadom"], ["'order' of made", "'rnadom'", "did you mean 'random'?"]),
    (["--param", "nosuch=1"], ["unknown parameter of model 'made' 'nosuch'"]),
    (["--param", "hidden"], ["--param 'hidden': expected NAME=VALUE"]),
    pytest.param(["--accelerator", "gpu"], ["--accelerator", "torch.cuda.is_available() is False",
                                            "--accelerator cpu"], marks=NO_CUDA),
    pytest.param(["--accelerator", "gpu", "--devices", "999"], ["--devices", "999", "torch.cuda.device_count()"],
                 marks=HAS_CUDA),
    (["--accelerator", "tpux"], ["field 'accelerator'", "unknown accelerator 'tpux'", "did you mean 'tpu'?"]),
    (["--strategy", "dpp"], ["--strategy / field 'strategy'", "unknown strategy 'dpp'", "did you mean 'ddp'?"]),
    (["--strategy", "single_device", "--devices", "2"], ["single_device", "--devices"]),
    (["--precision", "17"], ["--precision / field 'precision'", "unknown precision '17'", "bf16-mixed"]),
    (["--steps", "0"], ["--steps / field 'steps' must be >= 1, got 0"]),
    (["--steps", "abc"], ["--steps", "invalid int value"]),
    (["--lr", "-1"], ["--lr / field 'lr' must be > 0, got -1.0"]),
    (["--lr", "nan"], ["--lr / field 'lr' must be a finite number"]),
    (["--batch-size", "0"], ["--batch-size / field 'batch_size' must be >= 1, got 0"]),
    (["--grad-clip", "-1"], ["--grad-clip / field 'grad_clip' must be >= 0, got -1.0"]),
    (["--warmup-steps", "-5"], ["--warmup-steps / field 'warmup_steps' must be >= 0, got -5"]),
    (["--eval-every", "0"], ["--eval-every / field 'eval_every' must be >= 1, got 0"]),
    (["--devices", "0"], ["--devices / field 'devices' must be >= 1, got 0"]),
    (["--num-nodes", "0"], ["--num-nodes / field 'num_nodes' must be >= 1, got 0"]),
    (["--seed", "-1"], ["--seed / field 'seed' must be in [0, 4294967295], got -1"]),
    (["--lr-schedule", "cosin"], ["--lr-schedule", "invalid choice"]),
    (["--model", "nosuch"], ["unknown model 'nosuch'"]),
    (["--model", "madee"], ["unknown model 'madee'", "did you mean 'made'?"]),
    (["--data", "nosuch"], ["unknown dataset 'nosuch'"]),
]


@pytest.mark.parametrize("extra,needles", TRAIN_TABLE)
def test_train_refuses_bad_values(tmp_path, capsys, extra, needles):
    out = tmp_path / "run"
    code = run([*BASE, "--out", str(out), *extra])
    assert_one_line_error(code, capsys, needles)
    assert not out.exists()


# A model of this test's own, so that these checks do not depend on the built-in models' declarations.
class Checked(GenerativeModel):
    name = "checked-cli"
    family = "test"
    description = "model of tests/test_cli_validation.py"
    param_constraints = {"width": ">= 1", "alpha": "in [0, 0.5)", "order": ("natural", "random")}

    def __init__(self, spec: DataSpec, width: int = 4, alpha: float = 0.1, order: str = "natural"):
        raise AssertionError("the constructor must not run for refused parameters")


@pytest.fixture
def checked():
    register(Checked)
    yield
    unregister(Checked.name)


@pytest.mark.parametrize("param,needles", [
    ("width=-4", ["model parameter 'width' of checked-cli must be >= 1, got -4"]),
    ("alpha=0.5", ["model parameter 'alpha' of checked-cli must be in [0, 0.5), got 0.5"]),
    ("alpha=-0.1", ["must be in [0, 0.5), got -0.1"]),
    ("order=rnadom", ["'order' of checked-cli", "did you mean 'random'?", "(choices: natural, random)"]),
    ("order=sideways", ["'sideways'", "(choices: natural, random)"]),
    ("widht=3", ["did you mean 'width'?"]),
])
def test_registered_model_constraints_on_the_command_line(tmp_path, capsys, checked, param, needles):
    out = tmp_path / "run"
    code = run(["train", "--model", "checked-cli", "--data", "moons", "--steps", "5", "--param", param,
                "--out", str(out)])
    assert_one_line_error(code, capsys, needles)
    assert not out.exists()


def test_bad_value_in_a_preset_names_the_file(tmp_path, capsys):
    preset = tmp_path / "p.yaml"
    preset.write_text("model: made\ndata: moons\nwarmup_steps: -3\nmodel_params: {depth: -1}\n")
    out = tmp_path / "run"
    assert_one_line_error(run(["train", str(preset), "--out", str(out)]), capsys,
                          ["p.yaml: --warmup-steps / field 'warmup_steps' must be >= 0, got -3"])
    preset.write_text("model: made\ndata: moons\nmodel_params: {depth: -1}\n")
    assert_one_line_error(run(["train", str(preset), "--out", str(out)]), capsys,
                          ["p.yaml: model parameter 'depth' of made must be >= 0, got -1"])
    assert not out.exists()


# --- sample / score on a real (tiny) run ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation") / "made"
    assert main([*BASE, "--param", "hidden=8", "--param", "num_masks=1", "--eval-every", "5", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("extra,needles", [
    (["-n", "0"], ["-n must be >= 1, got 0"]),
    (["-n", "-3"], ["-n must be >= 1"]),
    (["--temperature", "0"], ["--temperature must be a finite number > 0, got 0.0"]),
    (["--temperature", "-1"], ["--temperature"]),
    (["--temperature", "inf"], ["--temperature"]),
    (["-n", "x"], ["argument -n: invalid int value"]),
])
def test_sample_refuses_bad_values(tiny_run, tmp_path, capsys, extra, needles):
    target = tmp_path / "s.png"
    assert_one_line_error(run(["sample", str(tiny_run), "--out", str(target), *extra]), capsys, needles)
    assert not target.exists() and not target.with_suffix(".npy").exists()


@pytest.mark.parametrize("extra,needles", [
    (["--batch-size", "0"], ["--batch-size must be >= 1, got 0"]),
    (["--iw-samples", "0"], ["--iw-samples must be >= 1, got 0"]),
    (["--split", "tset"], ["argument --split: invalid choice"]),
])
def test_score_refuses_bad_values(tiny_run, tmp_path, capsys, extra, needles):
    csv = tmp_path / "s.csv"
    assert_one_line_error(run(["score", str(tiny_run), "--csv", str(csv), *extra]), capsys, needles)
    assert not csv.exists()


@pytest.mark.parametrize("command", ["sample", "score"])
def test_missing_run_directory(tmp_path, capsys, command):
    missing = tmp_path / "nowhere"
    argv = [command, str(missing)] + (["--out", str(tmp_path / "s.png")] if command == "sample" else [])
    assert_one_line_error(run(argv), capsys, ["run directory not found"])
    assert not missing.exists() and not (tmp_path / "s.png").exists()


def test_compare_refuses_unknown_model_before_training(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert_one_line_error(run(["compare", "--data", "moons", "--models", "made,vea", "--steps", "5",
                               "--out", str(out), "--no-progress"]), capsys, ["--models", "did you mean 'vae'?"])
    assert not out.exists()


def test_list_unknown_model(capsys):
    assert_one_line_error(run(["list", "nosuch"]), capsys, ["unknown model 'nosuch'"])


# --- exit codes --------------------------------------------------------------------------
@pytest.mark.parametrize("code", [130, 143])
def test_training_interrupted_exits_with_its_code(monkeypatch, capsys, code):
    message = "interrupted at step 3; checkpoint saved in runs/x\nresume with: deepgen train --resume runs/x"

    def interrupted(args):
        raise TrainingInterrupted(message, exit_code=code)

    monkeypatch.setitem(COMMANDS, "train", interrupted)
    assert main(["train"]) == code
    err = capsys.readouterr().err
    assert err == f"deepgen: {message}\n"  # a stop that was asked for is not reported as an error


def test_keyboard_interrupt_outside_training_exits_130(monkeypatch, capsys):
    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(COMMANDS, "list", stop)
    assert main(["list"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_progress_flags_reach_the_config(monkeypatch, tmp_path):
    """deepgen train shows progress unless --no-progress, and asks train() for its final figures."""
    import deepgen.workflows.train as wt

    seen = {}

    def fake_train(cfg, out, resume=False, overwrite=False, verbose=False, started=None):
        seen.update(progress=cfg.progress, verbose=verbose)
        return {}

    monkeypatch.setattr(wt, "train", fake_train)
    argv = ["train", "--model", "made", "--data", "moons", "--steps", "5", "--out", str(tmp_path / "r")]
    assert main(argv) == 0 and seen == {"progress": True, "verbose": True}
    assert main([*argv, "--no-progress"]) == 0 and seen == {"progress": False, "verbose": True}


def test_param_values_in_exponent_notation_are_numbers():
    """YAML 1.1 reads 1e-3 as a string; --param rtol=1e-3 must mean the number 0.001."""
    from deepgen.cli import _parse_param

    assert _parse_param("rtol=1e-3") == ("rtol", 0.001)
    assert _parse_param("atol=-2.5E+2") == ("atol", -250.0)
    assert _parse_param("name=e5") == ("name", "e5") and _parse_param("k=12") == ("k", 12)


def test_input_errors_are_reported_before_the_heavy_imports(tmp_path):
    """A wrong model name, a missing data file or one that does not parse is reported before torch is imported
    (the imports cost seconds; the check is what makes an input error answer in a fraction of a second)."""
    import subprocess
    import sys

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    named = tmp_path / "named.csv"  # a text label column is fine; a text feature cell is not
    named.write_text("a,b,y\n1,2,cat\n3,oops,dog\n")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x93NUMPY not really")
    probe = ("import sys; from deepgen.cli import main; rc = main(sys.argv[1:]); "
             "print(rc, 'torch' in sys.modules, any(m.startswith('lightning') for m in sys.modules))")
    cases = [(["train", "--model", "realnvpp", "--data", "moons", "--out", str(tmp_path / "a")], "2 False False"),
             (["train", "--model", "realnvp", "--data", str(bad), "--out", str(tmp_path / "b")], "2 False False"),
             (["train", "--model", "realnvp", "--data", str(junk), "--out", str(tmp_path / "e")], "2 False False"),
             (["train", "--model", "realnvp", "--data", str(named), "--labels", "y", "--out", str(tmp_path / "f")],
              "2 False False"),
             (["train", "--model", "realnvp", "--data", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "c")],
              "2 False False"),
             (["train", "--model", "realnvp", "--data", "moons", "--steps", "-5", "--out", str(tmp_path / "d")],
              "2 False False")]
    for argv, expected in cases:
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
        assert done.stdout.strip().splitlines()[-1] == expected, (argv, done.stdout, done.stderr)
        assert not (tmp_path / argv[-1]).exists()
