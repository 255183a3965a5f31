"""Command-line interface: ``deepgen list | train | sample | complete | restore | score | compare | features | translate | ood | demo``.

Argument parsing only: each command calls one workflow (:mod:`deepgen.workflows`),
imported when the command runs, so ``deepgen --help`` imports no torch.
Every user error is one line on stderr (``deepgen: error: ...``) and exit code 2 (argparse's
own refusals too); a training run stopped by a signal exits with the code its
``TrainingInterrupted`` carries (130 SIGINT, 143 SIGTERM); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from deepgen.errors import ConfigError, DeepgenError, TrainingInterrupted

STARTED = time.perf_counter()  # when the command began (scores.json's time_to_first_step_s counts from here)


def _parse_param(text: str) -> tuple[str, object]:
    from deepgen.io import parse_value

    if "=" not in text:
        raise ConfigError(f"--param {text!r}: expected NAME=VALUE, e.g. --param hidden=128")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def _class_list(text: str) -> list:
    """``5,6,7`` -> [5, 6, 7] (integers where they are, else class names)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated classes, e.g. 5,6,7, got {text!r}")
    return [int(t) if t.lstrip("-").isdigit() else t for t in items]


# --- list ---------------------------------------------------------------------
LIST_MODEL_HINT = "deepgen list MODEL shows a model's hyper-parameters"


CATALOG_FILE = Path(__file__).resolve().parent / "catalog.json"


def catalog_now() -> dict:
    """The built-in models (family, density, description) and datasets (description) as the code declares them
    (imports every model: seconds).  ``deepgen list`` prints the copy in ``deepgen/catalog.json``, which a test
    keeps equal to this; ``python scripts/write_catalog.py`` rewrites it."""
    from deepgen.data import list_datasets
    from deepgen.models.names import BUILTIN_MODELS
    from deepgen.models.registry import get_model_class

    models = {}
    for name in sorted(BUILTIN_MODELS):
        cls = get_model_class(name)
        models[name] = {"family": cls.family, "density": cls.density, "description": cls.description}
    return {"models": models, "datasets": list_datasets()}


def cmd_list(args) -> int:
    if args.model:
        return list_model(args.model)
    from deepgen.training.config import list_presets

    catalog = json.loads(CATALOG_FILE.read_text()) if CATALOG_FILE.is_file() else catalog_now()
    models = dict(catalog["models"])
    registry = sys.modules.get("deepgen.models.registry")  # models a user's code registered (in this process)
    if registry is not None:
        for name, cls in registry.list_models().items():
            models.setdefault(name, {"family": cls.family, "density": cls.density, "description": cls.description})
    print("models:")
    for name, m in sorted(models.items()):
        print(f"  {name:<14} {m['family']:<15} density={m['density']:<8} {m['description']}")
    print("datasets:")
    for name, desc in catalog["datasets"].items():
        print(f"  {name:<14} {desc}")
    print("  PATH           your own data: IDX (MNIST), .npy/.npz, .csv, a folder of images; prefix idx:/npy:/npz:/csv:/images: to force a format")
    print("presets:")
    for name in list_presets():
        print(f"  {name}")
    print(LIST_MODEL_HINT)
    return 0


def list_model(name: str) -> int:
    """``deepgen list MODEL``: what the model is, each hyper-parameter and the training fields it overrides."""
    from deepgen.models.base import DENSITIES
    from deepgen.models.params import show_value
    from deepgen.models.registry import get_model_class, model_params

    cls = get_model_class(name)
    params = model_params(name)
    density = f"{cls.density} - {DENSITIES[cls.density]}" if cls.density in DENSITIES else cls.density
    print(f"model:       {cls.name}")
    print(f"family:      {cls.family}")
    print(f"density:     {density}")
    print(f"description: {cls.description}")
    print("hyper-parameters (NAME: TYPE = DEFAULT  (allowed); set with --param NAME=VALUE or a preset's model_params):")
    for p in params:
        head = f"  {p['name']}" + (f": {p['type']}" if p["type"] else "") + f" = {show_value(p['default'])}"
        print(head + (f"  ({p['constraint']})" if p["constraint"] else ""))
        print(f"      {p['meaning'] or '(undocumented)'}")
    if not params:
        print("  (none)")
    defaults = getattr(cls, "train_defaults", None) or {}
    if defaults:
        print("training defaults (fields this model overrides; a preset or a flag still wins):")
        for key, value in defaults.items():
            print(f"  {key}: {show_value(value)}")
    return 0


# --- train --------------------------------------------------------------------
_TRAIN_FLAGS = {
    "model": "model", "data": "data", "steps": "steps", "batch_size": "batch_size", "lr": "lr",
    "seed": "seed", "eval_every": "eval_every", "devices": "devices", "accelerator": "accelerator",
    "strategy": "strategy", "num_nodes": "num_nodes", "precision": "precision", "warmup_steps": "warmup_steps",
    "lr_schedule": "lr_schedule", "grad_clip": "grad_clip", "context": "context", "labels": "labels",
    "keep": "keep", "exclude_classes": "exclude_classes", "checkpoint_every": "checkpoint_every",
    "checkpoint_minutes": "checkpoint_minutes", "nan_patience": "nan_patience", "max_rollbacks": "max_rollbacks",
    "threads": "threads", "compile": "compile", "weight_decay": "weight_decay", "steps_per_call": "steps_per_call",
}


def cmd_train(args) -> int:
    # the config is built and checked before the heavy imports (torch, Lightning), so a wrong name, value or
    # path is reported at once
    from deepgen.training.config import TrainConfig, resolve_preset

    overrides = {field: getattr(args, flag) for flag, field in _TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    overrides["progress"] = not args.no_progress  # the CLI shows progress; the Python API is quiet by default
    params = dict(_parse_param(p) for p in args.param or [])
    if args.resume:
        out = Path(args.resume)
        if args.out is not None and Path(args.out).resolve() != out.resolve():
            raise ConfigError(f"--out {args.out} conflicts with --resume {args.resume}: a resumed run is written "
                              "to its own directory")
        if args.preset:
            raise ConfigError("--resume takes no preset: the run's own config.yaml is its config")
        from deepgen.workflows.train import resume_config

        cfg = resume_config(out, overrides, params)
    else:
        data: dict = {}
        source = "command line"
        if args.preset:
            from deepgen.io import read_yaml

            path = resolve_preset(args.preset)
            data = read_yaml(path)
            source = str(path)
        data.update(overrides)
        if params:
            data["model_params"] = {**(data.get("model_params") or {}), **params}
        cfg = TrainConfig.from_dict(data, source=source)
        if args.out is None:
            raise ConfigError("--out RUN_DIR is required (where the run directory is written)")
        out = Path(args.out)
    from deepgen.workflows.train import train

    train(cfg, out, resume=bool(args.resume), overwrite=args.overwrite, verbose=True, started=STARTED)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        print(f"run directory: {out}")
    return 0


# --- sample -------------------------------------------------------------------
def cmd_sample(args) -> int:
    from deepgen.workflows.sample import sample_run

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1, got {args.n}")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise ConfigError(f"--temperature must be a finite number > 0, got {args.temperature}")
    for path in sample_run(args.run, args.n, args.out, temperature=args.temperature, seed=args.seed,
                           label=args.label, npy=args.npy, truncation=args.truncation):
        print(f"wrote {path}")
    return 0


# --- complete -----------------------------------------------------------------
def cmd_complete(args) -> int:
    from deepgen.io import strict_json
    from deepgen.workflows.complete import complete_run

    result = complete_run(args.run, args.out, data=args.data, mask=args.mask, n=args.n, split=args.split,
                          seed=args.seed, completions=args.completions, samples=args.samples,
                          temperature=args.temperature, labels=args.labels, batch_size=args.batch_size)
    print(strict_json(result))
    return 0


# --- restore ------------------------------------------------------------------
def cmd_restore(args) -> int:
    from deepgen.io import strict_json
    from deepgen.workflows.restore import restore

    result = restore(args.run, data=args.data, task=args.task, out=args.out, n=args.n, split=args.split,
                     seed=args.seed, noise=args.noise, block=args.block, factor=args.factor, steps=args.steps,
                     completions=args.completions, labels=args.labels, batch_size=args.batch_size)
    print(strict_json(result))
    return 0


# --- score --------------------------------------------------------------------
def cmd_score(args) -> int:
    from deepgen.io import strict_json
    from deepgen.workflows.score import score_run

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.iw_samples is not None and args.iw_samples < 1:
        raise ConfigError(f"--iw-samples must be >= 1, got {args.iw_samples}")
    if args.quality_samples is not None and args.quality_samples < 6:
        raise ConfigError(f"--quality-samples must be >= 6 (more than k = 5 neighbours), got {args.quality_samples}")
    result = score_run(args.run, data=args.data, split=args.split, seed=args.seed, batch_size=args.batch_size,
                       iw_samples=args.iw_samples, csv=args.csv, labels=args.labels, features=args.features,
                       quality_samples=args.quality_samples, alignment_training=args.alignment_training)
    print(strict_json(result))
    return 0


# --- compare ------------------------------------------------------------------
def cmd_compare(args) -> int:
    from deepgen.workflows.compare import compare, parse_model_entry

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models: expected a comma-separated list, e.g. realnvp,made,vae")
    for entry in models:  # every entry checked before the first model trains
        try:
            parse_model_entry(entry)
        except ConfigError as exc:
            raise ConfigError(f"--models: {exc}") from None
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if args.iw_samples < 1:
        raise ConfigError(f"--iw-samples must be >= 1, got {args.iw_samples}")
    extra = {**({"keep": args.keep} if args.keep else {}),
             **({"weight_decay": args.weight_decay} if args.weight_decay is not None else {})} or None
    compare(args.data, models, args.steps, args.out, seed=args.seed, iw_samples=args.iw_samples,
            overwrite=args.overwrite, progress=not args.no_progress, extra=extra, features=args.features)
    print((Path(args.out) / "compare.md").read_text(), end="")
    print(f"wrote {args.out}/compare.md, compare.csv, samples.png and one run directory per model")
    return 0


# --- features -----------------------------------------------------------------
def cmd_features(args) -> int:
    from deepgen.io import strict_json
    from deepgen.workflows.score import train_features

    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    record = train_features(args.data, args.out, labels=args.labels, seed=args.seed, steps=args.steps,
                            overwrite=args.overwrite, verbose=not args.no_progress)
    print(strict_json({k: record[k] for k in ("name", "classes", "accuracy", "sha256")}))
    print(f"wrote {args.out}/feature-net.safetensors and feature-net.json; score runs in this feature space with "
          f"deepgen score RUN --features {args.out}", file=sys.stderr)
    return 0


# --- translate ------------------------------------------------------------------
def cmd_translate(args) -> int:
    from deepgen.io import strict_json
    from deepgen.workflows.translate import translate_run

    settings = dict(_parse_param(p) for p in args.set or [])
    summary = translate_run(args.run, args.input, args.out, reverse=args.reverse, seed=args.seed,
                            settings=settings or None)
    print(strict_json(summary))
    return 0


# --- ood ------------------------------------------------------------------------
def cmd_ood(args) -> int:
    from deepgen.ood.suite import ood_command

    scores = [s for item in (args.score or []) for s in item.split(",") if s] or None
    if args.mu is not None and not 0 < args.mu < 1:
        raise ConfigError(f"--mu must be in (0, 1), got {args.mu}")
    if args.background_steps is not None and args.background_steps < 1:
        raise ConfigError(f"--background-steps must be >= 1, got {args.background_steps}")
    if args.train_background:
        from deepgen.workflows.ood_background import train_background

        train_background(args.run, mu=args.mu if args.mu is not None else 0.2, steps=args.background_steps)
    ood_command(args.run, ood=args.ood or None, scores=scores, seed=args.seed, out=args.out,
                background=args.background, ensemble=args.ensemble or None, transforms=args.transforms)
    return 0


# --- demo -----------------------------------------------------------------------
DEMOS = ("likelihood-vs-probability",)


def cmd_demo(args) -> int:
    from deepgen.workflows.typical_set import likelihood_vs_probability

    out = Path(args.out) if args.out else (Path(args.run) / "likelihood-vs-probability" if args.run
                                           else Path("likelihood-vs-probability"))
    likelihood_vs_probability(out, run=args.run, dim=args.dim, seed=args.seed, verbose=True)
    print(f"wrote {out}/likelihood_vs_probability.json and its pictures")
    return 0


# --- entry point --------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with the house error format: one line on stderr, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"deepgen: error: {message} (see {self.prog} --help)\n")


TRAIN_DESCRIPTION = ("Train a model into a run directory.  A default shown below is TrainConfig's; a model may "
                     "override some (its training defaults: deepgen list MODEL), and a preset's fields and then "
                     "these flags override both.")


def _train_help(defaults: dict) -> dict[str, str]:
    """Help text of each ``deepgen train`` flag, ending with its default (argparse defaults stay None,
    so that a flag not given is told apart from one given with the default value)."""
    def d(key, text):
        value = defaults[key]
        shown = ("true" if value else "false") if isinstance(value, bool) else value
        return f"{text} (default: {shown})"

    return {
        "model": "model name, see `deepgen list` (required unless the preset sets it)",
        "data": "built-in dataset name or a path to your data (required unless the preset sets it)",
        "steps": d("steps", "optimizer steps in all"),
        "batch_size": d("batch_size", "examples per step and process (under DDP a step reads devices x nodes x this)"),
        "lr": d("lr", "peak learning rate (Adam)"),
        "warmup_steps": d("warmup_steps", "steps of linear learning-rate warm-up"),
        "lr_schedule": d("lr_schedule", "after warm-up: cosine decay to 0, or constant"),
        "grad_clip": d("grad_clip", "clip the gradient norm to this (0: no clipping)"),
        "seed": d("seed", "random seed of initialisation, batches and sampling"),
        "eval_every": d("eval_every", "validate, checkpoint and refresh samples.png every this many steps"),
        "keep": d("keep", "the run's weights: the last step's, or best: those of the lowest validation NLL among "
                  "the validations (every --eval-every steps) and the last step (model selection)"),
        "context": "train a class-conditional model p(x | y) on the data's labels (default: unconditional)",
        "labels": "where your file's labels are: IDX/.npy label file, npz key, CSV column (name or col:K), "
                  "'folders' for image subfolders (default: found automatically where possible)",
        "accelerator": d("accelerator", "cpu, gpu (= cuda), mps, tpu or auto (Lightning)"),
        "devices": d("devices", "devices per node (GPUs; CPU processes with --strategy ddp)"),
        "num_nodes": d("num_nodes", "machines (Lightning)"),
        "strategy": d("strategy", "auto, ddp, ddp_spawn, fsdp, ... (Lightning's registered strategies)"),
        "precision": d("precision", "32-true, 16-mixed, bf16-mixed, 64-true, ... (Lightning)"),
        "param": "model hyper-parameter, repeatable; see `deepgen list MODEL` (default: the model's own)",
        "no_progress": "no progress display (default: progress shown)",
        "exclude_classes": "comma-separated classes to hold out of every split, e.g. 5,6,7,8,9 (their test "
                           "examples are then the OOD set heldout-classes of `deepgen ood`)",
        "checkpoint_every": d("checkpoint_every", "also checkpoint every this many steps (0: at validations only); "
                              "a run killed at any moment resumes from its last checkpoint"),
        "checkpoint_minutes": d("checkpoint_minutes", "also checkpoint when this many minutes passed since the "
                                "last checkpoint (0: off)"),
        "nan_patience": d("nan_patience", "non-finite loss or gradient: each such step is skipped; this many in "
                          "a row roll back to the last checkpoint with the learning rate halved"),
        "max_rollbacks": d("max_rollbacks", "rollbacks before a persistent non-finite loss stops training"),
        "threads": d("threads", "CPU threads of torch's ops; 0 = auto: OMP_NUM_THREADS if set, else 1 for vector "
                     "data (small ops: one thread is as fast when idle and many times faster on a busy machine), "
                     "torch's default for images"),
        "weight_decay": d("weight_decay", "L2 penalty of Adam (torch's weight_decay: L2 * w added to each "
                          "gradient); regularises models that overfit small data"),
        "steps_per_call": d("steps_per_call", "optimizer steps per call of Lightning's training step (the same "
                            "steps and batches; its per-step overhead paid once per call); 0 = auto: up to 25 "
                            "(a divisor of the eval, log and checkpoint cadences) for likelihood-trained vector "
                            "models in one process, else 1"),
        "compile": "compile the training loss with torch.compile (flows, autoregressive and latent-variable "
                   "models): faster steps after a first step that compiles (seconds to a minute on a CPU, cached "
                   "on disk); scores.json: first_step_s, steady_steps_per_s (default: off)",
    }


def build_parser() -> argparse.ArgumentParser:
    from deepgen.training.config import train_field_defaults

    p = _Parser(prog="deepgen", description="Deep generative models: train, sample, score.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    lst = sub.add_parser("list", help="models, datasets and presets, one line each; MODEL: its hyper-parameters")
    lst.add_argument("model", nargs="?", metavar="MODEL", help="show this model's hyper-parameters")

    h = _train_help(train_field_defaults())
    t = sub.add_parser("train", help="train a model into a run directory", description=TRAIN_DESCRIPTION)
    t.add_argument("preset", nargs="?", help="a YAML preset (path or shipped name); flags override its fields")
    t.add_argument("--model", help=h["model"])
    t.add_argument("--data", help=h["data"])
    t.add_argument("--steps", type=int, help=h["steps"])
    t.add_argument("--out", help="run directory to create")
    t.add_argument("--batch-size", dest="batch_size", type=int, help=h["batch_size"])
    t.add_argument("--lr", type=float, help=h["lr"])
    t.add_argument("--weight-decay", dest="weight_decay", type=float, metavar="L2", help=h["weight_decay"])
    t.add_argument("--warmup-steps", dest="warmup_steps", type=int, help=h["warmup_steps"])
    t.add_argument("--lr-schedule", dest="lr_schedule", choices=["cosine", "constant"], help=h["lr_schedule"])
    t.add_argument("--grad-clip", dest="grad_clip", type=float, help=h["grad_clip"])
    t.add_argument("--seed", type=int, help=h["seed"])
    t.add_argument("--eval-every", dest="eval_every", type=int, help=h["eval_every"])
    t.add_argument("--keep", choices=["last", "best"], help=h["keep"])
    t.add_argument("--param", action="append", metavar="NAME=VALUE", help=h["param"])
    t.add_argument("--context", choices=["label"], help=h["context"])
    t.add_argument("--labels", help=h["labels"])
    t.add_argument("--accelerator", help=h["accelerator"])
    t.add_argument("--devices", type=int, help=h["devices"])
    t.add_argument("--num-nodes", dest="num_nodes", type=int, help=h["num_nodes"])
    t.add_argument("--strategy", help=h["strategy"])
    t.add_argument("--precision", help=h["precision"])
    t.add_argument("--exclude-classes", dest="exclude_classes", type=_class_list, metavar="C,C,...",
                   help=h["exclude_classes"])
    t.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, metavar="STEPS", help=h["checkpoint_every"])
    t.add_argument("--checkpoint-minutes", dest="checkpoint_minutes", type=float, metavar="MIN",
                   help=h["checkpoint_minutes"])
    t.add_argument("--nan-patience", dest="nan_patience", type=int, metavar="K", help=h["nan_patience"])
    t.add_argument("--max-rollbacks", dest="max_rollbacks", type=int, metavar="R", help=h["max_rollbacks"])
    t.add_argument("--threads", dest="threads", type=int, metavar="T", help=h["threads"])
    t.add_argument("--steps-per-call", dest="steps_per_call", type=int, metavar="K", help=h["steps_per_call"])
    t.add_argument("--compile", dest="compile", action="store_const", const=True, default=None, help=h["compile"])
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its saved weights and optimizer state")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory's files")
    t.add_argument("--no-progress", dest="no_progress", action="store_true", help=h["no_progress"])

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--out", required=True, help="output file; its extension picks the format: .npy .npz .csv "
                   "(numbers on the data's scale) or .png .pdf .svg (picture)")
    s.add_argument("--npy", action="store_true", help="also write the samples as .npy beside --out")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", help="class to sample from a class-conditional run (e.g. 3)")
    s.add_argument("--truncation", type=float, metavar="T", help="the truncation trick (GAN family): draw the "
                   "latent z from N(0, I) restricted to |z_i| <= T; smaller T trades diversity for fidelity")

    k = sub.add_parser("complete", help="hide part of each example, fill it in, score the hidden part (NLL in nats)",
                       description="Hide entries of each example of a split (--mask), let the run complete them and "
                       "write a picture of originals, masked inputs and completions (or .npz arrays) to --out, "
                       "with the hidden part's NLL -log p(hidden | observed) of the whole split in OUT.json and on "
                       "stdout: exact when every observed entry precedes every hidden one in the model's ordering "
                       "(bottom-half under a raster scan), else an importance-sampling estimate (--samples).")
    k.add_argument("run")
    k.add_argument("--out", required=True, help="picture (.png .pdf .svg; images) or .npz (any data)")
    k.add_argument("--data", help="dataset (default: the one the run was trained on)")
    k.add_argument("--mask", default="bottom-half",
                   help="which entries to hide: bottom-half, top-half, right-half, left-half or random:P "
                   "(default: bottom-half)")
    k.add_argument("--split", default="test", choices=["train", "val", "test"])
    k.add_argument("-n", type=int, default=16, help="examples in the picture (the NLL uses the whole split)")
    k.add_argument("--completions", type=int, default=3, help="completions per pictured example (default: 3)")
    k.add_argument("--samples", type=int, default=32,
                   help="importance samples per example where the hidden NLL is not exact (default: 32)")
    k.add_argument("--temperature", type=float, default=1.0, help="temperature of the pictured completions")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    k.add_argument("--labels", help="label source of --data (as for train)")

    r = sub.add_parser("restore", help="corrupt images (noise, a hidden block, low resolution), restore them, "
                       "report MSE and PSNR", description="Corrupt the images of a split (--task denoise: Gaussian "
                       "noise; inpaint: a square block hidden; upscale: --factor x --factor block means), restore "
                       "them with the run (a model with encode, e.g. ae, dae, vae: repeated reconstruction with what "
                       "is known re-imposed; an autoregressive model, inpaint only: the mean of --completions "
                       "completions) and print MSE and PSNR (dB) of the corrupted, a simple baseline's (3x3 "
                       "median; the training mean image; nearest-neighbour upsampling) and the restored images; "
                       "writes a picture (rows clean, corrupted, baseline, restored) to --out and the figures to "
                       "OUT.json.")
    r.add_argument("run")
    r.add_argument("--task", required=True, choices=["denoise", "inpaint", "upscale"])
    r.add_argument("--out", required=True, help="picture (.png .pdf .svg) or .npz (the arrays); figures in OUT.json")
    r.add_argument("--data", help="dataset (default: the one the run was trained on)")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("-n", type=int, help="restore and score the first N images of the split (default: all); the "
                   "picture shows up to 12")
    r.add_argument("--noise", type=float, default=0.2, help="denoise: noise std as a fraction of the data range "
                   "(default: 0.2)")
    r.add_argument("--block", type=int, help="inpaint: side of the hidden square (default: half the image side)")
    r.add_argument("--factor", type=int, default=4, help="upscale: side of the averaged blocks; must divide the "
                   "image size (default: 4)")
    r.add_argument("--steps", type=int, help="reconstruction passes of an encode model (default: denoise 1, "
                   "inpaint 10, upscale 3)")
    r.add_argument("--completions", type=int, default=8,
                   help="inpaint with a completing model: completions averaged (default: 8)")
    r.add_argument("--seed", type=int, default=0, help="seed of the corruptions and the completions")
    r.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    r.add_argument("--labels", help="label source of --data (as for train)")

    c = sub.add_parser("score", help="NLL (nats) and bits/dim on a split; prints one JSON object")
    c.add_argument("run")
    c.add_argument("--data", help="dataset (default: the one the run was trained on)")
    c.add_argument("--split", default="test", choices=["train", "val", "test"])
    c.add_argument("--csv", help="per-example scores CSV (default: RUN/scores-DATA-SPLIT.csv)")
    c.add_argument("--seed", type=int, default=0, help="seed of any randomness in the estimate (dequantization)")
    c.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    c.add_argument("--iw-samples", dest="iw_samples", type=int, help="importance samples k (latent-variable models)")
    c.add_argument("--labels", help="label source of --data (as for train)")
    c.add_argument("--features", metavar="DIR", help="feature net for the sample-quality figures (from deepgen "
                   "features; default: deepgen's digits classifier for 1x8x8 data with 17 or 2 levels, else none)")
    c.add_argument("--quality-samples", dest="quality_samples", type=int, metavar="N",
                   help="samples drawn for the sample-quality figures (default: the size of --split)")
    c.add_argument("--alignment-training", dest="alignment_training", action="store_true",
                   help="translators: also train the digit classifier on labelled domain A, and on A plus A "
                   "translated to B, and report both accuracies on real B (alignment used for training; ~20 s)")

    m = sub.add_parser("compare", help="train several models on the same data and budget; one table")
    m.add_argument("--data", required=True)
    m.add_argument("--models", required=True, help="comma-separated model names, e.g. realnvp,made,vae; an entry "
                   "may set hyper-parameters: vae:beta=4:latent=8 (its run directory: vae-beta-4-latent-8)")
    m.add_argument("--steps", type=int, default=3000)
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--iw-samples", dest="iw_samples", type=int, default=1000,
                   help="importance samples k for models whose density is a bound")
    m.add_argument("--keep", choices=["last", "best"],
                   help="each model's weights: the last step's (default) or those of its lowest validation NLL")
    m.add_argument("--weight-decay", dest="weight_decay", type=float, metavar="L2",
                   help="Adam's L2 penalty for every model (default: each model's own, 0 for most)")
    m.add_argument("--overwrite", action="store_true")
    m.add_argument("--no-progress", dest="no_progress", action="store_true")
    m.add_argument("--features", metavar="DIR", help="feature net for the sample-quality columns (as for score)")

    f = sub.add_parser("features", help="train deepgen's small image classifier on your labelled images: the "
                       "feature space of the sample-quality figures (score/compare --features DIR)",
                       description="Train a small CNN classifier on the labelled train split of --data "
                       "(deterministic for a seed) and write DIR/feature-net.safetensors and feature-net.json "
                       "(settings, accuracy per split, SHA-256 of the weights, checked on every load).  Its "
                       "penultimate layer is the feature space in which score and compare measure Frechet "
                       "distance, precision, recall, density, coverage and class coverage of samples.")
    f.add_argument("--data", required=True, help="your image data (path) or a built-in image dataset")
    f.add_argument("--labels", help="where the labels are (as for train; default: found automatically)")
    f.add_argument("--out", required=True, metavar="DIR", help="directory to write the feature net into")
    f.add_argument("--steps", type=int, help="optimizer steps of batch size 64 (default: 1500)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--overwrite", action="store_true", help="replace a feature net already in DIR")
    f.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress lines")

    tr = sub.add_parser("translate", help="apply a trained translator (pix2pix, cyclegan) to domain-A inputs; "
                        "writes translated.npy and a side-by-side grid translated.png")
    tr.add_argument("run", help="a run of a translation model")
    tr.add_argument("--input", default="test", help="a split of the run's data (train, val, test: its domain-A "
                    "examples; with --reverse its domain-B ones) or a data file/folder on the run's data scale "
                    "(default: test)")
    tr.add_argument("--out", required=True, help="folder to write translated.npy and translated.png to")
    tr.add_argument("--reverse", action="store_true", help="translate B -> A (models with both directions: cyclegan)")
    tr.add_argument("--set", action="append", metavar="NAME=VALUE", help="set an attribute of the inputs instead "
                    "(models that manipulate attributes: puppet, e.g. --set angle=30); repeatable")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    od = sub.add_parser("ood", help="out-of-distribution detection: AUROC, AUPR, FPR@95%%TPR of the run's scores "
                        "on its test split against OOD sets; one JSON line per (score, set)")
    od.add_argument("run", help="a trained run (in-distribution = its test split)")
    od.add_argument("--ood", action="append", metavar="NAME_OR_PATH",
                    help="an OOD set, repeatable (default: every built-in set for the run's data): noise, constant, inverted, hflip, vflip, blur, shift, "
                    "heldout-classes (digits); toy:NAME, shifted (2-D toys); or a data file on the run's data scale")
    od.add_argument("--score", action="append", metavar="SCORE", help="nll, likelihood-ratio, typicality, "
                    "input-complexity, ensemble, transform-ratio, composite-ratio, discriminator, reconstruction; "
                    "repeatable or comma-separated (default: all that apply to the run's model)")
    od.add_argument("--transforms", metavar="T1,T2", help="the mirror images of transform-ratio and composite-ratio, "
                    "comma-separated: hflip, vflip, rot180, rot90, rot270, transpose (default: hflip,vflip; leave out "
                    "a symmetry your in-distribution data have)")
    od.add_argument("--out", help="folder for the table and histograms (default: RUN/ood)")
    od.add_argument("--background", metavar="RUN", help="background run of the likelihood-ratio and composite-ratio "
                    "scores (default: "
                    "RUN/ood/background, made by --train-background)")
    od.add_argument("--train-background", dest="train_background", action="store_true",
                    help="first train the likelihood-ratio background: the run's model on its training split with "
                    "a share --mu of the pixels replaced by random levels")
    od.add_argument("--mu", type=float, help="perturbation rate of the background's inputs (default: 0.2)")
    od.add_argument("--background-steps", dest="background_steps", type=int,
                    help="training steps of the background (default: the helper's short budget)")
    od.add_argument("--ensemble", action="append", metavar="RUN", help="another run of the same model and data "
                    "(different seed) for the ensemble score; repeatable")
    od.add_argument("--seed", type=int, default=0, help="random seed of the built-in sets (default: 0)")

    dm = sub.add_parser("demo", help="demonstrations of the lecture notes' points, with numbers and pictures")
    dm.add_argument("name", choices=DEMOS, help="likelihood-vs-probability: the typical set of a 100-D Gaussian "
                    "and, with --run, of a trained model (high density is not high probability)")
    dm.add_argument("--run", help="a trained run with a density (e.g. realnvp on digits) for the model part")
    dm.add_argument("--out", help="folder for the JSON and PNGs (default: RUN/likelihood-vs-probability, or "
                    "./likelihood-vs-probability without --run)")
    dm.add_argument("--dim", type=int, default=100, help="dimension of the Gaussian (default: 100)")
    dm.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return p


COMMANDS = {"list": cmd_list, "train": cmd_train, "sample": cmd_sample, "complete": cmd_complete,
            "restore": cmd_restore, "score": cmd_score, "compare": cmd_compare, "features": cmd_features,
            "demo": cmd_demo, "translate": cmd_translate, "ood": cmd_ood}


def main(argv: list[str] | None = None) -> int:
    import signal

    if hasattr(signal, "SIGXFSZ"):  # a file-size limit must surface as an error on the write, not kill the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DeepgenError as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, TrainingInterrupted) else "error: "  # a stop asked for is no error
        print(f"deepgen: {kind}{exc}", file=sys.stderr)
        # 2 for a user error; a TrainingInterrupted carries 128 + signal (130 SIGINT, 143 SIGTERM)
        return getattr(exc, "exit_code", 2)
    except BrokenPipeError:  # e.g. `deepgen score RUN | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("deepgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if args.debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"deepgen: internal error: {type(exc).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
