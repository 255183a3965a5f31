"""Safe loading: no pickle ever runs; corrupt, truncated or mismatched files get clear errors."""

import os
import pickle

import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import CheckpointError, ConfigError
from deepgen.io import atomic_path
from deepgen.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model
from deepgen.models.registry import build_model


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def saved(tmp_path):
    model = build_model("realnvp", DataSpec("v", (2,)), {"couplings": 2, "hidden": 8})
    save_model(model, tmp_path)
    return tmp_path


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_pickle_payload_is_refused_without_running(saved, tmp_path, fmt):
    marker = tmp_path / "pwned"
    weights = saved / WEIGHTS_FILE
    if fmt == "pickle":
        weights.write_bytes(pickle.dumps(_Payload(str(marker))))
    else:
        torch.save({"x": _Payload(str(marker))}, weights)
    # control: the payload really runs code when unpickled
    with open(weights, "rb") as f:
        if fmt == "pickle":
            pickle.load(f)
            assert marker.exists()
            marker.unlink()
    with pytest.raises(CheckpointError, match="refusing"):
        load_model(saved)
    assert not marker.exists()


def test_truncated_weights(saved):
    w = saved / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(saved)


def test_missing_weights(saved):
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_model(saved)


def test_weights_from_another_architecture(saved, tmp_path):
    other = build_model("realnvp", DataSpec("v", (2,)), {"couplings": 2, "hidden": 16})
    save_model(other, tmp_path / "other")
    os.replace(tmp_path / "other" / WEIGHTS_FILE, saved / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(saved)


def test_corrupt_config(saved):
    (saved / CONFIG_FILE).write_text("model_config: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model(saved)
    (saved / CONFIG_FILE).write_text("model_config: {model: nosuch, data: {name: v, shape: [2]}}")
    with pytest.raises(ConfigError, match="unknown model 'nosuch'"):
        load_model(saved)


def test_yaml_cannot_construct_objects(saved, tmp_path):
    marker = tmp_path / "yaml-pwned"
    (saved / CONFIG_FILE).write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        load_model(saved)
    assert not marker.exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_a_safetensors_header_length_starting_with_0x80_is_not_mistaken_for_pickle(tmp_path):
    import json
    import struct

    from deepgen.io import load_tensors

    header = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (0x80 + 256 - len(header))  # a header length whose first byte is 0x80
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.5))
    assert path.read_bytes()[0] == 0x80
    assert load_tensors(path)["x"].item() == 1.5
    pickled = tmp_path / "p.safetensors"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
    with pytest.raises(CheckpointError, match="pickle"):
        load_tensors(pickled)
