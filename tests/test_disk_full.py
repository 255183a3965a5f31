"""A full disk or a file-size limit leaves the previous files intact and ends with one line
(issue 14, promise 3): ENOSPC injected into the writers, and a real `deepgen train` under ``ulimit -f``."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from deepgen import io as dio
from deepgen.errors import DeepgenError
from deepgen.io import WriteError, load_tensors, save_tensors, write_json, write_text, write_yaml

WRITERS = {
    "text": lambda p: write_text(p, "new text " * 100),
    "yaml": lambda p: write_yaml(p, {"new": list(range(100))}),
    "json": lambda p: write_json(p, {"new": list(range(100))}),
    "tensors": lambda p: save_tensors(p, {"w": torch.ones(100)}),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_one_line(exc: BaseException, path: Path, why: str) -> None:
    msg = str(exc)
    assert isinstance(exc, DeepgenError) and "\n" not in msg
    assert str(path) in msg and why in msg, msg


@pytest.mark.parametrize("code,why", [(errno.ENOSPC, "disk full"), (errno.EFBIG, "file too large"),
                                      (errno.EDQUOT, "quota")])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_injected_error_keeps_the_previous_file(tmp_path, monkeypatch, kind, code, why):
    path = tmp_path / f"file.{kind}"
    save_tensors(path, {"old": torch.zeros(3)}) if kind == "tensors" else write_text(path, "old content\n")
    before = snapshot(tmp_path)

    def full(tmp):  # the data went to the temporary file; the disk filled when it was flushed
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(dio, "_fsync", full)
    with pytest.raises(WriteError) as err:
        WRITERS[kind](path)
    check_one_line(err.value, path, why)
    assert snapshot(tmp_path) == before  # byte-identical, and no temporary file left behind


def test_library_wrapped_errors_are_recognised(tmp_path, monkeypatch):
    """safetensors (Rust) reports a full disk as SafetensorError text; a half-written temporary file is removed."""
    from safetensors import SafetensorError

    path = tmp_path / "model.safetensors"
    save_tensors(path, {"old": torch.zeros(3)})
    before = snapshot(tmp_path)

    def half_then_full(tensors, tmp, metadata=None):
        Path(tmp).write_bytes(b"\0" * 10)
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr(dio, "save_file", half_then_full)
    with pytest.raises(WriteError) as err:
        save_tensors(path, {"w": torch.ones(2)})
    check_one_line(err.value, path, "disk full")
    assert snapshot(tmp_path) == before
    assert load_tensors(path)["old"].shape == (3,)


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with dio.atomic_path(tmp_path / "x") as tmp:
            Path(tmp).write_text("partial")
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_new_files_get_the_usual_mode(tmp_path):
    """Atomic writes no longer leave files 0600 (mkstemp's mode): 0666 less the umask, or the old file's mode."""
    write_text(tmp_path / "a", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(tmp_path / "a", 0o640)
    write_text(tmp_path / "a", "y")
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640


def _tiny_cfg(data, steps):
    from deepgen.training.config import TrainConfig

    return TrainConfig(model="made", data=str(data), steps=steps, eval_every=2, batch_size=8,
                       model_params={"hidden": 4, "num_masks": 1})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from deepgen.workflows.train import train

    root = tmp_path_factory.mktemp("disk")
    np.savetxt(root / "tiny.csv", np.random.default_rng(0).normal(size=(20, 2)), delimiter=",")
    train(_tiny_cfg(root / "tiny.csv", 2), root / "run")
    return root


def test_training_checkpoint_on_a_full_disk(tiny_run, tmp_path, monkeypatch):
    """A resumed run whose checkpoint hits ENOSPC stops with WriteError; its previous checkpoint is intact:
    the weights written before the failure do not replace the old ones (a checkpoint never mixes two steps)."""
    import shutil

    from deepgen.workflows.runlock import LOCK_FILE
    from deepgen.workflows.train import train

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    keep = ("model.safetensors", "training_state.safetensors", "metrics.csv", "scores.json")
    before = {name: (run / name).read_bytes() for name in keep}
    real = dio._fsync

    def full_on_weights(tmp):  # the weights are written, the training state (written second) fails
        if ".training_state.safetensors." in tmp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(tmp)

    monkeypatch.setattr(dio, "_fsync", full_on_weights)
    with pytest.raises(WriteError) as err:
        train(_tiny_cfg(tiny_run / "tiny.csv", 4), run, resume=True)
    check_one_line(err.value, run / "training_state.safetensors", "disk full")
    assert {name: (run / name).read_bytes() for name in keep} == before
    assert not (run / LOCK_FILE).exists()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


LIMITED_WRITE = textwrap.dedent("""
    import sys
    from deepgen.io import ignore_file_size_signal, write_text
    ignore_file_size_signal()
    write_text(sys.argv[1], "x" * 100_000)
""")


def _limit(nbytes):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return preexec


def test_file_size_limit_in_a_child_process(tmp_path):
    """Under ``ulimit -f`` a write past the limit is an EFBIG WriteError (SIGXFSZ ignored), the old file stays."""
    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n")
    code = ("import sys\nfrom deepgen.errors import DeepgenError\ntry:\n" + textwrap.indent(LIMITED_WRITE, "    ")
            + "except DeepgenError as exc:\n    print(exc, file=sys.stderr)\n    sys.exit(2)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         preexec_fn=_limit(10_000), timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "file too large" in lines[0]
    assert path.read_text() == "old: 1\n" and os.listdir(tmp_path) == ["config.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("limit", [512, 3000])
def test_real_train_under_ulimit(tiny_run, tmp_path, limit):
    """`deepgen train --resume` under ``ulimit -f``: exit 2, one line naming the file, and the run's files
    byte-identical (512 bytes: even config.yaml fails; 3000: config.yaml is rewritten, the weights fail).
    The SIGXFSZ signal is not ignored by the parent: deepgen must ignore it itself."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    before = snapshot(run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "deepgen", "train", "--resume", str(run), "--steps", "4",
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=600,
                         preexec_fn=_limit(limit))
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = [line for line in out.stderr.splitlines() if line.startswith("deepgen:") and "warning" not in line]
    assert len(lines) == 1 and "file too large" in lines[0] and str(run) in lines[0], out.stderr
    after = snapshot(run)
    changed = {k for k in before if before[k] != after.get(k)}
    allowed = set() if limit == 512 else {"config.yaml"}
    assert changed <= allowed, changed
    assert not [k for k in after if k.endswith(".tmp") or k == ".lock"]
    assert signal.SIGXFSZ  # the platform has the signal this test is about
