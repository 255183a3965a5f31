"""RealNVP in deepgen against the same RealNVP in peer libraries (zuko, nflows), one run.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/realnvp_vs_peers.py            # full run
    PYTHONPATH=src .venv/bin/python benchmarks/realnvp_vs_peers.py --quick    # smoke run

For every (dataset, library) it prints the test NLL (nats per example, with its
standard error), bits/dim, training steps/s, the parameter count (total, and
"live": entries that can receive a gradient), and then the ratios deepgen/peer.
The last line of stdout is one JSON object with every figure.

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
  One structural difference remains and is reported, not hidden: deepgen's
  conditioner reads the whole masked vector m * x (D inputs, the D/2 masked ones
  are zeros) and emits (s, t) for all D coordinates (the kept half discarded),
  while zuko and nflows feed only the D/2 kept coordinates and emit only the D/2
  transformed ones.  The function class is the same; deepgen carries
  structurally dead weights (column "live" counts the others) and does roughly
  twice the first- and last-layer arithmetic.
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
  by ``deepgen.training.run.train`` (Lightning; what users of the library and
  CLI get: its validation runs once, at the end) and by the *same* plain loop as
  the peers, so throughput compares like with like.  Both are reported: the
  Lightning overhead is real.  The flattened digits are no built-in dataset
  name, so for that row ``train`` is handed the flattened splits in place of its
  ``load_data``; the rest of ``train`` runs unchanged.
* Threads: ``torch.set_num_threads(2)`` for everything; CPU.

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
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepgen.data import load_data
from deepgen.data.spec import DataSpec, Splits
from deepgen.evaluation.likelihood import nll_summary, per_example_log_prob
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig
from deepgen.training.schedule import make_optimizer

ARCH = {"couplings": 8, "hidden": 64, "depth": 2, "scale_bound": 3.0}
DEFAULT_STEPS = {"moons": 2000, "digits": 2000}
QUICK_STEPS = 40
PEERS = ("zuko", "nflows")


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
                  labels=dict(splits.labels))
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


def plain_loop(model: nn.Module, train_x: torch.Tensor, budget: Budget) -> float:
    """Adam + warm-up/cosine + grad-norm clipping on mean NLL; returns steps/s. Same loop for every library."""
    opt, sched = make_optimizer(model.parameters(), budget)
    n = len(train_x)
    batch = min(budget.batch_size, n)
    loader = DataLoader(TensorDataset(train_x), batch_size=batch, shuffle=True, drop_last=n > batch)
    model.train()
    step = 0
    t0 = time.perf_counter()
    while step < budget.steps:
        for (x,) in loader:
            loss = model.loss(x)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), budget.grad_clip)
            opt.step()
            sched.step()
            step += 1
            if step == budget.steps:
                break
    return budget.steps / (time.perf_counter() - t0)


@contextlib.contextmanager
def substituted_data(splits: Splits, name: str):
    """Make ``deepgen.training.run.load_data(name)`` return ``splits`` (flattened digits: no built-in name)."""
    import deepgen.training.run as run

    original = run.load_data
    run.load_data = lambda n: splits if n == name else original(n)
    try:
        yield
    finally:
        run.load_data = original


def lightning_train(budget: Budget, data: str, params: dict, splits: Splits | None):
    """deepgen's own ``train`` into a temporary run directory; returns (model, steps/s, train's scores)."""
    from deepgen.io import load_model
    from deepgen.training.run import train

    det = torch.are_deterministic_algorithms_enabled()
    with tempfile.TemporaryDirectory() as out:
        cfg = budget.train_config("realnvp", data, params)
        ctx = substituted_data(splits, data) if splits is not None else contextlib.nullcontext()
        with ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = train(cfg, out, verbose=False)
        model = load_model(out)
    # Lightning's deterministic=True flips a process-wide flag; restore it so later rows run as before.
    torch.use_deterministic_algorithms(det)
    torch.set_num_threads(2)
    return model, scores["train_steps_per_s"], scores


# --------------------------------------------------------------------------- measurement
def live_parameters(model: nn.Module, x: torch.Tensor) -> int:
    """Parameter entries that can receive a gradient: count of nonzero d(sum log p)/d(theta).

    Done on a copy whose parameters are redrawn at random (so zero-initialised
    layers do not hide the layers before them).  Weights reading a masked-out
    (always zero) input, and outputs multiplied by a zero mask, get exactly zero.
    """
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.1 * torch.randn_like(p))
    m.zero_grad(set_to_none=True)
    m.log_prob(x).sum().backward()
    return int(sum((p.grad != 0).sum().item() for p in m.parameters() if p.grad is not None))


def evaluate(model, test_x: torch.Tensor, spec: DataSpec, seed: int) -> dict:
    """Full test split through deepgen's evaluator (fixed batches of 256, one seed, same noise for all)."""
    return nll_summary(per_example_log_prob(model, test_x, batch_size=256, seed=seed), spec)


def row(task: Task, library: str, loop: str, arch: str, model, steps_per_s: float, train_s: float,
        test_x: torch.Tensor, spec: DataSpec, seed: int) -> dict:
    torch.manual_seed(seed)
    live = live_parameters(model, test_x[:256])
    res = evaluate(model, test_x, spec, seed)
    return {
        "dataset": task.name, "library": library, "loop": loop, "arch": arch,
        "params": sum(p.numel() for p in model.parameters()), "live_params": live,
        "nll_nats": res["nll_nats"], "nll_sem": res["nll_nats_sem"], "bits_per_dim": res["bits_per_dim"],
        "steps_per_s": steps_per_s, "train_s": train_s, "n_test": res["n"],
    }


def run_task(task: Task, budget: Budget, peers: list[str], lib_defaults: bool, log) -> list[dict]:
    spec, tr, te = task.spec, task.splits.train, task.splits.test
    vec = "vector RealNVP, 8 couplings, MLP 64x2"
    rows = []

    log(f"[{task.name}] deepgen, Lightning train()")
    t0 = time.perf_counter()
    model, sps, scores = lightning_train(budget, spec.name if task.image_splits is not None else task.name,
                                         ARCH, task.splits if task.image_splits is not None else None)
    r = row(task, "deepgen", "lightning", vec, model, sps, time.perf_counter() - t0, te, spec, budget.seed)
    # train() scores the same model with the same evaluator and seed: the two must agree.
    assert abs(r["nll_nats"] - scores["nll_nats"]) < 1e-6, (r["nll_nats"], scores["nll_nats"])
    rows.append(r)

    log(f"[{task.name}] deepgen, plain loop")
    torch.manual_seed(budget.seed)
    model = build_model("realnvp", spec, ARCH)
    t0 = time.perf_counter()
    sps = plain_loop(model, tr, budget)
    rows.append(row(task, "deepgen", "plain", vec, model, sps, time.perf_counter() - t0, te, spec, budget.seed))

    for peer in peers:
        for matched in (True, False) if lib_defaults else (True,):
            torch.manual_seed(budget.seed)
            model = PEER_BUILDERS[peer](spec, matched)
            log(f"[{task.name}] {model.name}, plain loop")
            t0 = time.perf_counter()
            sps = plain_loop(model, tr, budget)
            arch = vec + (", bounded 3tanh(s/3) + zero init (matched)" if matched else ", library defaults")
            rows.append(row(task, model.name, "plain", arch, model, sps, time.perf_counter() - t0, te, spec,
                            budget.seed))

    if task.image_splits is not None:
        log(f"[{task.name}] deepgen multi-scale conv RealNVP, Lightning train()")
        t0 = time.perf_counter()
        model, sps, _ = lightning_train(budget, task.name, {}, None)
        p = model.params
        arch = (f"multi-scale conv RealNVP ({p['scales']} scales, {p['hidden']} ch, {p['blocks']} res blocks, "
                f"logit {p['logit_alpha']}) -- DIFFERENT architecture")
        rows.append(row(task, "deepgen-conv", "lightning", arch, model, sps, time.perf_counter() - t0,
                        task.image_splits.test, task.image_splits.spec, budget.seed))
    return rows


def comparisons(rows: list[dict]) -> list[dict]:
    """deepgen (each loop) against every matched and default peer row of the same dataset."""
    out = []
    for d in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == d and r["library"] == "deepgen"]
        theirs = [r for r in rows if r["dataset"] == d and r["library"] not in ("deepgen", "deepgen-conv")]
        for a in mine:
            for b in theirs:
                out.append({
                    "dataset": d, "deepgen_loop": a["loop"], "peer": b["library"],
                    "nll_ratio": a["nll_nats"] / b["nll_nats"],
                    "nll_diff_nats": a["nll_nats"] - b["nll_nats"],
                    "nll_diff_sems": (a["nll_nats"] - b["nll_nats"]) / math.hypot(a["nll_sem"], b["nll_sem"]),
                    "steps_per_s_ratio": a["steps_per_s"] / b["steps_per_s"],
                })
    return out


# --------------------------------------------------------------------------- report
def print_table(rows, comps, budget_steps, file=sys.stdout):
    p = lambda *a: print(*a, file=file)  # noqa: E731
    hdr = (f"{'dataset':<8} {'library':<15} {'loop':<9} {'params':>8} {'live':>8} {'test NLL (nats)':>18} "
           f"{'bits/dim':>9} {'steps/s':>8} {'train s':>8}")
    p(hdr)
    p("-" * len(hdr))
    for r in rows:
        p(f"{r['dataset']:<8} {r['library']:<15} {r['loop']:<9} {r['params']:>8d} {r['live_params']:>8d} "
          f"{r['nll_nats']:>10.4f} ±{r['nll_sem']:<6.4f} {r['bits_per_dim']:>9.4f} {r['steps_per_s']:>8.1f} "
          f"{r['train_s']:>8.1f}")
    p("")
    p("steps per dataset: " + ", ".join(f"{d}={s}" for d, s in budget_steps.items()))
    p("arch: " + "; ".join(sorted({f"{r['library']}: {r['arch']}" for r in rows})))
    p("")
    hdr = (f"{'dataset':<8} {'deepgen loop':<13} {'vs peer':<15} {'NLL ratio':>9} {'NLL diff':>9} "
           f"{'diff/SE':>8} {'steps/s ratio':>13}  verdict")
    p(hdr)
    p("-" * len(hdr))
    for c in comps:
        verdict = []
        if c["nll_diff_sems"] > 2:
            verdict.append("deepgen NLL WORSE")
        elif c["nll_diff_sems"] < -2:
            verdict.append("deepgen NLL better")
        else:
            verdict.append("NLL within 2 SE")
        verdict.append("deepgen SLOWER" if c["steps_per_s_ratio"] < 1 else "deepgen faster")
        p(f"{c['dataset']:<8} {c['deepgen_loop']:<13} {c['peer']:<15} {c['nll_ratio']:>9.3f} "
          f"{c['nll_diff_nats']:>+9.4f} {c['nll_diff_sems']:>+8.2f} {c['steps_per_s_ratio']:>13.2f}  "
          f"{', '.join(verdict)}")
    p("")
    p("NLL: test split, nats per example (digits: dequantized bound -log p_Y(y) + 64 log 17); ± = standard error "
      "of the mean over test examples (the paired comparison shares test points, so diff/SE is conservative). "
      "Ratios are deepgen/peer; NLL ratio < 1 and steps/s ratio > 1 favour deepgen (NLL ratio is only meaningful "
      "when both NLLs are positive; read the difference).  'live' = parameters that can receive a gradient.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="moons,digits", help="comma-separated: moons,digits (any 2-D toy works)")
    ap.add_argument("--peers", default="zuko,nflows", help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--steps", type=int, default=None, help="training steps for every dataset (default: "
                    + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-lib-defaults", action="store_true",
                    help="skip the peers' out-of-the-box rows (library scale parameterisation and init)")
    ap.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_STEPS} steps per dataset")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    datasets = [d for d in args.datasets.split(",") if d]
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEER_BUILDERS]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; choose from {list(PEER_BUILDERS)}")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    rows, steps_used = [], {}
    for d in datasets:
        steps = QUICK_STEPS if args.quick else (args.steps or DEFAULT_STEPS.get(d, 2000))
        steps_used[d] = steps
        rows += run_task(make_task(d), Budget(steps, args.seed), peers, not args.no_lib_defaults, log)
    comps = comparisons(rows)
    wall = time.perf_counter() - t_start

    print_table(rows, comps, steps_used)
    import lightning
    import nflows  # noqa: F401
    import zuko
    print(f"wall time {wall:.1f} s; torch {torch.__version__}, lightning {lightning.__version__}, "
          f"zuko {zuko.__version__}, threads {torch.get_num_threads()}")
    print(json.dumps({
        "benchmark": "realnvp_vs_peers", "quick": args.quick, "seed": args.seed, "steps": steps_used,
        "arch": ARCH, "budget": {k: v for k, v in Budget(0, args.seed).__dict__.items() if k not in ("steps",)},
        "rows": rows, "comparisons": comps, "wall_s": wall,
        "versions": {"torch": torch.__version__, "lightning": lightning.__version__, "zuko": zuko.__version__},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
