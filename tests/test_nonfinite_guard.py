"""The skip / rollback / stop policy of deepgen.training.nonfinite on a hand-made training state."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deepgen.errors import TrainingError
from deepgen.training.nonfinite import NonFiniteGuard

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeModule:
    """What the guard reads of a Lightning module: model, optimizers, schedulers, trainer, steps."""

    def __init__(self):
        self.model = torch.nn.Linear(3, 1)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: 1.0)
        self.trainer = SimpleNamespace(world_size=1)
        self.absolute_step = 0
        self.last_saved_step = None

    def optimizers(self, use_pl_optimizer=False):
        return self.opt

    def lr_schedulers(self):
        return self.sched

    def step(self, guard, loss_fn):
        self.absolute_step += 1
        self.opt.zero_grad(set_to_none=True)
        loss = loss_fn(self.model)
        loss.backward()
        guard.check_update(self, self.opt, loss.detach(), {"loss": loss.detach()})
        self.opt.step()
        guard.end_step(self)


def clean(model):
    return model(torch.ones(4, 3)).pow(2).mean()


def inf_gradient(model):  # a finite loss (0) whose gradient is infinite: d sqrt(u)/du at u = 0
    w = model.weight.sum()
    return torch.sqrt(w - w.detach())


def cfg(**kw):
    return SimpleNamespace(**{"nan_patience": 2, "max_rollbacks": 1, "lr": 1e-2, "grad_clip": 5.0,
                              "precision": "32-true", **kw})


def test_an_infinite_gradient_with_a_finite_loss_is_skipped():
    m, guard = FakeModule(), NonFiniteGuard(cfg())
    guard.remember(m, None)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    m.step(guard, inf_gradient)
    assert guard.skipped == 1 and guard.in_row == 1
    assert all(torch.equal(before[k], v) for k, v in m.model.state_dict().items())
    assert m.opt.state == {} or all(len(s) == 0 for s in m.opt.state.values())  # no moment was touched
    m.step(guard, clean)
    assert guard.in_row == 0 and guard.skipped == 1


def test_under_float16_mixed_precision_gradients_are_left_to_the_scaler():
    m, guard = FakeModule(), NonFiniteGuard(cfg(precision="16-mixed"))
    guard.remember(m, None)
    m.step(guard, inf_gradient)
    assert guard.skipped == 0


def test_a_run_of_skips_rolls_back_and_halves_the_lr_then_stops():
    m, guard = FakeModule(), NonFiniteGuard(cfg())
    for _ in range(3):
        m.step(guard, clean)
    guard.remember(m, 3)
    kept = {k: v.clone() for k, v in m.model.state_dict().items()}
    with torch.no_grad():
        m.model.weight.fill_(float("nan"))
    m.step(guard, clean)
    m.step(guard, clean)  # the second in a row: back to step 3's weights at half the lr
    assert guard.rollbacks == 1 and guard.lr_scale == 0.5
    assert all(torch.equal(kept[k], v) for k, v in m.model.state_dict().items())
    assert m.opt.param_groups[0]["lr"] == pytest.approx(5e-3) and m.sched.base_lrs[0] == pytest.approx(5e-3)
    m.step(guard, clean)  # finite again
    assert guard.in_row == 0
    with torch.no_grad():
        m.model.weight.fill_(float("inf"))
    m.step(guard, clean)
    with pytest.raises(TrainingError, match=r"^step 8: the training loss is .*2 steps in a row after 1 rollback"):
        m.step(guard, clean)


def test_nan_weights_are_never_remembered():
    m, guard = FakeModule(), NonFiniteGuard(cfg())
    guard.remember(m, 1)
    with torch.no_grad():
        m.model.bias.fill_(float("nan"))
    guard.remember(m, 2)
    assert guard.saved_step == 1


@pytest.mark.parametrize("scale, clipped", [(1.0, False), (100.0, True)])
def test_clipping_reuses_the_guards_norm_and_leaves_gradients_within_the_bound_untouched(scale, clipped):
    """LikelihoodModule clips with the norm the guard computed: gradients above the bound end at norm 5 (the
    clip of torch.nn.utils), gradients within it are left exactly as they were."""
    from deepgen.training.likelihood import LikelihoodModule

    m, guard = FakeModule(), NonFiniteGuard(cfg())
    loss = scale * clean(m.model)
    loss.backward()
    before = [p.grad.clone() for p in m.model.parameters()]
    norm = torch.nn.utils.get_total_norm(before)
    assert (norm > 5) == clipped
    guard.check_update(m, m.opt, loss.detach(), {"loss": loss.detach()})
    assert guard.grad_norm_value == pytest.approx(float(norm), rel=1e-6)
    LikelihoodModule.clip_with_known_norm(SimpleNamespace(guard=guard), m.opt, 5.0)
    after = [p.grad for p in m.model.parameters()]
    if clipped:
        assert float(torch.nn.utils.get_total_norm(after)) == pytest.approx(5.0, rel=1e-5)
        twins = [torch.nn.Parameter(torch.zeros_like(b)) for b in before]  # bit for bit torch's own clip
        for t, b in zip(twins, before):
            t.grad = b.clone()
        torch.nn.utils.clip_grads_with_norm_(twins, 5.0, norm)
        assert all(torch.equal(a, t.grad) for a, t in zip(after, twins))
    else:
        assert all(torch.equal(a, b) for a, b in zip(after, before))
