"""torch's fused Adam update without torch.optim's per-step Python work.

``torch.optim.Adam(fused=True).step()`` spends most of its time on a small model in Python: collecting
every parameter's gradient and state (``_init_group``), grouping tensors by device and dtype, profiler
and hook wrappers.  On a 48-tensor RealNVP that is about 0.15 ms of a 0.2 ms update, 4-5 % of a
training step on 2-D data.  :class:`FastAdamStep` keeps the per-group lists of parameters, first and
second moments and step counters once the optimizer has initialised its state, and calls the same two
kernels ``Adam`` calls on them::

    step_i <- step_i + 1                    (torch._foreach_add_)
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   [+ L2: g <- g + wd p]   (torch._fused_adam_)

so the update is bit for bit the optimizer's own (a test checks it).  Anything else goes through
``optimizer.step()``: a step where some gradient is None (a skipped update), an optimizer whose state
was replaced (``load_state_dict`` on a rollback or resume: the lists are rebuilt), step hooks, and every
optimizer that is not a plain fused Adam of float parameters on one device (AMSGrad, ``maximize``,
``differentiable``, ``capturable``, a tensor lr).
"""

from __future__ import annotations

import torch

_PLAIN = {"amsgrad": False, "maximize": False, "differentiable": False, "capturable": False}


class FastAdamStep:
    """``step()`` for ``optimizer``: the fused kernels on cached lists when that is exactly Adam's update,
    else ``optimizer.step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.eligible = eligible(optimizer)
        # per group: (params, exp_avgs, exp_avg_sqs, steps, first state, last state, the steps' shared tensor or None)
        self._groups: list | None = None

    def step(self) -> None:
        opt = self.optimizer
        if not self.eligible or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or _global_hooks():
            opt.step()
            return
        grads = [[p.grad for p in group["params"]] for group in opt.param_groups]
        if any(g is None for gs in grads for g in gs) or not self._current():
            opt.step()  # (initialises the state on the first step)
            self._groups = self._collect()
            return
        for group, (params, exp_avgs, exp_avg_sqs, steps, _, _, counter), gs in zip(opt.param_groups, self._groups,
                                                                                    grads):
            beta1, beta2 = group["betas"]
            if counter is not None:
                counter.add_(1)  # every parameter's step at once (they are views of it)
            else:
                torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, gs, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                               beta1=float(beta1), beta2=float(beta2), weight_decay=group["weight_decay"],
                               eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)

    def _current(self) -> bool:
        """Do the cached lists still hold the optimizer's state (the same state objects, the same params)?"""
        if self._groups is None or len(self._groups) != len(self.optimizer.param_groups):
            return False
        state = self.optimizer.state
        for group, cached in zip(self.optimizer.param_groups, self._groups):
            params = group["params"]
            if not params or len(params) != len(cached[0]):
                return False
            if state.get(params[0]) is not cached[4] or state.get(params[-1]) is not cached[5]:
                return False
            if cached[4].get("exp_avg") is not cached[1][0] or cached[5].get("exp_avg_sq") is not cached[2][-1]:
                return False
            if cached[4].get("step") is not cached[3][0] or cached[5].get("step") is not cached[3][-1]:
                return False
        return True

    def _collect(self) -> list | None:
        groups = []
        for group in self.optimizer.param_groups:
            params = list(group["params"])
            states = [self.optimizer.state.get(p) for p in params]
            if not params or any(not s or "exp_avg" not in s for s in states):
                return None
            steps = [s["step"] for s in states]
            if any(not torch.is_tensor(t) or t.device != p.device for t, p in zip(steps, params)):
                return None
            counter = None
            if all(t.dim() == 0 and t.dtype == steps[0].dtype for t in steps):
                # One tensor of the group's step counts, each parameter's "step" a view of one entry: a step adds
                # 1 to all of them in one op (``_foreach_add_`` on CPU is a loop, about 2 us a tensor).  The
                # optimizer's own step, state_dict and load_state_dict see ordinary 0-dim tensors.
                counter = torch.stack([t.detach() for t in steps])
                steps = list(counter.unbind(0))
                for state, view in zip(states, steps):
                    state["step"] = view
            groups.append((params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], steps,
                           states[0], states[-1], counter))
        return groups


def eligible(optimizer) -> bool:
    """A plain fused Adam (not AdamW's decoupled decay, no AMSGrad, ...) of float parameters on one device,
    with float hyper-parameters, on a torch that has the kernels."""
    if type(optimizer) is not torch.optim.Adam or not hasattr(torch, "_fused_adam_"):
        return False
    devices, dtypes = set(), set()
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("decoupled_weight_decay", False):
            return False
        if any(group.get(k, v) != v for k, v in _PLAIN.items()):
            return False
        if torch.is_tensor(group["lr"]) or any(torch.is_tensor(b) for b in group["betas"]):
            return False
        for p in group["params"]:
            devices.add(p.device)
            dtypes.add(p.dtype)
    return len(devices) == 1 and len(dtypes) == 1 and next(iter(dtypes)).is_floating_point


def _global_hooks() -> bool:
    from torch.optim import optimizer as module

    return bool(getattr(module, "_global_optimizer_pre_hooks", None) or
                getattr(module, "_global_optimizer_post_hooks", None))
