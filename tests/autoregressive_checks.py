"""Reusable property checks for autoregressive models (subclasses of
:class:`deepgen.models.autoregressive.base.AutoregressiveModel`), shared by every model's tests.

    from autoregressive_checks import check_autoregressive, check_normalised, check_completion
    check_autoregressive(model)            # output i depends on no input at or after i in the ordering
    check_normalised(model)                # sum over every possible x of exp(log_prob) == 1 (tiny specs)
    check_completion(model, x, missing)    # observed kept, log q consistent with the full pass
"""

from __future__ import annotations

import itertools
import math

import torch

from bijection_checks import perturb


def all_configs(levels: int, shape) -> torch.Tensor:
    """Every x in {0..L-1}^shape, (L^D, *shape), float64."""
    d = math.prod(shape)
    return torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float64).view(-1, *shape)


def random_inputs(spec, n: int, seed: int = 0) -> torch.Tensor:
    """n random inputs of ``spec`` (levels drawn uniformly; Gaussian for continuous data), float64."""
    g = torch.Generator().manual_seed(seed)
    if spec.levels is None:
        return torch.randn(n, *spec.shape, generator=g, dtype=torch.float64)
    return torch.randint(spec.levels, (n, *spec.shape), generator=g).double()


def dependence(model, context=None, trials: int = 4) -> torch.Tensor:
    """(D out, D in) bool: whether any parameter of conditional i has a non-zero gradient w.r.t. input j,
    accumulated over ``trials`` random inputs (so ReLU dead zones cannot hide a connection)."""
    spec = model.spec
    d = spec.dim
    total = torch.zeros(d, d, dtype=torch.float64)
    for t in range(trials):
        x = random_inputs(spec, 1, seed=t).reshape(-1)

        def f(v):
            return model._params(model.to_model_space(v.view(1, *spec.shape)), context).reshape(d, -1)

        jac = torch.autograd.functional.jacobian(f, x)  # (D, K, D)
        total = total + jac.abs().sum(1)
    return total > 0


def check_autoregressive(model, context=None, full: bool = False, trials: int = 4) -> torch.Tensor:
    """Assert that conditional i depends on no input at or after i's place in ``model.ordering()``
    (by gradients, the model in float64 with random weights); ``full``: also that it depends on every
    earlier input (no blind spot).  Returns the dependence matrix."""
    model = perturb(model.double())
    order = model.ordering()
    d = model.spec.dim
    assert sorted(order.tolist()) == list(range(d)), "ordering must be a permutation of the dims"
    pos = torch.argsort(order)
    dep = dependence(model, context, trials)
    allowed = pos[None, :] < pos[:, None]  # input j strictly earlier than output i
    bad = dep & ~allowed
    assert not bad.any(), (f"{model.name}: conditional of dim {int(bad.any(1).nonzero()[0])} depends on an input "
                           "at or after its position in the ordering")
    last = int(order[-1])
    assert dep[last].any(), f"{model.name}: the last conditional depends on no input (vacuous masks)"
    if full:
        missing = allowed & ~dep
        assert not missing.any(), (f"{model.name}: blind spot, conditional of dim {int(missing.any(1).nonzero()[0])} "
                                   "misses an earlier input")
    return dep


def check_normalised(model, context=None, atol: float = 1e-6) -> torch.Tensor:
    """Assert sum_x exp(log_prob(x)) == 1 over every x of the model's (tiny, discrete) spec, weights
    randomised (far from uniform).  Returns the log-probabilities."""
    model = perturb(model.double(), scale=0.5).eval()
    x = all_configs(model.spec.levels, model.spec.shape)
    ctx = None if context is None else context.double().expand(len(x), -1)
    with torch.no_grad():
        lp = model.log_prob(x, ctx)
    total = lp.exp().sum().item()
    assert abs(total - 1) < atol, f"{model.name}: probabilities sum to {total}"
    assert lp.max() - lp.min() > 0.5, f"{model.name}: random weights gave a near-uniform distribution"
    return lp


def check_completion(model, x: torch.Tensor, missing: torch.Tensor, context=None) -> torch.Tensor:
    """Completion of x with ``missing`` (bool, x's shape) set to NaN: observed entries kept exactly, hidden
    ones valid levels, and log q of the drawn entries equal to the sum of their conditionals under one full
    pass, in the data's units (catches an incremental sampling step that disagrees with ``log_prob``).  Returns the completions."""
    cond = torch.where(missing, torch.full_like(x, float("nan")), x)
    done, log_q = model.complete(cond, context)
    assert torch.equal(done[~missing], x[~missing]), "observed entries changed"
    assert not torch.isnan(done).any()
    if model.spec.levels is not None:
        assert torch.equal(done, done.round()) and done.min() >= 0 and done.max() <= model.spec.levels - 1
    with torch.no_grad():
        per_dim = model.log_prob_per_dim(done, context)
    expect = (per_dim * missing.reshape(len(x), -1)).sum(1) + model.hidden_log_det(missing.reshape(len(x), -1))
    torch.testing.assert_close(log_q, expect, atol=1e-4, rtol=1e-4)
    return done


def fit_briefly(model, data: str = "digits-binary", steps: int = 150, lr: float = 1e-2, batch: int = 64,
                seed: int = 0) -> tuple[float, float]:
    """Train ``model`` for ``steps`` Adam steps on the training split of ``data``; returns (test NLL after,
    independent-dimension baseline test NLL), both nats per example (model in eval mode for the figure)."""
    from deepgen.data import load_data
    from deepgen.evaluation.baselines import independent_nll

    splits = load_data(data)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x = splits.train[torch.randint(len(splits.train), (batch,), generator=g)]
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        nll = -model.log_prob(splits.test).mean().item()
    return nll, independent_nll(splits)


def take_steps(model, batch, steps: int = 3, lr: float = 1e-2):
    """A few Adam steps on one batch (x or (x, context)), so weights are trained, not initial; model left in eval."""
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    return model.eval()


def check_context_errors(model, d: int) -> None:
    """A conditional model (2 context features, D = ``d`` vector dims) refuses a missing context (ConfigError)
    and inputs of the wrong shape (DataError), each with one-line messages."""
    import pytest

    from deepgen.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="context"):
        model.log_prob(torch.zeros(3, d))
    with pytest.raises(DataError, match="shape"):
        model.log_prob(torch.zeros(3, d + 1), torch.zeros(3, 2))


def check_save_load(model, x, context, directory, n: int = 3, seed: int = 5) -> None:
    """save_model / load_model round trip: same params, bit-identical log_prob of ``x`` and seeded samples."""
    from conftest import same_under_seed
    from deepgen.models.pretrained import load_model, save_model

    save_model(model, directory)
    loaded = load_model(directory)
    assert loaded.params == model.params
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, context), model.log_prob(x, context))
    c = None if context is None else context[:n]
    assert same_under_seed(lambda: model.sample(n, c), lambda: loaded.sample(n, c), seed=seed)
