"""``deepgen translate``: a run's translator applied to a split or a file; what it writes reloads equal to
model.translate(input), and every refusal is one clean error that writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepgen.data import load_data
from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel
from deepgen.models.pretrained import save_model
from deepgen.models.registry import build_model, register, unregister
from deepgen.workflows.translate import translate_run

pytestmark = pytest.mark.usefixtures("one_thread")


class Invert(GenerativeModel):
    """A translator with a known answer: G(x) = (L - 1) - x one way, the same map back (an exact inverse)."""

    name = "invert-translator-test"
    family = "test"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"translate"})

    def __init__(self, spec: DataSpec, one_way: bool = False):
        super().__init__(spec, one_way=one_way)
        self.register_buffer("top", torch.tensor(float(spec.levels - 1)))

    def translate(self, x, reverse=False):
        if reverse and self.params["one_way"]:
            raise ConfigError(f"{self.name} maps A -> B only")
        return self.top - x


@pytest.fixture(scope="module")
def thick():
    return load_data("digits2thick")


@pytest.fixture
def run_of(tmp_path, thick):
    register(Invert)

    def make(one_way=False, name="run"):
        model = Invert(thick.spec, one_way=one_way)
        return save_model(model, tmp_path / name, extra={"train": {"data": "digits2thick"}}), model

    yield make
    unregister(Invert.name)


def reload(out):
    return torch.from_numpy(np.load(out / "translated.npy"))


def test_split_input_both_directions(tmp_path, run_of, thick):
    run, model = run_of()
    out = tmp_path / "out"
    summary = translate_run(run, "test", out)
    a = thick.translation.source["test"]
    assert summary["n"] == len(a) and summary["direction"] == "digits -> thick digits"
    got = reload(out)
    assert got.dtype == torch.float32 and torch.equal(got, model.translate(a))
    assert (out / "translated.png").stat().st_size > 1000 and summary["picture"] == str(out / "translated.png")
    summary = translate_run(run, "val", out, reverse=True)  # B -> A: the B examples of the split
    assert summary["direction"] == "thick digits -> digits"
    assert torch.equal(reload(out), model.translate(thick.val, reverse=True))
    assert sorted(p.name for p in out.iterdir()) == ["translated.npy", "translated.png"]  # no temporary files


def test_file_input_all_rows(tmp_path, run_of, thick):
    run, model = run_of()
    x = thick.train[:70]
    np.save(tmp_path / "some.npy", x.numpy().astype(np.uint8))
    summary = translate_run(run, str(tmp_path / "some.npy"), tmp_path / "out")
    assert summary["n"] == 70  # every row, not a split of the file
    assert torch.equal(reload(tmp_path / "out"), model.translate(x))


def test_refusals_write_nothing(tmp_path, run_of, thick):
    run, _ = run_of()
    one_way, _ = run_of(one_way=True, name="one-way")
    out = tmp_path / "out"
    np.save(tmp_path / "wide.npy", np.zeros((3, 1, 8, 9), dtype=np.uint8))
    np.save(tmp_path / "bright.npy", np.full((3, 1, 8, 8), 200, dtype=np.uint8))
    cases = [
        (one_way, "test", True, ConfigError, "maps A -> B only; cyclegan maps both ways"),
        (run, str(tmp_path / "wide.npy"), False, DataError, r"shape \(1, 8, 9\), expected \(1, 8, 8\)"),
        (run, str(tmp_path / "bright.npy"), False, DataError, r"integers in \[0, 16\]"),
        (run, "tset", False, DataError, "expected a split \\(train, val, test\\) or a path"),
        (run, str(tmp_path / "missing.npy"), False, DataError, "missing.npy"),
    ]
    for r, source, reverse, error, message in cases:
        with pytest.raises(error, match=message) as info:
            translate_run(r, source, out, reverse=reverse)
        assert "\n" not in str(info.value)
        assert not out.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file; expected a directory"):
        translate_run(run, "test", tmp_path / "file")


def test_refuses_a_model_that_does_not_translate(tmp_path, run_of, thick):
    run_of()  # registers the test translator, which the message then lists
    plain = save_model(build_model("made", thick.spec, {"hidden": 8, "num_masks": 1}), tmp_path / "made",
                       extra={"train": {"data": "digits2thick"}})
    with pytest.raises(ConfigError, match="does not translate; models that do: .*invert-translator-test") as info:
        translate_run(plain, "test", tmp_path / "out")
    assert "cyclegan" in str(info.value) and "pix2pix" in str(info.value)
