"""A run remembers its data exactly: absolute path, format and npz key, plus a content hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from deepgen.io import read_yaml


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deepgen", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_score_finds_a_runs_file_from_any_directory_and_notices_changes(tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(work / "data" / "two.npz", x=rng.normal(size=(200, 3)).astype(np.float32),
             other=rng.normal(size=(200, 2)).astype(np.float32))
    proc = cli("train", "--model", "realnvp", "--data", "data/two.npz:other", "--steps", "5", "--param",
               "couplings=2", "--out", "run", "--no-progress", cwd=work)
    assert proc.returncode == 0, proc.stderr[-1500:]
    cfg = read_yaml(work / "run" / "config.yaml")
    assert cfg["train"]["data"] == f"npz:{work / 'data' / 'two.npz'}:other"  # absolute, format and key kept
    assert len(cfg["data_sha256"]) == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("score", str(work / "run"), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-1500:]
    scores = json.loads(proc.stdout)
    assert scores["nll_nats"] == json.loads((work / "run" / "scores.json").read_text())["nll_nats"]
    assert "warning" not in proc.stderr

    np.savez(work / "data" / "two.npz", x=np.zeros((200, 3), np.float32), other=np.ones((200, 2), np.float32))
    proc = cli("score", str(work / "run"), cwd=elsewhere)
    assert "has changed since run" in proc.stderr

    os.rename(work / "data", work / "moved")
    proc = cli("score", str(work / "run"), cwd=elsewhere)
    assert proc.returncode == 2
    assert str(work / "data" / "two.npz") in proc.stderr and proc.stderr.count("\n") == 1
