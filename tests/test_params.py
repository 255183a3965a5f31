"""Model hyper-parameters: docstring meanings, declared constraints, checks before building,
``deepgen list MODEL`` and the defaults shown by ``deepgen train --help``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from deepgen.cli import main
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.models.params import (
    check_params,
    class_constraints,
    first_sentence,
    param_meanings,
    parse_args_section,
    parse_constraint,
)
from deepgen.models.registry import build_model, list_models, model_params, register, unregister
from deepgen.training.config import TrainConfig, train_field_defaults

BUILT = []


class Toy(GenerativeModel):
    """A toy model for these tests.

    Args:
        rate: from the class docstring (the constructor's own entry wins when it has one).
        mode: documented only here, in the class docstring.
    """

    name = "toy-params"
    family = "test"
    description = "toy model of tests/test_params.py"
    param_constraints = {"width": ">= 1", "rate": "in (0, 1]", "mode": ("natural", "random"), "scale": "> 0"}
    train_defaults = {"lr": 0.01, "steps": 7}

    def __init__(self, spec: DataSpec, width: int = 4, rate: float = 0.5, mode: str = "natural",
                 scale: float = 1.0, flag: bool = False, hidden_note: int = 0):
        """Build the toy.

        Args:
            width: units of the toy layer. A second sentence
                on a continuation line, which is not part of the meaning.
            rate (float): a rate, e.g. 0.5 or 1.
            scale: a positive scale.
            flag: a switch.

        Returns:
            nothing: a section after Args is not read as parameters.
        """
        BUILT.append(dict(width=width, rate=rate, mode=mode))
        super().__init__(spec, width=width, rate=rate, mode=mode, scale=scale, flag=flag, hidden_note=hidden_note)


@pytest.fixture
def toy():
    register(Toy)
    BUILT.clear()
    yield Toy
    unregister(Toy.name)


SPEC = DataSpec("t", (2,))


# --- docstrings -------------------------------------------------------------------
def test_args_section_with_continuation_lines_and_types():
    parsed = parse_args_section(Toy.__init__.__doc__)
    assert parsed == {
        "width": "units of the toy layer. A second sentence on a continuation line, which is not part of the meaning.",
        "rate": "a rate, e.g. 0.5 or 1.",
        "scale": "a positive scale.",
        "flag": "a switch.",
    }
    assert "nothing" not in parsed


def test_args_section_missing_or_empty():
    assert parse_args_section(None) == {}
    assert parse_args_section("") == {}
    assert parse_args_section("Just a summary.\n\n    More text, no sections.") == {}
    assert parse_args_section("Summary.\n\nArgs:\n\nReturns:\n    x: y") == {}


def test_first_sentence():
    assert first_sentence("units of the layer. More.") == "units of the layer"
    assert first_sentence("a rate, e.g. 0.5 or 1.") == "a rate, e.g. 0.5 or 1"
    assert first_sentence("  spaced\n   out  ") == "spaced out"


def test_meanings_fall_back_to_the_class_docstring():
    meanings = param_meanings(Toy)
    assert meanings["width"] == "units of the toy layer"
    assert meanings["rate"] == "a rate, e.g. 0.5 or 1"  # the constructor's entry wins
    assert meanings["mode"] == "documented only here, in the class docstring"
    assert "hidden_note" not in meanings


def test_model_params_rows(toy):
    rows = {r["name"]: r for r in model_params("toy-params")}
    assert list(rows) == ["width", "rate", "mode", "scale", "flag", "hidden_note"]
    assert rows["width"] == {"name": "width", "type": "int", "default": 4, "constraint": ">= 1",
                             "meaning": "units of the toy layer"}
    assert rows["mode"]["constraint"] == "one of: natural, random"
    assert rows["flag"]["constraint"] == "" and rows["flag"]["type"] == "bool"
    assert rows["hidden_note"]["meaning"] == ""  # undocumented: empty, no failure
    with pytest.raises(ConfigError, match="did you mean 'toy-params'"):
        model_params("toy-param")


# --- constraints ----------------------------------------------------------------------
@pytest.mark.parametrize("text,shown,inside,outside", [
    (">= 1", ">= 1", [1, 2, 10**9], [0, 0.999, -1]),
    ("> 0", "> 0", [1e-12, 3], [0, -1]),
    (">= 0", ">= 0", [0, 0.5], [-1e-9]),
    ("<= 5", "<= 5", [5, -100], [5.001]),
    ("< -1", "< -1", [-1.5], [-1, 0]),
    ("in [0, 1)", "in [0, 1)", [0, 0.5], [1, -0.1]),
    ("in (0, 1]", "in (0, 1]", [1, 0.5], [0, 1.1]),
    ("in [0, 1]", "in [0, 1]", [0, 1], [-0.01, 1.01]),
    ("in (0, 1)", "in (0, 1)", [0.5], [0, 1]),
    ("in [2.5e-1, 1e3]", "in [2.5e-1, 1e3]", [0.25, 1000], [0.2, 1001]),
    ("in [1, inf)", "in [1, inf)", [1, 1e300], [0]),
    (">=1", ">= 1", [1], [0]),
    (("natural", "random"), "one of: natural, random", ["natural", "random"], ["rnadom", 1, None]),
])
def test_constraint_forms(text, shown, inside, outside):
    c = parse_constraint(text)
    assert c.text == shown
    assert all(c.allows(v) for v in inside), [v for v in inside if not c.allows(v)]
    assert not any(c.allows(v) for v in outside), [v for v in outside if c.allows(v)]


def test_numeric_constraints_refuse_non_numbers():
    c = parse_constraint(">= 0")
    assert not c.allows(True) and not c.allows("3") and not c.allows(float("nan"))


@pytest.mark.parametrize("bad", ["x", ">= ", "=> 1", "in [1, 0]", "in [0 1]", "between 0 and 1", "", 3, ()])
def test_malformed_constraint_is_a_programming_error(bad):
    with pytest.raises(ValueError, match="cannot parse constraint"):
        parse_constraint(bad)


def test_malformed_constraint_names_the_class_at_check_time(toy):
    class Broken(Toy):
        name = "toy-broken"
        param_constraints = {"width": "at least one"}

    register(Broken)
    try:
        with pytest.raises(ValueError, match=r"Broken\.param_constraints\['width'\]"):
            build_model("toy-broken", SPEC, {"width": 2})
        Broken.param_constraints = {"widht": ">= 1"}  # a typo in the name is a bug too
        with pytest.raises(ValueError, match="'widht' is not a parameter of Broken"):
            build_model("toy-broken", SPEC, {})
    finally:
        unregister("toy-broken")


# --- checks before building ---------------------------------------------------------------
@pytest.mark.parametrize("params,message", [
    ({"width": -4}, "model parameter 'width' of toy-params must be >= 1, got -4"),
    ({"width": 0}, "model parameter 'width' of toy-params must be >= 1, got 0"),
    ({"rate": 0}, "model parameter 'rate' of toy-params must be in (0, 1], got 0"),
    ({"rate": 1.5}, "model parameter 'rate' of toy-params must be in (0, 1], got 1.5"),
    ({"scale": float("inf")}, "model parameter 'scale' of toy-params must be a finite number, got inf"),
    ({"width": "abc"}, "model parameter 'width' of toy-params must be a number, got 'abc'"),
    ({"width": 2.5}, "model parameter 'width' of toy-params must be an integer, got 2.5"),
    ({"flag": 1}, "model parameter 'flag' of toy-params must be true or false, got 1"),
    ({"mode": 3}, "model parameter 'mode' of toy-params must be a string, got 3"),
    ({"mode": "rnadom"}, "did you mean 'random'? (choices: natural, random)"),
    ({"widht": 3}, "unknown parameter of model 'toy-params' 'widht'; did you mean 'width'?"),
])
def test_bad_params_refused_before_the_constructor(toy, params, message):
    with pytest.raises(ConfigError) as info:
        build_model("toy-params", SPEC, params)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert BUILT == []  # the constructor never ran


def test_good_params_are_converted_and_built(toy):
    model = build_model("toy-params", SPEC, {"width": 3.0, "rate": 1, "mode": "random"})
    assert BUILT == [{"width": 3, "rate": 1.0, "mode": "random"}]
    assert type(model.params["width"]) is int and type(model.params["rate"]) is float
    assert check_params(Toy, "toy-params", {"scale": 2}, {"scale": 1.0}) == {"scale": 2.0}


def test_train_config_checks_model_params_without_building(toy):
    with pytest.raises(ConfigError, match="'width' of toy-params must be >= 1, got 0"):
        TrainConfig.from_dict({"model": "toy-params", "data": "moons", "model_params": {"width": 0}},
                              source="command line")
    assert BUILT == []


def test_builtin_models_document_and_constrain_every_parameter():
    """Every built-in model: constraints parse and name real parameters; every parameter has a meaning."""
    missing = []
    for name, cls in list_models().items():
        class_constraints(cls)  # raises ValueError on a malformed declaration
        for row in model_params(name):
            if not row["meaning"].strip():
                missing.append(f"{name}.{row['name']}")
    assert not missing, "parameters without an Args: entry in the constructor docstring: " + ", ".join(missing)


# --- deepgen list MODEL -----------------------------------------------------------------
def test_list_model_shows_every_param_with_default(capsys):
    from deepgen.models.params import show_value

    assert main(["list", "made"]) == 0
    out = capsys.readouterr().out
    assert "model:       made" in out and "family:      autoregressive" in out and "density:     exact" in out
    for row in model_params("made"):
        assert f"  {row['name']}: {row['type']} = {show_value(row['default'])}" in out, row["name"]
        if row["constraint"]:
            assert f"({row['constraint']})" in out
    assert "training defaults" in out and "lr: 0.003" in out


def test_list_registered_model_with_meanings_and_train_defaults(toy, capsys):
    assert main(["list", "toy-params"]) == 0
    out = capsys.readouterr().out
    assert "  width: int = 4  (>= 1)\n      units of the toy layer\n" in out
    assert "  mode: str = natural  (one of: natural, random)\n" in out
    assert "  flag: bool = false\n      a switch\n" in out
    assert "  hidden_note: int = 0\n      (undocumented)\n" in out
    assert "  lr: 0.01\n  steps: 7\n" in out


def test_list_unknown_model_suggests(capsys):
    assert main(["list", "madee"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'madee'" in err and "did you mean 'made'" in err


def test_list_without_model_mentions_list_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "models:" in out and "datasets:" in out and "presets:" in out
    assert out.rstrip().endswith("deepgen list MODEL shows a model's hyper-parameters")


# --- train --help defaults -----------------------------------------------------------------
def _train_help(capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_train_help_shows_defaults(capsys):
    import argparse

    from deepgen.cli import build_parser

    assert "--steps STEPS optimizer steps in all (default: 2000)" in _train_help(capsys)
    defaults = train_field_defaults()
    parser = build_parser()
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    for key in ("steps", "batch_size", "lr", "warmup_steps", "lr_schedule", "grad_clip", "seed", "eval_every",
                "accelerator", "devices", "num_nodes", "strategy", "precision"):
        assert helps[key].endswith(f"(default: {defaults[key]})"), (key, helps[key])
    assert all(a.default is None for a in train._actions if a.dest in defaults)  # "not given" stays visible


def test_train_field_defaults_are_the_dataclass_defaults():
    cfg = TrainConfig()
    assert train_field_defaults() == {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)}
    assert cfg.progress is False  # the Python API is quiet; the CLI turns progress on


def test_train_help_imports_no_torch():
    code = ("import sys, deepgen.cli\n"
            "try:\n    deepgen.cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'lightning', 'numpy', 'matplotlib') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:] + proc.stderr[-2000:]
    assert "(default: 2000)" in proc.stdout
