"""deepgen's VAE against the same-size VAEs of normflows and pythae, on continuous (logit-dequantized) digits.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/vae_vs_peers.py            # full run (3 seeds x 3000 steps)
    PYTHONPATH=src .venv/bin/python benchmarks/vae_vs_peers.py --quick    # smoke run

For every (library, loop) it prints the test NLL (nats per image; mean over training
seeds, seed-to-seed SD, test-set standard error), bits/dim, training steps/s and
parameter counts, then the ratios deepgen/peer with a verdict and the issue's target
(deepgen's VAE at least as good as each peer's).  The last line of stdout is one JSON
object with every figure.

The fairness rules are those of ``realnvp_vs_peers.py``, whose training loop, Lightning
driver, timing, statistics and tables this script imports rather than copies:

* Data: deepgen's built-in ``digits`` (8x8, 17 levels), flattened to 64-dim vectors,
  fixed splits (train 1257 / val 270 / test 270).  Each split is dequantized once per
  seed, y = (k + u) / 17 with u ~ U[0, 1) (``deepgen.data.dequantize``), and mapped
  through the logit s = logit(a + (1 - 2a) y), a = 0.05 (``deepgen.bijections.Logit``,
  as deepgen's image flows do).  Every model, deepgen included, is handed the same
  continuous tensors s (deepgen sees them as a user's continuous data set: its
  defaults for continuous data apply, e.g. standardisation with its Jacobian counted).
  Each model's density of s is turned into a bound on the discrete digits,

      log P(k) >= log p_S(s) + log |ds/dy| - 64 log 17,

  so the figure is -log P(k) in nats per image (bits/dim = that / (64 ln 2)), and the
  same u and s for every model of a seed.
* Size: latent 8; encoder MLP 64 -> 256 -> 256 -> 2 x 8 (mean, log-scale of q(z | x)),
  decoder MLP 8 -> 256 -> 256 -> outputs, ReLU, N(0, I) prior, diagonal-Gaussian
  posterior, a Gaussian decoder likelihood.  The peers' decoders emit a mean and a
  log-variance per pixel (normflows' ``NNDiagGaussianDecoder``; pythae subclassed to the
  same, row ``pythae``).  ``pythae-default`` is pythae's own VAE as shipped
  (``reconstruction_loss="mse"``: a unit-variance Gaussian decoder); deepgen runs with
  its defaults for continuous data (see the ``arch`` line of the table for its decoder).
* Objective: each library's own one-sample ELBO (deepgen and pythae: analytic KL;
  normflows: its Monte Carlo estimate log q(z | x) - log p(x, z) with one sample, as in
  its VAE example).  No KL warm-up, free bits or other tricks for anyone.
* Budget: 3000 steps, batch 128 (shuffled, last partial batch dropped), Adam(lr 1e-3,
  betas 0.9/0.999), 100 warm-up steps then cosine decay, gradient-norm clipping at 5,
  the seed set before each model is built (``realnvp_vs_peers.PlainLoop``).
* Evaluation: one function, :func:`iwae_bound`, computes the importance-weighted bound
  (Burda et al. 2016) with K = 1000 samples for every model from two calls each
  adapter exposes: ``posterior(s) -> (mu, log sigma)`` and
  ``log_likelihood(s, z) -> log p(s | z)``.  It is run through
  ``deepgen.evaluation.likelihood.per_example_log_prob`` (batches of 256, one seed), so
  every model sees the same importance noise sequence; :func:`check_same_estimator`
  proves the function equals deepgen's own ``VAE.log_prob`` bit for bit.  The peers'
  own bounds are not used: normflows' ``NNDiagGaussianDecoder.log_prob`` takes its
  -(n/2) log 2 pi constant from the *latent* size, not the data size (normflows 1.7.3),
  which would flatter it by 28 log 2 pi = 51.5 nats per image here.
* Loops: the peers are trained by the plain PyTorch loop; deepgen both by its Lightning
  ``deepgen.workflows.train.train`` (what users get; validation once, at the end) and by
  the same plain loop.  Speed is compared on the interleaved re-timing.
* Threads: ``torch.set_num_threads(1)`` by default (``--threads``; the machine these
  figures come from is a shared 2-core box) and ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see realnvp_vs_peers.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import maf_nsf_vs_peers as mnp  # noqa: E402
import realnvp_vs_peers as rvp  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from deepgen.bijections.elementwise import Logit  # noqa: E402
from deepgen.data import load_data  # noqa: E402
from deepgen.data.dequantize import dequantize  # noqa: E402
from deepgen.data.spec import DataSpec, Splits  # noqa: E402
from deepgen.distributions import gaussian_log_prob, standard_normal_log_prob  # noqa: E402
from deepgen.evaluation.likelihood import nll_summary, per_example_log_prob  # noqa: E402
from deepgen.models.registry import build_model  # noqa: E402

ARCH = {"latent": 8, "hidden": 256, "depth": 2}
LOGIT_ALPHA = 0.05
IW_SAMPLES = 1000
DEFAULT_STEPS = 3000
QUICK_STEPS = 60
PEERS = ("normflows", "pythae", "pythae-default")
DATA_NAME = "digits-logit"
_IW_ROWS = 1 << 15  # rows (examples x importance samples) decoded at once, as in deepgen's VAE.log_prob


# --------------------------------------------------------------------------- data
def make_task(seed: int, steps: int = 0, batch: int = 128) -> rvp.Task:
    """Flattened digits, dequantized under ``seed`` and logit-transformed (a continuous spec).

    ``steps`` > 0 (fresh noise): the train split is tiled ceil(steps * batch / N) times, each tile
    with its own u, so the training run sees every image with fresh noise on each visit, as a flow that
    dequantizes inside its loss does; ``steps`` = 0: one u per image (a fixed file of continuous data).
    Validation and test get one draw each.
    """
    base = load_data("digits", labels="none")
    logit = Logit(LOGIT_ALPHA)
    out = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in ("train", "val", "test"):
            k = base.split(part)
            k = k.reshape(len(k), -1)
            if part == "train" and steps > 0:
                k = k.repeat(math.ceil(steps * batch / len(k)), 1)
            y, _ = dequantize(k, base.spec.levels)
            out[part] = logit(y)[0]
    noise = "fresh u on every visit of a training image" if steps > 0 else "one u per image"
    spec = DataSpec(DATA_NAME, (base.spec.dim,), None,
                    f"digits, dequantized y = (k + u)/17 ({noise}), s = logit({LOGIT_ALPHA} + "
                    f"{1 - 2 * LOGIT_ALPHA:g} y); 64-dim vectors")
    return rvp.Task("digits", Splits(spec, out["train"], out["val"], out["test"]), None)


def discrete_correction(s: torch.Tensor) -> torch.Tensor:
    """log |ds/dy| - D log 17 per example: turns log p_S(s) into the bound on log P(k)."""
    _, log_dy_ds = Logit(LOGIT_ALPHA).inverse(s)
    return -log_dy_ds - s.shape[1] * math.log(17)


# --------------------------------------------------------------------------- the one estimator
def iwae_bound(posterior, log_likelihood, x: torch.Tensor, k: int) -> torch.Tensor:
    """IWAE_k(x) = log (1/k) sum_i p(z_i) p(x | z_i) / q(z_i | x),  z_i = mu + sigma eps_i, eps_i ~ N(0, I).

    ``posterior(x) -> (mu, log sigma)``, each (B, latent); ``log_likelihood(x, z) -> (B,)`` nats.
    Samples are drawn in chunks of (kc, B, latent) and combined with a streaming logsumexp
    (the draw order of deepgen's ``VAE.log_prob``, so the two agree bit for bit).
    """
    mu, log_std = posterior(x)
    b = len(x)
    chunk = max(1, min(k, _IW_ROWS // max(b, 1)))
    total = None
    for start in range(0, k, chunk):
        kc = min(chunk, k - start)
        eps = torch.randn(kc, *mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(log_std) * eps
        log_q = gaussian_log_prob(z, mu, log_std)
        xs = x.unsqueeze(0).expand(kc, *x.shape).reshape(kc * b, *x.shape[1:])
        log_px = log_likelihood(xs, z.reshape(kc * b, -1)).reshape(kc, b)
        lse = torch.logsumexp(standard_normal_log_prob(z) + log_px - log_q, 0)
        total = lse if total is None else torch.logaddexp(total, lse)
    return total - math.log(k)


class Scored(nn.Module):
    """An adapter behind ``log_prob`` = the IWAE_k bound on log P(k) of the digits (what the table reports)."""

    def __init__(self, adapter: nn.Module, k: int):
        super().__init__()
        self.adapter, self.k = adapter, k

    def log_prob(self, s, context=None):
        return iwae_bound(self.adapter.posterior, self.adapter.log_likelihood, s, self.k) + discrete_correction(s)

    @property
    def device(self):
        return next(self.parameters()).device


# --------------------------------------------------------------------------- adapters
class DeepgenVAE(nn.Module):
    """deepgen's VAE: its own posterior and log-likelihood (standardisation Jacobian included)."""

    name = "deepgen"

    def __init__(self, model):
        super().__init__()
        self.model = model

    def posterior(self, x):
        mu, log_std, h = self.model.posterior(x)
        if h is not None:
            raise ValueError("this benchmark compares diagonal-Gaussian posteriors (posterior='gaussian')")
        return mu, log_std

    def log_likelihood(self, x, z):
        return self.model.log_likelihood(x, z)

    def loss(self, batch):
        return self.model.loss(batch)


def _mean_log_std(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log sigma) from a network's [mean | log variance] halves (the peers' convention)."""
    d = out.shape[1] // 2
    return out[:, :d], 0.5 * out[:, d:]


class NormflowsVAE(nn.Module):
    """normflows ``NormalizingFlowVAE`` (no flows) with ``NNDiagGaussian`` encoder and ``NNDiagGaussianDecoder``.

    Trained with normflows' objective mean(log q) - mean(log p) from ``model(x, num_samples=1)``.
    """

    name = "normflows"

    def __init__(self, dim: int):
        super().__init__()
        import normflows as nf

        d, h, depth = ARCH["latent"], ARCH["hidden"], ARCH["depth"]
        enc = nf.nets.MLP([dim] + [h] * depth + [2 * d])
        dec = nf.nets.MLP([d] + [h] * depth + [2 * dim])
        prior = torch.distributions.MultivariateNormal(torch.zeros(d), torch.eye(d))
        self.vae = nf.NormalizingFlowVAE(prior, nf.distributions.NNDiagGaussian(enc), None,
                                         nf.distributions.NNDiagGaussianDecoder(dec))

    def posterior(self, x):
        return _mean_log_std(self.vae.q0.net(x))

    def log_likelihood(self, x, z):
        mean, log_std = _mean_log_std(self.vae.decoder.net(z))
        return gaussian_log_prob(x, mean, log_std)

    def loss(self, batch):
        _, log_q, log_p = self.vae(batch, num_samples=1)
        return {"loss": log_q.mean() - log_p.mean()}


class PythaeVAE(nn.Module):
    """pythae ``VAE`` with MLP encoder/decoder of the shared size.

    ``learned_variance=True`` (row ``pythae``): the decoder emits [mean | log variance] and a
    subclass's ``loss_function`` scores it with that Gaussian (pythae's own is fixed-variance only).
    False (row ``pythae-default``): pythae as shipped, ``reconstruction_loss="mse"``, i.e.
    log p(x | z) = N(x; mean, I).
    """

    def __init__(self, dim: int, learned_variance: bool):
        super().__init__()
        from pythae.models import VAE, VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder

        from deepgen.nets import MLP

        d, h, depth = ARCH["latent"], ARCH["hidden"], ARCH["depth"]
        self.name = "pythae" if learned_variance else "pythae-default"
        self.learned_variance = learned_variance

        class Encoder(BaseEncoder):
            def __init__(self):
                super().__init__()
                self.net = MLP(dim, 2 * d, h, depth)  # plain Linear/ReLU stack, PyTorch's default init

            def forward(self, x):
                out = self.net(x)
                return ModelOutput(embedding=out[:, :d], log_covariance=out[:, d:])

        class Decoder(BaseDecoder):
            def __init__(self):
                super().__init__()
                self.net = MLP(d, (2 if learned_variance else 1) * dim, h, depth)

            def forward(self, z):
                return ModelOutput(reconstruction=self.net(z))

        class GaussianVAE(VAE):
            """pythae's VAE with a learned-variance Gaussian reconstruction term."""

            def loss_function(self, recon_x, x, mu, log_var, z):
                mean, log_std = _mean_log_std(recon_x)
                recon = -gaussian_log_prob(x, mean, log_std)
                kld = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp(), dim=-1)
                return (recon + kld).mean(0), recon.mean(0), kld.mean(0)

        cfg = VAEConfig(input_dim=(dim,), latent_dim=d, reconstruction_loss="mse")
        self.vae = (GaussianVAE if learned_variance else VAE)(cfg, encoder=Encoder(), decoder=Decoder())

    def posterior(self, x):
        out = self.vae.encoder(x)
        return out.embedding, 0.5 * out.log_covariance

    def log_likelihood(self, x, z):
        out = self.vae.decoder(z)["reconstruction"]
        if self.learned_variance:
            return gaussian_log_prob(x, *_mean_log_std(out))
        return gaussian_log_prob(x, out, torch.zeros_like(out))

    def loss(self, batch):
        return {"loss": self.vae({"data": batch}).loss}


PEER_BUILDERS = {
    "normflows": lambda dim: NormflowsVAE(dim),
    "pythae": lambda dim: PythaeVAE(dim, learned_variance=True),
    "pythae-default": lambda dim: PythaeVAE(dim, learned_variance=False),
}
PEER_ARCH = {
    "normflows": "NormalizingFlowVAE, NNDiagGaussian enc, NNDiagGaussianDecoder (mean, log var), MC KL",
    "pythae": "VAE subclassed: decoder (mean, log var), analytic KL",
    "pythae-default": "VAE as shipped: mse = unit-variance Gaussian decoder, analytic KL",
}


def deepgen_arch(model) -> str:
    p = model.params
    return (f"VAE latent {p['latent']}, MLP {p['hidden']}x{p['depth']}, decoder {model.decoder_kind}, "
            f"standardize {p['standardize']}")


# --------------------------------------------------------------------------- measurement
def lightning_train(budget, params: dict, splits: Splits):
    """deepgen's own ``train`` on ``splits`` (see ``realnvp_vs_peers.lightning_train``); (model, steps/s).

    ``train`` accepts a built-in name or an existing file: the continuous splits are named by a
    scratch .npy file (its train split) and handed to ``train`` in place of its ``load_data``.
    """
    import numpy as np

    from deepgen.data.source import canonical_source

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{DATA_NAME}.npy")
        np.save(path, splits.val.numpy())  # names the data; train() gets ``splits`` itself
        with rvp.substituted_data(splits, canonical_source(path)):
            model, sps, _ = rvp.lightning_train(budget, path, params, None)
    return model, sps


def check_same_estimator(model, x: torch.Tensor, seed: int, k: int = 64) -> None:
    """:func:`iwae_bound` on deepgen's adapter == deepgen's own ``VAE.log_prob`` (same seed), bit for bit."""
    adapter = DeepgenVAE(model)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        a = model.log_prob(x, k=k)
        torch.manual_seed(seed)
        b = iwae_bound(adapter.posterior, adapter.log_likelihood, x, k)
    if not torch.equal(a, b):
        raise AssertionError(f"shared IWAE differs from deepgen's log_prob: max |diff| {(a - b).abs().max():g}")


def row(task, library: str, loop: str, arch: str, adapter, steps_per_s: float, train_s: float, seed: int,
        k: int) -> dict:
    """One trained model's figures (IWAE_k on the full test split, evaluation seed = training seed)."""
    load = os.getloadavg()[0]
    spec = task.spec
    log_probs = per_example_log_prob(Scored(adapter, k), task.splits.test, batch_size=256, seed=seed)
    res = nll_summary(log_probs, spec)
    params = sum(p.numel() for p in adapter.parameters())
    return {
        "dataset": task.name, "library": library, "loop": loop, "seed": seed, "arch": arch,
        "params": params, "live_params": rvp.live_parameters(Scored(adapter, 2), spec),
        "nll_nats": res["nll_nats"], "nll_sem": res["nll_nats_sem"], "bits_per_dim": res["bits_per_dim"],
        "steps_per_s": steps_per_s, "interleaved_steps_per_s": None, "train_s": train_s, "load_1min": load,
        "n_test": res["n"], "iw_samples": k, "_log_probs": log_probs,
    }


def run_seed(steps: int, seed: int, peers: list[str], params: dict, k: int, timing: tuple[int, int], log,
             lightning: bool = True, fresh: bool = True) -> list[dict]:
    """One seed: deepgen via Lightning ``train`` and the plain loop, then every peer in the plain loop."""
    task = make_task(seed, steps if fresh else 0, rvp.Budget(0, 0).batch_size)
    spec, tr = task.spec, task.splits.train
    budget = mnp.ModelBudget(steps, seed, model="vae")
    tag = f"[digits-logit seed {seed}]"
    rows, plain = [], []

    if lightning:
        log(f"{tag} deepgen, Lightning train() ({steps} steps)")
        t0 = time.perf_counter()
        model, sps = lightning_train(budget, params, task.splits)
        rows.append(row(task, "deepgen", "lightning", deepgen_arch(model), DeepgenVAE(model), sps,
                        time.perf_counter() - t0, seed, k))

    builders = [("deepgen", lambda: DeepgenVAE(build_model("vae", spec, params)))]
    builders += [(p, lambda p=p: PEER_BUILDERS[p](spec.dim)) for p in peers]
    for library, build in builders:
        torch.manual_seed(seed)
        adapter = build()
        if library == "deepgen":
            adapter.model.fit_preprocessing(tr)  # what train() does before its first step
        log(f"{tag} {library}, plain loop ({steps} steps)")
        t0 = time.perf_counter()
        sps = steps / rvp.PlainLoop(adapter, tr, budget).run(steps)
        if library == "deepgen":
            check_same_estimator(adapter.model, task.splits.test[:64], seed)
        arch = deepgen_arch(adapter.model) if library == "deepgen" else PEER_ARCH[library]
        rows.append(row(task, library, "plain", arch, adapter, sps, time.perf_counter() - t0, seed, k))
        plain.append((len(rows) - 1, adapter))

    if timing[0] > 0:
        log(f"{tag} interleaved timing: {timing[0]} rounds x {timing[1]} steps per model")
        torch.manual_seed(seed)
        rates = rvp.interleaved_throughput([m for _, m in plain], tr, budget, *timing)
        for (i, _), rate in zip(plain, rates):
            rows[i]["interleaved_steps_per_s"] = rate
    return rows


def comparisons(rows: list[dict]) -> list[dict]:
    """``realnvp_vs_peers.comparisons`` for the deepgen loops that ran (it expects both)."""
    loops = {r["loop"] for r in rows if r["library"] == "deepgen"}
    stand_in = [dict(r, loop=other) for r in rows if r["library"] == "deepgen"
                for other in ("lightning", "plain") if other not in loops]
    return [c for c in rvp.comparisons(rows + stand_in, rvp.summarize(rows + stand_in)) if c["deepgen_loop"] in loops]


def target(c: dict) -> str:
    ok = c["worse_seeds"] == 0
    return f"NLL >= peer: {'met' if ok else 'NOT met'} ({c['worse_seeds']} seed(s) worse by > 2 paired SE)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=3, help="number of training seeds (default 3)")
    ap.add_argument("--iw-samples", type=int, default=IW_SAMPLES, help=f"K of the IWAE bound (default {IW_SAMPLES})")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every model (default 1)")
    ap.add_argument("--timing-rounds", type=int, default=10, help="interleaved timing rounds (0 = skip; default 10)")
    ap.add_argument("--timing-steps", type=int, default=50, help="steps per model per interleaved round (default 50)")
    ap.add_argument("--no-lightning", action="store_true", help="skip the deepgen Lightning row")
    ap.add_argument("--fixed-noise", action="store_true",
                    help="dequantize each training image once (a fixed continuous file) instead of afresh on "
                         "every visit")
    ap.add_argument("--deepgen-params", default="{}",
                    help="JSON of extra deepgen VAE hyper-parameters (ablations; the size stays fixed)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_STEPS} steps, 1 seed, K = 50, 2 timing rounds of 10 steps")
    args = ap.parse_args(argv)

    rvp.THREADS = args.threads  # lightning_train restores this thread count after Lightning
    torch.set_num_threads(args.threads)
    peers = [p for p in args.peers.split(",") if p]
    bad = [p for p in peers if p not in PEER_BUILDERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {list(PEER_BUILDERS)}")
    params = {**ARCH, **json.loads(args.deepgen_params)}
    if any(params[key] != v for key, v in ARCH.items()):
        ap.error(f"--deepgen-params may not change the size {ARCH}")
    timing = (2, 10) if args.quick else (args.timing_rounds, args.timing_steps)
    seeds = [args.seed + i for i in range(1 if args.quick else max(1, args.seeds))]
    steps = QUICK_STEPS if args.quick else args.steps
    k = 50 if args.quick else args.iw_samples

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    rows = []
    for i, seed in enumerate(seeds):
        rows += run_seed(steps, seed, peers, params, k, timing if i == 0 else (0, 0), log,
                         lightning=not args.no_lightning, fresh=not args.fixed_noise)
    summary = rvp.summarize(rows)
    comps = comparisons(rows)
    wall = time.perf_counter() - t_start

    import lightning
    import normflows
    from importlib.metadata import version

    versions = {"torch": torch.__version__, "lightning": lightning.__version__, "normflows": normflows.__version__,
                "pythae": version("pythae")}
    buf = io.StringIO()
    rvp.print_table(summary, comps, {"digits": steps}, seeds, timing, file=buf)
    text = buf.getvalue().partition("\ntest NLL: full test split")[0]
    print(text.replace(f" (deepgen-conv: seed {seeds[0]} only)", "").rstrip("\n"))
    for c in comps:
        print(f"  target {c['deepgen_loop']:<9} vs {c['peer']:<14}: {target(c)}")
    print()
    print(f"test NLL: full test split (270 images), nats per image, mean over seeds: the IWAE bound (K = {k}) on\n"
          f"-log P(k) of the 17-level digits, -(IWAE_K(s) + log|ds/dy|) + 64 log 17, computed by one estimator for\n"
          f"every model, with the same dequantization u and the same importance noise for every model of a seed.\n"
          f"seed sd: spread over training seeds; test SE: standard error over test images.  NLL diff = deepgen -\n"
          f"peer; a seed counts as worse/better when its paired difference exceeds 2 paired SEs.  Ratios are\n"
          f"deepgen/peer (NLL ratio < 1 and steps/s ratio > 1 favour deepgen); 'interl.': plain loops re-timed\n"
          f"round-robin under the same load (compare speed there); 'load': 1-min load average.")
    print(f"wall time {wall:.1f} s; threads {torch.get_num_threads()}; cpus {os.cpu_count()}; "
          + ", ".join(f"{key} {v}" for key, v in versions.items()))
    print(json.dumps({
        "benchmark": "vae_vs_peers", "quick": args.quick, "seeds": seeds, "steps": steps, "iw_samples": k,
        "threads": torch.get_num_threads(), "timing": {"rounds": timing[0], "steps": timing[1]},
        "arch": ARCH, "deepgen_params": params, "logit_alpha": LOGIT_ALPHA,
        "train_noise": "fixed" if args.fixed_noise else "fresh",
        "budget": {key: v for key, v in rvp.Budget(0, 0).__dict__.items() if key not in ("steps", "seed")},
        "summary": summary, "comparisons": comps,
        "rows": [{key: v for key, v in r.items() if not key.startswith("_")} for r in rows],
        "wall_s": wall, "versions": versions,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
