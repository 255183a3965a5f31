"""RealNVP in deepgen against the same RealNVP in peer libraries (zuko, nflows), one run.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/realnvp_vs_peers.py            # full run
    PYTHONPATH=src .venv/bin/python benchmarks/realnvp_vs_peers.py --quick    # smoke run

For every (dataset, library, loop) it prints the test NLL (nats per example;
mean over training seeds, with its seed-to-seed SD and its test-set standard
error), bits/dim, training steps/s, the parameter count (total, and "live":
entries that can receive a gradient), and then the ratios deepgen/peer with a
verdict.  The last line of stdout is one JSON object with every figure, per
seed and pooled.

What is compared (the fairness rules)
-------------------------------------
* Data: the fixed splits of ``deepgen.data.load_data`` (train for fitting, the
  *full* test split for the figure); nothing is tuned on test.
* Architecture: ``couplings`` = 8 affine couplings with alternating masks
  (layer i keeps the even coordinates when i is even, the odd ones when i is
  odd, in every library), each conditioned by an MLP of ``depth`` = 2 hidden
  layers of ``hidden`` = 64 ReLU units; standard-normal base.
  deepgen's coupling bounds the log-scale as s <- 3 tanh(s / 3) and zero-inits
  the conditioner's last layer (every coupling starts as the identity).  The
  "matched" peer rows use the same bounded log-scale and zero init, through each
  library's extension points: zuko's ``GeneralCouplingTransform(univariate=...)``
  with an affine transform whose log-scale is 3 tanh(a / 3), and a subclass of
  nflows' ``AffineCouplingTransform`` overriding ``_scale_and_shift``.  The
  "lib-default" rows are what a user of the peer gets out of the box with the
  same widths: zuko's soft clamp a / (1 + |a / log 1e-3|) (|log-scale| < 6.9)
  and PyTorch's default init; nflows' scale sigmoid(a + 2) + 1e-3 (contracting
  only, log-scale in (-6.9, 0.001)) and default init.
  Every library's conditioner reads only the kept coordinates and emits (s, t)
  only for the transformed ones (deepgen's ``KeptToFree``), so parameter counts
  match (column "live" counts the parameters that can affect the output).
* Budget: the same number of steps, batch size 128 (shuffled, last partial
  batch dropped), Adam(lr 1e-3, betas 0.9/0.999, no weight decay), linear
  warm-up over 100 steps then cosine decay to 0 (``deepgen.training.schedule``),
  gradient-norm clipping at 5.0, seed set before building each model.  The
  objective is the mean NLL per example, nothing else (no batch norm, no
  regularisers).
* Discrete data (digits: 8x8, 17 levels): every model, peers included, sees the
  same uniformly dequantized y = (k + u) / 17 and reports the bound
  -log p_Y(y) + D log 17 (nats; bits/dim = that / (64 ln 2)).  The vector rows
  model the flattened 64-dim y directly (no logit on either side: deepgen's
  vector RealNVP applies none).  Evaluation runs every model through the same
  function (``deepgen.evaluation.likelihood.per_example_log_prob``, batches of
  256 under one seed), and each model draws its dequantization noise with the
  same ``torch.rand_like`` call in the same order, so all see identical u.
  deepgen's multi-scale convolutional RealNVP (on the 1x8x8 images, with its
  default logit preprocessing, whose Jacobian it counts) is an extra row: a
  *different* architecture, same data, budget and evaluation.
* Training loops.  Peers get a plain PyTorch loop.  deepgen is trained twice:
  by ``deepgen.workflows.train.train`` (Lightning; what users of the library and
  CLI get: its validation runs once, at the end) and by the *same* plain loop as
  the peers, so throughput compares like with like.  Both are reported: the
  Lightning overhead is real.  The flattened digits are no built-in dataset
  name, so for that row ``train`` is handed the flattened splits in place of its
  ``load_data``; the rest of ``train`` runs unchanged.
* Threads: ``torch.set_num_threads(2)`` (``--threads``) for everything; CPU;
  ``OMP_WAIT_POLICY=PASSIVE`` unless already set (see below the imports).
* Seeds: every vector row is trained with ``--seeds`` (default 3) seeds; within
  a seed all models share the seed (init RNG, batches, test noise).  deepgen is
  called worse (better) than a peer only if it is worse (better) in *every*
  seed by more than 2 paired standard errors of the per-example test
  differences, so one lucky seed decides nothing.  The conv row uses the first
  seed only (it costs 15-30 min on 2 cores).

Steps/s is (steps) / (wall time of the training loop): data batching,
dequantization noise, forward, backward, clipping, optimizer and scheduler.  For
the Lightning rows it is the figure ``train`` reports (time inside
``trainer.fit``, one validation pass included).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

# Idle OpenMP threads sleep instead of spinning: on a shared CPU box, spinning
# threads that lose their core stall every op (measured: ~10x slower at 2
# threads under load).  Must be set before torch loads; applies to every library.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from deepgen.data import load_data  # noqa: E402
from deepgen.data.spec import DataSpec, Splits  # noqa: E402
from deepgen.evaluation.likelihood import nll_summary, per_example_log_prob  # noqa: E402
from deepgen.models.registry import build_model  # noqa: E402
from deepgen.training.config import TrainConfig  # noqa: E402
from deepgen.training.schedule import make_optimizer  # noqa: E402

ARCH = {"couplings": 8, "hidden": 64, "depth": 2, "scale_bound": 3.0}
# deepgen's model parameters in both of its rows: no standardisation, as no peer standardises (``train`` would
# otherwise fit realnvp's default ``standardize=True`` on the training split while the plain loop's model, never
# fitted, runs unstandardised: on moons that alone moved the Lightning row by about 0.026 nats)
DEEPGEN_PARAMS = {**ARCH, "standardize": False}
DEFAULT_STEPS = {"moons": 2000, "digits": 2000}
QUICK_STEPS = 40
PEERS = ("zuko", "nflows")
THREADS = 2  # set from --threads in main()


# --------------------------------------------------------------------------- data
@dataclass
class Task:
    """One dataset as the vector models see it, plus the image splits for the conv row."""

    name: str
    splits: Splits                 # vector splits: (N, D)
    image_splits: Splits | None    # (N, C, H, W) splits, digits only

    @property
    def spec(self) -> DataSpec:
        return self.splits.spec


def make_task(name: str) -> Task:
    splits = load_data(name)
    if not splits.spec.is_image:
        return Task(name, splits, None)
    s = splits.spec
    flat_spec = DataSpec(f"{s.name}-flat", (s.dim,), s.levels, f"{s.description}; flattened to {s.dim}-dim vectors")
    flat = Splits(flat_spec, *(splits.split(p).reshape(len(splits.split(p)), -1) for p in ("train", "val", "test")),
                  labels=dict(splits.labels), classes=tuple(splits.classes))
    return Task(name, flat, splits)


# --------------------------------------------------------------------------- peers
class PeerFlow(nn.Module):
    """A peer library's flow behind deepgen's ``log_prob`` convention.

    For discrete data (L levels) it draws u with ``torch.rand_like`` exactly as
    :func:`deepgen.data.dequantize.dequantize` does, and returns
    log p_Y((k + u) / L) - D log L, so evaluation noise is identical to deepgen's.
    """

    def __init__(self, flow: nn.Module, log_density, spec: DataSpec, name: str):
        super().__init__()
        self.flow, self._log_density, self.spec, self.name = flow, log_density, spec, name

    def log_prob(self, x, context=None):
        correction = 0.0
        if self.spec.levels is not None:
            x = (x + torch.rand_like(x)) / self.spec.levels
            correction = -self.spec.dim * math.log(self.spec.levels)
        return self._log_density(self.flow, x) + correction

    def loss(self, batch):
        nll = -self.log_prob(batch).mean()
        return {"loss": nll}

    @property
    def device(self):
        return next(self.parameters()).device


def zuko_flow(spec: DataSpec, matched: bool) -> PeerFlow:
    """zuko RealNVP: ``couplings`` GeneralCouplingTransforms, alternating masks, MLP(64, 64)."""
    import zuko
    from zuko.transforms import MonotonicAffineTransform

    d, bound = spec.dim, ARCH["scale_bound"]
    hidden = (ARCH["hidden"],) * ARCH["depth"]

    class BoundedAffine(MonotonicAffineTransform):
        """f(x) = exp(s) x + b with s = bound * tanh(a / bound), deepgen's soft clamp."""

        def __init__(self, shift, scale, **kwargs):
            super().__init__(shift, scale, **kwargs)
            self.log_scale = bound * torch.tanh(scale / bound)
            self.scale = self.log_scale.exp()

    kwargs = {"univariate": BoundedAffine} if matched else {}
    # zuko's mask i: True (kept) at coordinates j with j % 2 == i % 2, as deepgen's alternating_mask.
    flow = zuko.flows.RealNVP(d, transforms=ARCH["couplings"], hidden_features=hidden, **kwargs)
    if matched:
        for t in flow.transform.transforms:
            nn.init.zeros_(t.hyper[-1].weight)
            nn.init.zeros_(t.hyper[-1].bias)
    return PeerFlow(flow, lambda f, y: f().log_prob(y), spec, "zuko" + ("" if matched else "-default"))


def nflows_flow(spec: DataSpec, matched: bool) -> PeerFlow:
    """nflows RealNVP from AffineCouplingTransform + alternating binary masks + MLP(64, 64)."""
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.nn.nets import MLP
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import AffineCouplingTransform
    from nflows.utils.torchutils import create_alternating_binary_mask

    d, bound = spec.dim, ARCH["scale_bound"]

    class Conditioner(nn.Module):
        """nflows' MLP; CouplingTransform calls ``net(x, context)``, which nflows' MLP does not take."""

        def __init__(self, n_in, n_out):
            super().__init__()
            self.net = MLP((n_in,), (n_out,), [ARCH["hidden"]] * ARCH["depth"])
            if matched:
                nn.init.zeros_(self.net._output_layer.weight)
                nn.init.zeros_(self.net._output_layer.bias)

        def forward(self, x, context=None):
            return self.net(x)

    class BoundedAffineCoupling(AffineCouplingTransform):
        """Scale exp(s), s = bound * tanh(a / bound): deepgen's soft clamp instead of sigmoid(a + 2) + 1e-3."""

        def _scale_and_shift(self, transform_params):
            a = transform_params[:, self.num_transform_features:, ...]
            shift = transform_params[:, : self.num_transform_features, ...]
            return torch.exp(bound * torch.tanh(a / bound)), shift

    cls = BoundedAffineCoupling if matched else AffineCouplingTransform
    # nflows' mask marks *transformed* coordinates; layer i transforms the odd ones when i is even.
    layers = [cls(create_alternating_binary_mask(d, even=i % 2 == 1), Conditioner) for i in range(ARCH["couplings"])]
    flow = Flow(CompositeTransform(layers), StandardNormal([d]))
    return PeerFlow(flow, lambda f, y: f.log_prob(y), spec, "nflows" + ("" if matched else "-default"))


PEER_BUILDERS = {"zuko": zuko_flow, "nflows": nflows_flow}


# --------------------------------------------------------------------------- training
@dataclass
class Budget:
    steps: int
    seed: int
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    grad_clip: float = 5.0
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0

    def train_config(self, model: str, data: str, params: dict) -> TrainConfig:
        return TrainConfig(model=model, data=data, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=self.warmup_steps, lr_schedule=self.lr_schedule,
                           grad_clip=self.grad_clip, seed=self.seed, eval_every=self.steps, progress=False,
                           model_params=dict(params))


class PlainLoop:
    """Adam + warm-up/cosine + grad-norm clipping on the mean NLL: the same loop for every library.

    Batches come from a shuffling ``DataLoader`` (batch 128, last partial batch
    dropped), as in ``deepgen.workflows.train.train``; epochs roll over as needed.
    """

    def __init__(self, model: nn.Module, train_x: torch.Tensor, budget: Budget):
        self.model, self.clip = model, budget.grad_clip
        self.opt, self.sched = make_optimizer(model.parameters(), budget)
        n = len(train_x)
        batch = min(budget.batch_size, n)
        self.loader = DataLoader(TensorDataset(train_x), batch_size=batch, shuffle=True, drop_last=n > batch)
        self.batches = self._forever()

    def _forever(self):
        while True:
            for (x,) in self.loader:
                yield x

    def run(self, steps: int) -> float:
        """Take ``steps`` optimizer steps; returns the wall time in seconds."""
        self.model.train()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = self.model.loss(next(self.batches))["loss"]
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
            self.sched.step()
        return time.perf_counter() - t0


def interleaved_throughput(models: list[nn.Module], train_x: torch.Tensor, budget: Budget, rounds: int,
                           steps: int) -> list[float]:
    """Median steps/s of each model's plain loop, timed round-robin (on copies of the trained models).

    On a shared machine the background load drifts; timing every model in short
    alternating bursts (order rotated each round) exposes all of them to the same
    load, so the *ratios* are trustworthy even when the absolute figures are not.
    """
    loops = [PlainLoop(copy.deepcopy(m), train_x, budget) for m in models]
    for loop in loops:
        loop.run(max(1, steps // 10))  # warm-up: allocator, autograd caches
    rates = [[] for _ in loops]
    for r in range(rounds):
        order = list(range(len(loops)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            rates[i].append(steps / loops[i].run(steps))
    return [statistics.median(x) for x in rates]


@contextlib.contextmanager
def substituted_data(splits: Splits, name: str):
    """Make ``deepgen.workflows.train.load_data(name)`` return ``splits`` (flattened digits: no built-in name)."""
    import deepgen.workflows.train as run

    original = run.load_data
    run.load_data = lambda n, labels=None: splits if n == name else original(n, labels=labels)
    try:
        yield
    finally:
        run.load_data = original


def lightning_train(budget: Budget, data: str, params: dict, splits: Splits | None):
    """deepgen's own ``train`` into a temporary run directory; returns (model, steps/s, train's scores)."""
    from deepgen.models.pretrained import load_model
    from deepgen.workflows.train import train

    det = torch.are_deterministic_algorithms_enabled()
    with tempfile.TemporaryDirectory() as out:
        ctx = contextlib.nullcontext()
        if splits is not None:  # no built-in name: a scratch .npy names the data, train() is handed ``splits``
            from deepgen.data.source import canonical_source

            data = os.path.join(out, "data-name.npy")
            np.save(data, splits.val.numpy())
            ctx = substituted_data(splits, canonical_source(data))
        cfg = budget.train_config("realnvp", data, params)
        with ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = train(cfg, out, verbose=False)
        model = load_model(out)
    # Lightning's deterministic=True flips a process-wide flag; restore it so later rows run as before.
    torch.use_deterministic_algorithms(det)
    torch.set_num_threads(THREADS)
    return model, scores["train_steps_per_s"], scores


# --------------------------------------------------------------------------- measurement
def live_parameters(model: nn.Module, spec: DataSpec, n: int = 512) -> int:
    """Parameter entries that can receive a gradient: count of nonzero d(sum log p)/d(theta).

    Done in float64 on a copy whose parameters are redrawn positive (uniform in
    [0.05, 0.1] / fan-in: small, so no soft clamp saturates) and fed positive
    inputs, so every ReLU unit is active and zero-initialised layers do not hide
    the layers before them.  What remains
    exactly zero is structural: weights reading a masked-out (always zero) input
    and outputs multiplied by a zero mask.
    """
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(0.05, 0.1).div_(p[0].numel() if p.dim() > 1 else 1)
    if spec.levels is None:
        x = 0.5 + torch.rand(n, *spec.shape, dtype=torch.float64)
    else:
        x = torch.randint(0, spec.levels, (n, *spec.shape)).double()
    m.log_prob(x).sum().backward()
    return int(sum((p.grad != 0).sum().item() for p in m.parameters() if p.grad is not None))


def evaluate(model, test_x: torch.Tensor, spec: DataSpec, seed: int) -> tuple[dict, torch.Tensor]:
    """Full test split through deepgen's evaluator (fixed batches of 256, one seed, same noise for all).

    Returns the summary and the per-example log p (kept for the paired comparison).
    """
    log_probs = per_example_log_prob(model, test_x, batch_size=256, seed=seed)
    return nll_summary(log_probs, spec), log_probs


def check_same_noise(model, test_x: torch.Tensor, seed: int) -> None:
    """deepgen's own log_prob == the peers' dequantization path around deepgen's flow, bit for bit.

    Proves that the peers' wrapper draws the same u and applies the same -D log L
    as deepgen's ``Flow.log_prob`` under the shared evaluator.
    """
    def density(flow, y):
        z, logabsdet = flow.transform(y)
        return flow.base.log_prob(z) + logabsdet

    twin = PeerFlow(model, density, model.spec, "deepgen-as-peer")
    a = per_example_log_prob(model, test_x, batch_size=256, seed=seed)
    b = per_example_log_prob(twin, test_x, batch_size=256, seed=seed)
    if not torch.equal(a, b):
        raise AssertionError(f"dequantization paths differ: max |diff| {(a - b).abs().max().item():g}")


def row(task: Task, library: str, loop: str, arch: str, model, steps_per_s: float, train_s: float,
        test_x: torch.Tensor, spec: DataSpec, seed: int) -> dict:
    """One trained model's figures; its test noise and evaluation seed are the training seed."""
    load = os.getloadavg()[0]
    res, log_probs = evaluate(model, test_x, spec, seed)
    return {
        "dataset": task.name, "library": library, "loop": loop, "seed": seed, "arch": arch,
        "params": sum(p.numel() for p in model.parameters()), "live_params": live_parameters(model, spec),
        "nll_nats": res["nll_nats"], "nll_sem": res["nll_nats_sem"], "bits_per_dim": res["bits_per_dim"],
        "steps_per_s": steps_per_s, "interleaved_steps_per_s": None, "train_s": train_s, "load_1min": load,
        "n_test": res["n"], "_log_probs": log_probs,
    }


def run_seed(task: Task, budget: Budget, peers: list[str], lib_defaults: bool, timing: tuple[int, int],
             log) -> list[dict]:
    """The vector rows (deepgen Lightning + plain, every peer) for one seed; timing rounds if any."""
    spec, tr, te = task.spec, task.splits.train, task.splits.test
    vec = "vector RealNVP, 8 couplings, MLP 64x2"
    rows, plain_models = [], []
    tag = f"[{task.name} seed {budget.seed}]"

    def fit_plain(model, library, arch):
        log(f"{tag} {library}, plain loop ({budget.steps} steps)")
        t0 = time.perf_counter()
        sps = budget.steps / PlainLoop(model, tr, budget).run(budget.steps)
        rows.append(row(task, library, "plain", arch, model, sps, time.perf_counter() - t0, te, spec, budget.seed))
        plain_models.append((len(rows) - 1, model))

    log(f"{tag} deepgen, Lightning train() ({budget.steps} steps)")
    t0 = time.perf_counter()
    flat = task.image_splits is not None
    model, sps, scores = lightning_train(budget, spec.name if flat else task.name, DEEPGEN_PARAMS,
                                         task.splits if flat else None)
    r = row(task, "deepgen", "lightning", vec, model, sps, time.perf_counter() - t0, te, spec, budget.seed)
    # train() scores the same model with the same evaluator and seed: the two must agree.
    assert abs(r["nll_nats"] - scores["nll_nats"]) < 1e-6, (r["nll_nats"], scores["nll_nats"])
    rows.append(r)

    torch.manual_seed(budget.seed)
    fit_plain(build_model("realnvp", spec, DEEPGEN_PARAMS), "deepgen", vec)
    if spec.levels is not None:
        check_same_noise(plain_models[-1][1], te, budget.seed)
    for peer in peers:
        for matched in (True, False) if lib_defaults else (True,):
            torch.manual_seed(budget.seed)
            model = PEER_BUILDERS[peer](spec, matched)
            fit_plain(model, model.name,
                      vec + (", bounded 3tanh(s/3) + zero init (matched)" if matched else ", library defaults"))

    rounds, steps = timing
    if rounds > 0:
        log(f"{tag} interleaved timing: {rounds} rounds x {steps} steps per model")
        torch.manual_seed(budget.seed)
        rates = interleaved_throughput([m for _, m in plain_models], tr, budget, rounds, steps)
        for (i, _), rate in zip(plain_models, rates):
            rows[i]["interleaved_steps_per_s"] = rate
    return rows


def run_conv(task: Task, budget: Budget, log) -> dict:
    """deepgen's multi-scale conv RealNVP on the images: an extra row, different architecture."""
    log(f"[{task.name} seed {budget.seed}] deepgen multi-scale conv RealNVP, Lightning train() "
        f"({budget.steps} steps)")
    t0 = time.perf_counter()
    model, sps, _ = lightning_train(budget, task.name, {}, None)
    p = model.params
    arch = (f"multi-scale conv RealNVP ({p['scales']} scales, {p['hidden']} ch, {p['blocks']} res blocks, "
            f"logit {p['logit_alpha']}) -- DIFFERENT architecture")
    return row(task, "deepgen-conv", "lightning", arch, model, sps, time.perf_counter() - t0,
               task.image_splits.test, task.image_splits.spec, budget.seed)


def summarize(rows: list[dict]) -> list[dict]:
    """One line per (dataset, library, loop): mean over seeds, seed-to-seed SD, mean test SE, median speeds."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["library"], r["loop"]) for r in rows):
        rs = [r for r in rows if (r["dataset"], r["library"], r["loop"]) == key]
        nll = [r["nll_nats"] for r in rs]
        mean = statistics.fmean(nll)
        inter = [r["interleaved_steps_per_s"] for r in rs if r["interleaved_steps_per_s"] is not None]
        whole = [r["whole_rounds_steps_per_s"] for r in rs if r.get("whole_rounds_steps_per_s") is not None]
        out.append({
            "dataset": key[0], "library": key[1], "loop": key[2], "arch": rs[0]["arch"],
            "seeds": [r["seed"] for r in rs], "params": rs[0]["params"], "live_params": rs[0]["live_params"],
            "nll_nats": mean, "nll_seed_sd": statistics.stdev(nll) if len(nll) > 1 else None,
            "nll_test_se": statistics.fmean(r["nll_sem"] for r in rs),
            "bits_per_dim": mean * rs[0]["bits_per_dim"] / rs[0]["nll_nats"],
            "steps_per_s": statistics.median(r["steps_per_s"] for r in rs),
            "interleaved_steps_per_s": statistics.median(inter) if inter else None,
            "whole_rounds_steps_per_s": statistics.median(whole) if whole else None,
            "train_s": statistics.fmean(r["train_s"] for r in rs),
            "load_1min": statistics.fmean(r["load_1min"] for r in rs),
        })
    return out


def comparisons(rows: list[dict], summary: list[dict]) -> list[dict]:
    """deepgen (each loop) against every peer row of the same dataset, seed by seed, then pooled.

    Per seed the NLL difference is paired (same test points, same noise u); its
    test-set SE is std(per-example differences) / sqrt(n).  Across seeds, the
    spread of the per-seed differences also carries training noise.
    """
    out = []
    get = {(s["dataset"], s["library"], s["loop"]): s for s in summary}
    for d in dict.fromkeys(r["dataset"] for r in rows):
        peers = list(dict.fromkeys(r["library"] for r in rows
                                   if r["dataset"] == d and r["library"] not in ("deepgen", "deepgen-conv")))
        for loop in ("lightning", "plain"):
            for peer in peers:
                per_seed = []
                for a in (r for r in rows if (r["dataset"], r["library"], r["loop"]) == (d, "deepgen", loop)):
                    b = next(r for r in rows if (r["dataset"], r["library"], r["seed"]) == (d, peer, a["seed"]))
                    diff = b["_log_probs"] - a["_log_probs"]  # = NLL_deepgen - NLL_peer, per example
                    se = diff.std(unbiased=True).item() / math.sqrt(len(diff))
                    per_seed.append({"seed": a["seed"], "diff": a["nll_nats"] - b["nll_nats"], "paired_se": se})
                diffs = [p["diff"] for p in per_seed]
                mine, theirs = get[(d, "deepgen", loop)], get[(d, peer, "plain")]
                ours_plain = get[(d, "deepgen", "plain")]
                inter = None
                if loop == "plain" and ours_plain["interleaved_steps_per_s"] and theirs["interleaved_steps_per_s"]:
                    inter = ours_plain["interleaved_steps_per_s"] / theirs["interleaved_steps_per_s"]
                if loop == "lightning" and mine["interleaved_steps_per_s"] and theirs.get("whole_rounds_steps_per_s"):
                    # whole runs re-timed round-robin (maf_nsf_vs_peers --whole-rounds): train() against the plain loop
                    inter = mine["interleaved_steps_per_s"] / theirs["whole_rounds_steps_per_s"]
                out.append({
                    "dataset": d, "deepgen_loop": loop, "peer": peer,
                    "nll_ratio": mine["nll_nats"] / theirs["nll_nats"],
                    "nll_diff_nats": statistics.fmean(diffs),
                    "nll_diff_seed_sd": statistics.stdev(diffs) if len(diffs) > 1 else None,
                    "worse_seeds": sum(p["diff"] > 2 * p["paired_se"] for p in per_seed),
                    "better_seeds": sum(p["diff"] < -2 * p["paired_se"] for p in per_seed),
                    "per_seed": per_seed,
                    "steps_per_s_ratio": mine["steps_per_s"] / theirs["steps_per_s"],
                    "interleaved_steps_per_s_ratio": inter,
                })
    return out


def verdict(c: dict) -> str:
    k = len(c["per_seed"])
    if c["worse_seeds"] == k:
        nll = f"deepgen NLL WORSE ({k}/{k} seeds)"
    elif c["better_seeds"] == k:
        nll = f"deepgen NLL better ({k}/{k} seeds)"
    else:
        nll = f"no consistent NLL difference ({c['worse_seeds']} worse, {c['better_seeds']} better of {k})"
    speed = c["interleaved_steps_per_s_ratio"] or c["steps_per_s_ratio"]
    return nll + (", deepgen SLOWER" if speed < 1 else ", deepgen faster")


# --------------------------------------------------------------------------- report
def print_table(summary, comps, steps_used, seeds, timing, file=sys.stdout):
    p = lambda *a: print(*a, file=file)  # noqa: E731
    num = lambda v, w, f=".1f": f"{v:>{w}{f}}" if v is not None else f"{'-':>{w}}"  # noqa: E731
    hdr = (f"{'dataset':<7} {'library':<14} {'loop':<9} {'params':>8} {'live':>7} {'test NLL':>9} {'seed sd':>7} "
           f"{'test SE':>7} {'bits/dim':>8} {'steps/s':>7} {'interl.':>7} {'train s':>7} {'load':>4}")
    p(hdr)
    p("-" * len(hdr))
    for r in summary:
        p(f"{r['dataset']:<7} {r['library']:<14} {r['loop']:<9} {r['params']:>8d} {r['live_params']:>7d} "
          f"{r['nll_nats']:>9.4f} {num(r['nll_seed_sd'], 7, '.4f')} {r['nll_test_se']:>7.4f} "
          f"{r['bits_per_dim']:>8.4f} {num(r['steps_per_s'], 7)} {num(r['interleaved_steps_per_s'], 7)} "
          f"{r['train_s']:>7.1f} {r['load_1min']:>4.1f}")
    p("")
    p(f"seeds {seeds} (deepgen-conv: seed {seeds[0]} only); steps: "
      + ", ".join(f"{d}={s}" for d, s in steps_used.items())
      + f"; interleaved timing (seed {seeds[0]}): {timing[0]} rounds x {timing[1]} steps per plain-loop model")
    for lib, arch in dict.fromkeys((r["library"], r["arch"]) for r in summary):
        p(f"  {lib}: {arch}")
    p("")
    hdr = (f"{'dataset':<7} {'deepgen':<10} {'vs peer':<14} {'NLL ratio':>9} {'NLL diff':>9} {'seed sd':>7} "
           f"{'steps/s ratio':>13} {'interl. ratio':>13}  verdict")
    p(hdr)
    p("-" * len(hdr))
    for c in comps:
        p(f"{c['dataset']:<7} {c['deepgen_loop']:<10} {c['peer']:<14} {c['nll_ratio']:>9.3f} "
          f"{c['nll_diff_nats']:>+9.4f} {num(c['nll_diff_seed_sd'], 7, '.4f')} {c['steps_per_s_ratio']:>13.2f} "
          f"{num(c['interleaved_steps_per_s_ratio'], 13, '.2f')}  {verdict(c)}")
    p("")
    p("test NLL: full test split, nats per example, mean over seeds (digits: dequantized bound\n"
      "-log p_Y(y) + 64 log 17, the same noise u for every model of a seed).  seed sd: spread over training\n"
      "seeds; test SE: standard error over test examples.  NLL diff = deepgen - peer (mean over seeds); a\n"
      "seed counts as worse/better when its paired difference (same test points and noise) exceeds 2 of its\n"
      "paired SEs.  Ratios are deepgen/peer: NLL ratio < 1 and steps/s ratio > 1 favour deepgen (read the\n"
      "difference when NLLs can be negative).  steps/s: whole training loop of the row (median over seeds);\n"
      "'interl.': plain loops re-timed round-robin under the same load, the figure to compare speed with\n"
      "('load' = 1-min load average as rows finished).  'live': parameter entries that can get a gradient.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="moons,digits", help="comma-separated: moons,digits (any 2-D toy works)")
    ap.add_argument("--peers", default="zuko,nflows", help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--steps", type=int, default=None, help="training steps for every dataset (default: "
                    + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=3, help="number of training seeds for the vector rows (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every model (default 2)")
    ap.add_argument("--timing-rounds", type=int, default=5, help="interleaved timing rounds (0 = skip)")
    ap.add_argument("--timing-steps", type=int, default=100, help="steps per model per interleaved round")
    ap.add_argument("--no-lib-defaults", action="store_true",
                    help="skip the peers' out-of-the-box rows (library scale parameterisation and init)")
    ap.add_argument("--no-conv", action="store_true", help="skip deepgen's multi-scale conv row on image data")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_STEPS} steps per dataset, 1 seed, 2 timing rounds of 10 steps")
    args = ap.parse_args(argv)

    global THREADS
    THREADS = args.threads
    torch.set_num_threads(THREADS)
    datasets = [d for d in args.datasets.split(",") if d]
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEER_BUILDERS]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; choose from {list(PEER_BUILDERS)}")
    timing = (2, 10) if args.quick else (args.timing_rounds, args.timing_steps)
    seeds = [args.seed + i for i in range(1 if args.quick else max(1, args.seeds))]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    rows, steps_used = [], {}
    for d in datasets:
        steps = QUICK_STEPS if args.quick else (args.steps or DEFAULT_STEPS.get(d, 2000))
        steps_used[d] = steps
        task = make_task(d)
        for i, seed in enumerate(seeds):
            rows += run_seed(task, Budget(steps, seed), peers, not args.no_lib_defaults,
                             timing if i == 0 else (0, 0), log)
        if task.image_splits is not None and not args.no_conv:
            rows.append(run_conv(task, Budget(steps, seeds[0]), log))
    summary = summarize(rows)
    comps = comparisons(rows, summary)
    wall = time.perf_counter() - t_start

    import lightning
    import zuko
    from importlib.metadata import version

    versions = {"torch": torch.__version__, "lightning": lightning.__version__, "zuko": zuko.__version__,
                "nflows": version("nflows")}
    print_table(summary, comps, steps_used, seeds, timing)
    print(f"wall time {wall:.1f} s; threads {torch.get_num_threads()}; cpus {os.cpu_count()}; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(json.dumps({
        "benchmark": "realnvp_vs_peers", "quick": args.quick, "seeds": seeds, "steps": steps_used,
        "threads": torch.get_num_threads(), "timing": {"rounds": timing[0], "steps": timing[1]},
        "arch": ARCH, "budget": {k: v for k, v in Budget(0, 0).__dict__.items() if k not in ("steps", "seed")},
        "summary": summary, "comparisons": comps,
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "wall_s": wall, "versions": versions,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
