"""Two processes never write one run directory (issue 14, promise 4): the ``RUN/.lock`` file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deepgen.errors import DeepgenError
from deepgen.workflows.runlock import LOCK_FILE, RunLocked, acquire, run_lock

HOLDER = textwrap.dedent("""
    import sys
    from deepgen.workflows.runlock import acquire
    lock = acquire(sys.argv[1])
    print("held", flush=True)
    sys.stdin.read()  # until the parent closes stdin (or kills us)
""")


def start_holder(directory):
    """A second real process holding the lock of ``directory``; returns it once it holds the lock."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.stdout.readline().strip() == "held", p.stderr.read()
    return p


def test_second_process_is_refused_then_gets_the_lock(tmp_path):
    holder = start_holder(tmp_path)
    try:
        text = (tmp_path / LOCK_FILE).read_text()
        assert f"pid {holder.pid}" in text and socket.gethostname() in text
        with pytest.raises(RunLocked) as err:
            acquire(tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and str(tmp_path) in msg and f"process {holder.pid}" in msg
        assert isinstance(err.value, DeepgenError)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert not (tmp_path / LOCK_FILE).exists()  # released at exit
    with run_lock(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / LOCK_FILE).read_text()
    assert not (tmp_path / LOCK_FILE).exists()


def test_stale_lock_of_killed_process_is_taken_over_with_a_warning(tmp_path, capsys):
    holder = start_holder(tmp_path)
    holder.kill()  # SIGKILL: no clean-up, the lock file stays behind
    holder.wait(timeout=60)
    assert f"pid {holder.pid}" in (tmp_path / LOCK_FILE).read_text()
    lock = acquire(tmp_path)
    try:
        err = capsys.readouterr().err
        assert "stale lock" in err and str(holder.pid) in err and err.count("\n") == 1
        assert f"pid {os.getpid()}" in (tmp_path / LOCK_FILE).read_text()
    finally:
        lock.release()


def test_lock_file_naming_a_dead_pid_without_flock_holder(tmp_path, capsys):
    """A lock file left by an earlier crash (no process holds it) is taken over, naming the dead pid."""
    (tmp_path / LOCK_FILE).write_text(f"pid 999999999 host {socket.gethostname()}\n")
    with run_lock(tmp_path):
        assert "999999999" in capsys.readouterr().err
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_released_on_exception_and_ctrl_c(tmp_path, exc):
    with pytest.raises(exc):
        with run_lock(tmp_path):
            raise exc()
    assert not (tmp_path / LOCK_FILE).exists()
    acquire(tmp_path).release()


def test_release_twice_and_in_a_forked_child_is_harmless(tmp_path):
    lock = acquire(tmp_path)
    pid = os.fork()
    if pid == 0:  # the child must not remove its parent's lock
        lock.release()
        os._exit(0)
    os.waitpid(pid, 0)
    assert (tmp_path / LOCK_FILE).exists()
    lock.release()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def _cfg(data):
    from deepgen.training.config import TrainConfig

    return TrainConfig(model="made", data=str(data), steps=2, eval_every=2, batch_size=8,
                       model_params={"hidden": 4, "num_masks": 1})


def test_train_refuses_a_directory_another_process_writes(tmp_path):
    """train() takes the lock before writing: while another process holds it nothing is written or deleted,
    not even with --overwrite."""
    from deepgen.workflows.train import train

    np.savetxt(tmp_path / "tiny.csv", np.random.default_rng(0).normal(size=(20, 2)), delimiter=",")
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("kept: true\n")
    holder = start_holder(out)
    try:
        for overwrite in (False, True):
            with pytest.raises(DeepgenError) as err:
                train(_cfg(tmp_path / "tiny.csv"), out, overwrite=overwrite)
            if overwrite:
                assert isinstance(err.value, RunLocked) and f"process {holder.pid}" in str(err.value)
        assert (out / "config.yaml").read_text() == "kept: true\n"
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "config.yaml"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_train_releases_the_lock(tmp_path):
    from deepgen.workflows.train import train

    np.savetxt(tmp_path / "tiny.csv", np.random.default_rng(0).normal(size=(20, 2)), delimiter=",")
    train(_cfg(tmp_path / "tiny.csv"), tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_real_trainings_into_one_directory(tmp_path):
    """Two `deepgen train` processes on one --out: exactly one trains; the other exits 2 with one line."""
    np.savetxt(tmp_path / "tiny.csv", np.random.default_rng(0).normal(size=(40, 2)), delimiter=",")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepgen", "train", "--model", "made", "--data", str(tmp_path / "tiny.csv"),
           "--steps", "8000", "--eval-every", "2000", "--batch-size", "8", "--param", "hidden=4", "--out", str(out),
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        import time

        deadline = time.time() + 120
        while not (out / LOCK_FILE).exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert (out / LOCK_FILE).exists(), "the first training never took the lock"
        second = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, env=env, timeout=300)
        assert second.returncode == 2, second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "in use by process" in lines[0] and str(first.pid) in lines[0], second.stderr
        assert first.wait(timeout=600) == 0, first.stderr
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
    assert not (out / LOCK_FILE).exists() and (out / "scores.json").is_file()
