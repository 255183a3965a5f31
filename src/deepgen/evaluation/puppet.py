"""How well an attribute manipulator (capability ``manipulate``: PuppetGAN) sets the angle of real digits.

The real test digits x_i (taken to be upright, angle ~ 0) are manipulated to each target angle t,
y_i = model.manipulate(x_i, angle=t), and compared with the ground truth rotate_digits(x_i, t)
(:mod:`deepgen.data.puppet`: bilinear rotation, rounded to the levels).  Figures per target angle
and averaged over the angles, for the model and two baselines, ``identity`` (y = x: nothing changes)
and ``oracle`` (y = rotate_digits(x, t): the truth itself):

* attribute error, degrees: (1 / N) sum_i |angle_hat(y_i) - t|, read two ways:
  ``angle_error_model``, the model's own attribute encoder (``read_angle``: can the model tell what it
  did), and ``angle_error_regressor``, an independent angle regressor trained here on rotated real
  training digits (:func:`angle_regressor`; its error on the oracle row is its own floor);
* ``mae``: (1 / N D) sum_i |y_i - rotate_digits(x_i, t)|_1 on the [0, 1] scale, x / (L - 1);
* ``label_preservation``: (1 / N) sum_i 1[c(y_i) = label_i], c deepgen's shipped digits classifier.

``inputs`` reports both readers on the unmanipulated digits (mean and spread of angle_hat(x)): how
far from 0 the "upright" assumption is in each reader's eyes.

The regressor: a :class:`~deepgen.nets.conv.ConvEncoder` to one number, trained to output t / 45 from
rotate_digits(x, t) with x from the training split and t uniform in [-45, 45] (squared error, Adam,
``REGRESSOR_SETTINGS``), seeded; the global RNG is left untouched, and the net is cached per process.
"""

from __future__ import annotations

import torch

from deepgen.data.puppet import MAX_ANGLE, rotate
from deepgen.data.spec import Splits
from deepgen.errors import ConfigError, DataError
from deepgen.evaluation.plots import plot_image_rows
from deepgen.evaluation.sample_quality import accuracy, digits_feature_net, to_net_scale
from deepgen.nets.conv import ConvEncoder

REGRESSOR_SETTINGS = {"steps": 1500, "batch_size": 128, "lr": 2e-3, "channels": 32, "depth": 2}
ANGLES = (-30.0, -15.0, 15.0, 30.0)
_REGRESSORS: dict[tuple, torch.nn.Module] = {}


def angle_regressor(splits: Splits, seed: int = 0, steps: int = REGRESSOR_SETTINGS["steps"]) -> torch.nn.Module:
    """A net R with R(x / (L - 1)) * 45 ~ the angle (degrees) by which real digits x were rotated; trained on
    rotate(x, t) of the training split, t ~ U[-45, 45] (see the module docstring); cached per (data, seed, steps)."""
    spec = splits.spec
    key = (spec.name, tuple(spec.shape), spec.levels, len(splits.train), seed, steps)
    if key in _REGRESSORS:
        return _REGRESSORS[key]
    s = REGRESSOR_SETTINGS
    g = torch.Generator().manual_seed(seed)
    x_train = splits.train.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ConvEncoder(spec.shape, 1, s["channels"], s["depth"], 0)
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = torch.randint(len(x_train), (s["batch_size"],), generator=g)
        t = (2 * torch.rand(s["batch_size"], generator=g) - 1) * MAX_ANGLE
        xb = rotate(x_train[idx], t, spec.levels) / (spec.levels - 1)
        loss = (net(xb)[:, 0] - t / MAX_ANGLE).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    _REGRESSORS[key] = net
    return net


@torch.no_grad()
def regress_angle(net: torch.nn.Module, x: torch.Tensor, levels: int) -> torch.Tensor:
    """The regressor's angle (degrees, (N,)) of images ``x`` on the data scale."""
    return net(x.float() / (levels - 1))[:, 0] * MAX_ANGLE


def _check(model, splits: Splits, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not model.can("manipulate"):
        raise ConfigError(f"puppet scores: model {model.name} has no capability 'manipulate'")
    spec = splits.spec
    if not spec.is_image or spec.levels is None:
        raise ConfigError(f"puppet scores: need images with grey levels, data '{spec.name}' has shape "
                          f"{tuple(spec.shape)}, levels {spec.levels}")
    if not splits.has_labels:
        raise DataError(f"puppet scores: dataset '{spec.name}' has no class labels (label preservation needs them)")
    return splits.split(split).float(), splits.labels[split]


def _figures(y, truth, target, reader_model, reader_regressor, levels, classifier, spec, labels) -> dict:
    return {
        "angle_error_model": float((reader_model(y) - target).abs().mean()),
        "angle_error_regressor": float((reader_regressor(y) - target).abs().mean()),
        "mae": float((y - truth).abs().mean() / (levels - 1)),
        "label_preservation": accuracy(classifier.net, to_net_scale(y, spec, classifier), labels),
    }


def puppet_scores(model, splits: Splits, split: str = "test", angles=ANGLES, seed: int = 0,
                  regressor_steps: int = REGRESSOR_SETTINGS["steps"]) -> dict:
    """``{"split", "n", "angles", "per_angle": {t: {model, identity, oracle}}, "mean": {...}, "inputs",
    "regressor", "classifier_accuracy", "note"}``: the figures of the module docstring on ``split`` of
    ``splits`` (digits); the angle regressor is trained for ``regressor_steps`` steps."""
    x, labels = _check(model, splits, split)
    spec, levels = splits.spec, splits.spec.levels
    classifier = digits_feature_net()
    regressor = angle_regressor(splits, seed=seed, steps=regressor_steps)
    read_model = model.read_angle
    read_reg = lambda z: regress_angle(regressor, z, levels)  # noqa: E731
    per_angle: dict[str, dict] = {}
    for t in angles:
        truth = rotate(x, float(t), levels)
        outputs = {"model": model.manipulate(x, angle=float(t)).cpu(), "identity": x, "oracle": truth}
        per_angle[f"{float(t):g}"] = {name: _figures(y, truth, float(t), lambda z: read_model(z).cpu(), read_reg,
                                                     levels, classifier, spec, labels)
                                      for name, y in outputs.items()}
    rows = ("model", "identity", "oracle")
    keys = ("angle_error_model", "angle_error_regressor", "mae", "label_preservation")
    mean = {r: {k: sum(p[r][k] for p in per_angle.values()) / len(per_angle) for k in keys} for r in rows}
    a_model, a_reg = read_model(x).cpu(), read_reg(x)
    test_t = (2 * torch.rand(len(x), generator=torch.Generator().manual_seed(seed + 1)) - 1) * MAX_ANGLE
    reg_floor = float((read_reg(rotate(x, test_t, levels)) - test_t).abs().mean())
    return {
        "split": split, "n": len(x), "angles": [float(t) for t in angles], "per_angle": per_angle, "mean": mean,
        "inputs": {"model_angle_mean": float(a_model.mean()), "model_angle_std": float(a_model.std()),
                   "regressor_angle_mean": float(a_reg.mean()), "regressor_angle_std": float(a_reg.std())},
        "regressor": {**REGRESSOR_SETTINGS, "steps": regressor_steps, "seed": seed,
                      "error_deg_on_rotated_split": reg_floor},
        "classifier_accuracy": accuracy(classifier.net, to_net_scale(x, spec, classifier), labels),
        "note": (f"{split} digits manipulated to each angle (degrees) vs the truth rotate_digits(x, angle); "
                 "angle errors in degrees (model's own encoder; independent regressor), mae on [0, 1], "
                 "label preservation = digits classifier accuracy; baselines identity (no change) and oracle"),
    }


def plot_manipulations(model, x: torch.Tensor, path, angles=(-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)) -> None:
    """Rows: for each of the (few) real images ``x``, the model's manipulation to every angle, then the truth
    rotate_digits(x, angle) below it; columns are the angles."""
    levels = model.spec.levels
    rows = []
    for i in range(len(x)):
        xi = x[i:i + 1].expand(len(angles), *x.shape[1:])
        a = torch.tensor(angles, dtype=torch.float32)
        rows.append((f"model #{i}", model.manipulate(xi, angle=a).cpu()))
        rows.append((f"truth #{i}", rotate(xi.float(), a, levels)))
    title = "puppet: angle set to " + ", ".join(f"{t:g}" for t in angles) + " degrees (model above truth)"
    fig = plot_image_rows(rows, path, levels, ncol=len(angles), title=title)
    return fig


__all__ = ["ANGLES", "REGRESSOR_SETTINGS", "angle_regressor", "regress_angle", "puppet_scores", "plot_manipulations"]
