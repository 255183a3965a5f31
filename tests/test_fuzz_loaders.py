"""Hostile and malformed input: a property-based fuzz suite over every loader (issue 14, promise 5).

Every case must end with a correct result or a :class:`DeepgenError` of one line that names the
file -- never another exception, never a hang (each case runs under an alarm), never code run
(YAML python tags, pickled npy/npz), and with bounded memory (bomb cases measured in a child
process with ``ru_maxrss``).  Cases are counted per loader; ``DEEPGEN_FUZZ_REPORT=path`` writes
the counts as JSON at the end of the module.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepgen.data.file_labels import load_labelled_file
from deepgen.data.files import load_file
from deepgen.errors import DeepgenError
from deepgen.io import load_tensors, read_yaml, save_tensors

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
CASE_SECONDS = 20  # a case that takes longer is a hang


class Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int):
    def fire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def answer(loader: str, fn, names):
    """Run ``fn``: its result, or None after a clean DeepgenError (one line, naming one of ``names``).
    Any other exception (or a hang) fails the test."""
    names = [str(n) for n in ([names] if isinstance(names, (str, Path)) else names)]
    try:
        with alarm(CASE_SECONDS):
            result = fn()
    except DeepgenError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg, f"not one line: {msg!r}"
        assert any(n in msg for n in names), f"does not name {names}: {msg}"
        COUNTS[loader]["error"] += 1
        return None
    COUNTS[loader]["ok"] += 1
    return result


def same_values(x: torch.Tensor, a: np.ndarray) -> bool:
    """The loaded float32 examples hold the values of ``a`` (layout aside)."""
    want = np.sort(np.asarray(a, dtype=np.float32).ravel())
    got = np.sort(x.numpy().ravel())
    return want.shape == got.shape and np.array_equal(want, got)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        yield Path(d)


def new_dir(root: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=root))


mutations = st.sampled_from(["none", "truncate", "flip", "append", "empty"])


def mutate(raw: bytes, how: str, data) -> bytes:
    """``raw`` damaged as ``how`` says; ``data`` is Hypothesis' data object (or a composite's ``draw``)."""
    data = data if hasattr(data, "draw") else type("Draw", (), {"draw": staticmethod(data)})
    if how == "truncate" and raw:
        return raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    if how == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        return raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[i + 1:]
    if how == "append":
        return raw + data.draw(st.binary(min_size=1, max_size=16), label="tail")
    if how == "empty":
        return b""
    return raw


# --------------------------------------------------------------------------- IDX

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_header(code: int, dims) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


@FUZZ
@given(data=st.data(), code=st.sampled_from(sorted(IDX_TYPES)),
       dims=st.lists(st.integers(0, 4), min_size=1, max_size=4), gz=st.booleans(), how=mutations,
       magic=st.booleans(), absurd=st.booleans())
def test_fuzz_idx(workdir, data, code, dims, gz, how, magic, absurd):
    dtype = np.dtype(IDX_TYPES[code])
    n = int(np.prod(dims))
    payload = data.draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize), label="payload")
    raw = idx_header(code, dims) + payload
    if magic:
        raw = data.draw(st.binary(min_size=4, max_size=4), label="magic") + raw[4:]
    if absurd:  # 10^12 elements declared, a few bytes present
        raw = idx_header(code, [10**6, 10**6] + dims[2:]) + payload
    raw = mutate(raw, how, data)
    if gz:
        raw = gzip.compress(raw)
    path = new_dir(workdir) / ("x-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(raw)
    got = answer("idx", lambda: load_file(str(path)), path.name)
    if got is not None:
        assert not absurd, "an IDX header declaring 10^12 values was accepted"
        if how == "none" and not magic:
            assert same_values(got[0], np.frombuffer(payload, dtype))
    answer("idx", lambda: load_labelled_file(str(path)), path.name)


# --------------------------------------------------------------------------- npy / npz

NUMERIC = ["u1", "i2", "<i4", ">f4", "<f8", "?", "c8", "U3", "O", [("a", "<f4")]]


@st.composite
def small_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(NUMERIC), label="dtype"))
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=5), label="shape"))
    n = int(np.prod(shape))
    if dtype.kind == "O":
        return np.array([object()] * n + [None], dtype=object)[:n].reshape(shape)
    if dtype.kind == "U":
        return np.array(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=dtype).reshape(shape)
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize), label="values")
    a = np.frombuffer(raw, dtype).reshape(shape).copy()
    if dtype.kind == "f" and n and draw(st.booleans()):
        a.ravel()[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return a


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def absurd_npy(shape=(10**6, 10**6), descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64  # the header (magic included) and 64 bytes of data


def check_numeric_result(got, a: np.ndarray):
    """A loaded array must be a numeric, finite array of examples holding ``a``'s values."""
    assert a.dtype.kind in "biuf" and a.dtype.names is None and a.ndim in (2, 3, 4) and a.size
    assert same_values(got[0], a)


@FUZZ
@given(data=st.data(), a=small_arrays(), how=mutations, absurd=st.booleans())
def test_fuzz_npy(workdir, data, a, how, absurd):
    raw = absurd_npy() if absurd else npy_bytes(a)
    raw = mutate(raw, how, data)
    path = new_dir(workdir) / "x.npy"
    path.write_bytes(raw)
    got = answer("npy", lambda: load_file(str(path)), path.name)
    if got is not None:
        assert not absurd and how in ("none", "append")
        check_numeric_result(got, a)
    y = new_dir(workdir) / "y.npy"
    y.write_bytes(mutate(npy_bytes(a.ravel()), how, data))
    if got is not None:  # labels from a second (fuzzed) .npy file
        answer("npy", lambda: load_labelled_file(str(path), labels=str(y)), [path.name, y.name])


@FUZZ
@given(data=st.data(), arrays=st.dictionaries(st.sampled_from(["x", "data", "y", "labels", "k"]), small_arrays(),
                                              max_size=3),
       compressed=st.booleans(), how=mutations, absurd=st.booleans(),
       key=st.sampled_from([None, "x", "y", "nope"]), labels=st.sampled_from([None, "y", "x", "none", "nope"]))
def test_fuzz_npz(workdir, data, arrays, compressed, how, absurd, key, labels):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for k, v in arrays.items():
            z.writestr(k + ".npy", npy_bytes(v))
        if absurd:
            z.writestr("bomb.npy", absurd_npy())
    raw = mutate(buf.getvalue(), how, data)
    path = new_dir(workdir) / "x.npz"
    path.write_bytes(raw)
    source = str(path) + (f":{key}" if key else "")
    got = answer("npz", lambda: load_file(source), path.name)
    if got is not None:
        assert how in ("none", "append")
        picked = arrays[key] if key else (next(iter(arrays.values())) if len(arrays) == 1 else
                                          next(arrays[k] for k in ("x", "data") if k in arrays))
        check_numeric_result(got, picked)
    answer("npz", lambda: load_labelled_file(source, labels=labels), path.name)


# --------------------------------------------------------------------------- CSV

CELLS = ["1", "-2.5", "0", "3e2", "nan", "inf", "-inf", "1e400", "", "abc", " 7 ", '"4"', "0x10", "é", "1,5"]


@FUZZ
@given(data=st.data(), rows=st.lists(st.lists(st.sampled_from(CELLS), min_size=1, max_size=4), max_size=6),
       header=st.booleans(), how=st.sampled_from(["none", "none", "bytes", "latin1", "truncate"]),
       labels=st.sampled_from([None, "col:0", "col:3", "col:x", "a", "none"]))
def test_fuzz_csv(workdir, data, rows, header, how, labels):
    text = ("a,b,c\n" if header else "") + "\n".join(",".join(r) for r in rows) + "\n"
    raw = text.encode("utf-8")
    if how == "bytes":
        raw = data.draw(st.binary(max_size=64), label="raw")
    elif how == "latin1":
        raw = text.encode("utf-8") + "é,ü\n".encode("latin-1")
    elif how == "truncate":
        raw = mutate(raw, "truncate", data)
    path = new_dir(workdir) / "t.csv"
    path.write_bytes(raw)
    got = answer("csv", lambda: load_file(str(path)), path.name)
    if got is not None:
        assert torch.isfinite(got[0]).all() and got[0].ndim == 2
    answer("csv", lambda: load_labelled_file(str(path), labels=labels), path.name)


# --------------------------------------------------------------------------- image folders

def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring ``width`` x ``height`` (8-bit grey), then an empty IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@st.composite
def image_folder(draw, root: Path):
    folder = new_dir(root) / "imgs"
    folder.mkdir()
    n = draw(st.integers(0, 4), label="n")
    for i in range(n):
        sub = draw(st.sampled_from(["", "cat", "dog"]), label="class")
        (folder / sub).mkdir(exist_ok=True)
        size = draw(st.sampled_from([(2, 2), (2, 2), (3, 2)]), label="size")
        mode = draw(st.sampled_from(["L", "RGB", "RGBA", "1", "P", "I;16"]), label="mode")
        ext = draw(st.sampled_from([".png", ".bmp", ".jpg"]), label="ext")
        if ext != ".png" and mode not in ("L", "RGB"):
            mode = "L"
        im = Image.new(mode, size)
        im.putdata([draw(st.integers(0, 255), label="px") for _ in range(size[0] * size[1])]) if mode not in (
            "RGB", "RGBA") else None
        buf = io.BytesIO()
        im.save(buf, format={".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG"}[ext])
        raw = mutate(buf.getvalue(), draw(st.sampled_from(["none", "none", "none", "truncate", "flip"])), draw)
        (folder / sub / f"im{i}{ext}").write_bytes(raw)
    extra = draw(st.sampled_from(["none", "none", "huge", "link-out", "link-in", "text", "fifo", "dir-link"]))
    if extra == "huge":
        (folder / "huge.png").write_bytes(png_header(1_000_000, 1_000_000))  # 10^12 pixels declared
    elif extra == "link-out":
        outside = new_dir(root) / "secret.png"
        Image.new("L", (2, 2)).save(outside)
        os.symlink(outside, folder / "evil.png")
    elif extra == "link-in" and n:
        first = next(folder.rglob("im*"))
        os.symlink(first, folder / ("alias" + first.suffix))
    elif extra == "text":
        (folder / "notes.png").write_text("not an image")
    elif extra == "fifo":
        os.mkfifo(folder / "pipe.png")
    elif extra == "dir-link":
        os.symlink(root, folder / "loop")
    return folder, extra


@FUZZ
@given(data=st.data(), labels=st.sampled_from([None, "folders", "none", "bogus"]))
def test_fuzz_image_folders(workdir, data, labels):
    folder, extra = data.draw(image_folder(workdir), label="folder")
    got = answer("images", lambda: load_file(f"images:{folder}"), str(folder))
    if got is not None:
        x, spec = got
        assert extra not in ("huge", "link-out", "text", "fifo") and spec.levels == 256 and x.ndim == 4
        assert spec.shape[0] in (1, 3) and x.min() >= 0 and x.max() <= 255
    answer("images", lambda: load_labelled_file(f"images:{folder}", labels=labels), str(folder))
    from deepgen.data.source import source_sha256

    answer("images", lambda: source_sha256(f"images:{folder}"), str(folder))  # a FIFO must not block the hash


# --------------------------------------------------------------------------- YAML configs

HOSTILE_YAML = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "a: !!python/object/apply:os.system ['touch {marker}']",
    "a: !!python/name:os.system",
    "a: &a [*a]",
    "a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
    "[" * 5000,
    "model: made\nsteps: .nan",
    "model: made\nsteps: -5\nbatch_size: 1e12",
    "- 1\n- 2",
    "",
    "model: [1, 2]",
    "model: made\ndata: moons\nmodel_params: {hidden: -1}",
    "model: made\ndata: moons\nmodel_params: [1]",
    "model: made\ndata: moons\nbetas: .inf",
    "model: made\ndata: moons\nlr: .nan",
    "model: made\ndata: \"\\0\"",
    "model: made\ndata: moons\nsteps: 99999999999999999999999999",
]


@FUZZ
@given(data=st.data(), doc=st.one_of(st.sampled_from(HOSTILE_YAML), st.text(max_size=60)),
       raw=st.booleans())
def test_fuzz_yaml_config(workdir, data, doc, raw):
    from deepgen.training.config import TrainConfig

    folder = new_dir(workdir)
    marker = folder / "code-ran"
    path = folder / "preset.yaml"
    if raw:
        path.write_bytes(data.draw(st.binary(max_size=40), label="bytes"))
    else:
        path.write_text(doc.replace("{marker}", str(marker)), encoding="utf-8", errors="surrogateescape") if \
            "\ud800" not in doc else path.write_bytes(doc.encode("utf-8", "replace"))
    cfg = answer("yaml", lambda: read_yaml(path), path.name)
    assert not marker.exists(), "YAML ran code"
    if cfg is not None:
        assert isinstance(cfg, dict)
        answer("config", lambda: TrainConfig.from_dict(cfg, source=str(path)), [path.name, "field", "--"])


# --------------------------------------------------------------------------- safetensors headers

@FUZZ
@given(data=st.data(), how=st.sampled_from(["none", "truncate", "flip", "append", "empty", "length", "shape",
                                            "offsets", "pickle", "zip", "random"]))
def test_fuzz_safetensors(workdir, data, how):
    path = new_dir(workdir) / "model.safetensors"
    save_tensors(path, {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(2)})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    if how == "length":
        raw = data.draw(st.sampled_from([2**63, 2**40, n + 1, 0]), label="n").to_bytes(8, "little") + raw[8:]
    elif how in ("shape", "offsets"):
        if how == "shape":
            header["w"]["shape"] = [10**6, 10**6]
        else:
            header["w"]["data_offsets"] = [0, 10**12]
        body = json.dumps(header).encode()
        raw = len(body).to_bytes(8, "little") + body + raw[8 + n:]
    elif how == "pickle":
        raw = b"\x80\x04" + raw
    elif how == "zip":
        raw = b"PK\x03\x04" + raw
    elif how == "random":
        raw = data.draw(st.binary(max_size=64), label="raw")
    else:
        raw = mutate(raw, how, data)
    path.write_bytes(raw)
    got = answer("safetensors", lambda: load_tensors(path), path.name)
    if got is not None:
        assert set(got) == {"w", "b"} and got["w"].shape == (2, 3)


# --------------------------------------------------------------------------- run configs

VALUES = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real (2-step) run directory on a tiny CSV table."""
    from deepgen.training.config import TrainConfig
    from deepgen.workflows.train import train

    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    np.savetxt(root / "tiny.csv", rng.normal(size=(20, 2)), delimiter=",")
    cfg = TrainConfig(model="made", data=str(root / "tiny.csv"), steps=2, eval_every=2, batch_size=8,
                      model_params={"hidden": 4, "num_masks": 1})
    train(cfg, root / "run")
    return root / "run"


def _replace(tree, path, value):
    if not path:
        return value
    if isinstance(tree, dict) and tree:
        keys = sorted(tree, key=str)
        k = keys[path[0] % len(keys)]
        return {**tree, k: _replace(tree[k], path[1:], value)}
    return tree


def fuzzed_run(tiny_run: Path, root: Path, where, value) -> Path:
    """A copy of ``tiny_run`` (config and weights) whose config.yaml has one value replaced."""
    import shutil

    import yaml

    run = new_dir(root) / "run"
    run.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        shutil.copy(tiny_run / name, run / name)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(_replace(cfg, where, value)))
    return run


@settings(FUZZ, max_examples=30)
@given(where=st.lists(st.integers(0, 50), min_size=1, max_size=3), value=VALUES)
def test_fuzz_run_config(tiny_run, workdir, where, value):
    from deepgen.models.pretrained import model_config
    from deepgen.workflows.runs import run_data_source, run_label_context

    run = fuzzed_run(tiny_run, workdir, where, value)
    names = [str(run), "config.yaml"]
    answer("run config", lambda: run_data_source(run), names)
    answer("run config", lambda: run_label_context(run), names)
    answer("run config", lambda: model_config(run), names)


@pytest.mark.slow
@settings(FUZZ, max_examples=30)
@given(where=st.lists(st.integers(0, 50), min_size=1, max_size=3), value=VALUES)
def test_fuzz_run_config_load_model(tiny_run, workdir, where, value):
    from deepgen.models.pretrained import load_model

    run = fuzzed_run(tiny_run, workdir, where, value)
    answer("run config (load_model)", lambda: load_model(run), [str(run), "config.yaml"])


# --------------------------------------------------------------------------- CLI values

def run_cli(argv) -> tuple[int, str]:
    from deepgen.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    return code, err.getvalue()


def clean_refusal(code, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and "warning" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("deepgen: error:"), (code, err)


INTS = st.one_of(st.integers(-10**13, 0), st.sampled_from(["1.5", "1e3", "abc", "", "nan", "-0", "10" * 30]))


@settings(FUZZ, max_examples=25)
@given(steps=st.one_of(INTS, st.just(10**12)), batch=st.one_of(st.just(8), INTS, st.just(10**12)),
       param=st.one_of(st.just("hidden=4"), st.sampled_from(["hidden=-1", "hidden=abc", "hidden", "=3", "depth=1.5",
                                                               "nope=1", "hidden=[1]", "hidden=1e400", "hidden=.nan",
                                                               "order=7", "hidden=10000000000000"])))
def test_fuzz_cli_train_values(tiny_run, steps, batch, param):
    # the run directory already holds a run: a valid but absurd config is refused there, never trained
    argv = ["train", "--model", "made", "--data", "moons", "--out", tiny_run, "--steps", steps,
            "--batch-size", batch, "--param", param]
    code, err = run_cli(argv)
    COUNTS["cli"]["error" if code == 2 else "ok"] += 1
    clean_refusal(code, err)


@settings(FUZZ, max_examples=15)
@given(n=st.one_of(st.integers(-10**13, 0), st.sampled_from(["1.5", "1e3", "abc", "", "nan", "-0"])),
       batch=st.one_of(INTS, st.integers(1, 10**15)))
def test_fuzz_cli_sample_score_values(tiny_run, workdir, n, batch):
    code, err = run_cli(["sample", tiny_run, "-n", n, "--out", workdir / "s.npz"])
    COUNTS["cli"]["error"] += 1
    clean_refusal(code, err)
    code, err = run_cli(["score", tiny_run, "--batch-size", batch])
    COUNTS["cli"]["ok" if code == 0 else "error"] += 1
    if code != 0:  # a batch larger than the split is a correct request: scored in one batch
        clean_refusal(code, err)


def test_cli_sample_absurd_n_is_refused(tiny_run, workdir):
    code, err = run_cli(["sample", tiny_run, "-n", 10**12, "--out", workdir / "s.npz"])
    clean_refusal(code, err)


# --------------------------------------------------------------------------- bombs: peak memory

BOMB_SCRIPT = textwrap.dedent("""
    import gzip, io, json, resource, sys, zipfile, zlib
    import numpy as np
    from deepgen.data.files import load_file
    from deepgen.errors import DeepgenError

    kind, path = sys.argv[1], sys.argv[2]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_file(path)
        outcome = "loaded"
    except DeepgenError as exc:
        outcome = "error: " + str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "outcome": outcome, "before_kb": before, "after_kb": after}))
""")


def make_bombs(root: Path) -> dict[str, Path]:
    """Small files that would expand to gigabytes (or declare 10^12 elements)."""
    bombs = {}
    zeros = b"\0" * (1 << 20)
    # IDX gzip bomb: a header declaring 8x8 images of 10 examples, a stream of 1 GiB of zeros
    p = root / "bomb-images-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(idx_header(0x08, [10, 8, 8]))
        for _ in range(1024):
            f.write(zeros)
    bombs["idx-gzip-1GiB"] = p
    # IDX header declaring 10^12 ubyte values, gzipped, honest stream of 1 GiB
    p = root / "huge-images-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(idx_header(0x08, [10**6, 1000, 1000]))
        for _ in range(1024):
            f.write(zeros)
    bombs["idx-declares-1e12"] = p
    # npy declaring 10^12 floats
    p = root / "huge.npy"
    p.write_bytes(absurd_npy())
    bombs["npy-declares-1e12"] = p
    # npz whose member is 1 GiB of zeros deflated (member header honest: 2^28 float32)
    p = root / "bomb.npz"
    import zipfile

    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as m:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (2**18, 1024)})
        m.write(buf.getvalue())
        for _ in range(1024):
            m.write(zeros)
    bombs["npz-deflate-1GiB"] = p
    # PNG declaring 10^12 pixels
    folder = root / "pngbomb"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_header(1_000_000, 1_000_000))
    bombs["png-declares-1e12"] = folder
    return bombs


def measure_bombs(root: Path, limit_bytes: int | None) -> list[dict]:
    results = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if limit_bytes is not None:
        env["DEEPGEN_MAX_DATA_BYTES"] = str(limit_bytes)
    for kind, path in make_bombs(root).items():
        source = f"images:{path}" if path.is_dir() else str(path)
        out = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, kind, source], capture_output=True, text=True,
                             env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_bombs_bounded_memory(tmp_path):
    """Every bomb is refused with a clean error, and the loader's peak memory grows by < 64 MiB."""
    results = measure_bombs(tmp_path, limit_bytes=256 << 20)
    report = os.environ.get("DEEPGEN_FUZZ_REPORT")
    if report:
        Path(report).with_suffix(".bombs.json").write_text(json.dumps(results, indent=1))
    for r in results:
        assert r["outcome"].startswith("error: "), r
        assert "\n" not in r["outcome"]
        grew_mb = (r["after_kb"] - r["before_kb"]) / 1024
        assert grew_mb < 64, r


def test_declared_1e12_refused_before_allocation(workdir):
    """An IDX, npy or PNG header declaring 10^12 elements is refused at once (well inside the alarm)."""
    for kind, path in {"idx": workdir / "a-images-idx3-ubyte", "npy": workdir / "a.npy"}.items():
        path.write_bytes(idx_header(0x08, [10**6, 10**6]) if kind == "idx" else absurd_npy())
        with alarm(10), pytest.raises(DeepgenError, match="10\\^?|1000000"):
            load_file(str(path))
    folder = workdir / "png"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_header(1_000_000, 1_000_000))
    with alarm(10), pytest.raises(DeepgenError, match="a.png"):
        load_file(f"images:{folder}")


def test_zz_report():
    """Write the case counts (``DEEPGEN_FUZZ_REPORT``); every case counted was answered cleanly."""
    report = os.environ.get("DEEPGEN_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({k: dict(v) for k, v in COUNTS.items()}, indent=1))
