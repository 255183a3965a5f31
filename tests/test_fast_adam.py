"""FastAdamStep is torch's fused Adam, bit for bit; total_norm is get_total_norm."""

import copy

import pytest
import torch

from deepgen.training.fast_adam import FastAdamStep, eligible
from deepgen.training.nonfinite import total_norm


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _grads(net, k):
    torch.manual_seed(100 + k)
    x = torch.randn(16, 3)
    net.zero_grad(set_to_none=True)
    (net(x) ** 2).mean().backward()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fast_step_equals_adam_bit_for_bit(weight_decay):
    a, b = _net(), _net()
    opt_a = torch.optim.Adam(a.parameters(), lr=3e-3, betas=(0.8, 0.95), weight_decay=weight_decay, fused=True)
    opt_b = torch.optim.Adam(b.parameters(), lr=3e-3, betas=(0.8, 0.95), weight_decay=weight_decay, fused=True)
    fast = FastAdamStep(opt_b)
    assert fast.eligible
    saved = None
    for k in range(12):
        for net in (a, b):
            _grads(net, k)
        if k == 5:  # a skipped update: one gradient dropped
            a[0].bias.grad = b[0].bias.grad = None
        if k == 3:
            saved = (copy.deepcopy(opt_a.state_dict()), copy.deepcopy(opt_b.state_dict()))
        if k == 8:  # a rollback: the optimizer's state replaced under the cache
            opt_a.load_state_dict(saved[0])
            opt_b.load_state_dict(saved[1])
        for g in (opt_a.param_groups[0], opt_b.param_groups[0]):
            g["lr"] = 3e-3 * (k + 1) / 12  # a schedule
        opt_a.step()
        fast.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
    for p, q in zip(a.parameters(), b.parameters()):
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert all(torch.equal(sa[key], sb[key]) for key in ("step", "exp_avg", "exp_avg_sq"))
    # the step counts are views of one tensor, but the state_dict holds each parameter's own count
    steps = [s["step"] for s in opt_b.state_dict()["state"].values()]
    assert len({t.data_ptr() for t in steps}) == len(steps) and [float(t) for t in steps] == \
        [float(opt_a.state[p]["step"]) for p in a.parameters()]


def test_other_optimizers_take_their_own_step():
    net = _net()
    assert not eligible(torch.optim.Adam(net.parameters(), amsgrad=True, fused=True))
    assert not eligible(torch.optim.Adam(net.parameters()))  # not fused
    assert not eligible(torch.optim.AdamW(net.parameters(), fused=True))
    assert not eligible(torch.optim.SGD(net.parameters(), lr=0.1))
    a, b = _net(), _net()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    fast = FastAdamStep(opt_b)
    for k in range(3):
        _grads(a, k)
        _grads(b, k)
        opt_a.step()
        fast.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_step_hooks_are_honoured():
    net = _net()
    opt = torch.optim.Adam(net.parameters(), fused=True)
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append(1))
    fast = FastAdamStep(opt)
    for k in range(3):
        _grads(net, k)
        fast.step()
    assert len(calls) == 3


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_total_norm_is_get_total_norm(bad):
    torch.manual_seed(0)
    grads = [torch.randn(5, 3), torch.randn(7), torch.randn(2, 2, 2)]
    if bad is not None:
        grads[1][3] = bad
    ours, theirs = total_norm(grads), torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
    assert torch.equal(ours, theirs) or (ours.isnan() and theirs.isnan())
