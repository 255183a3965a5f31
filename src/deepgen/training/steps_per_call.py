"""How many optimizer steps one call of Lightning's training step runs (``--steps-per-call``).

Lightning spends about 1 ms of Python per training step on its loop (hooks, progress counters, the
optimizer wrapper), while a step of a small flow on 2-D data takes 3-4 ms on a CPU.  A likelihood-trained
model can instead take K steps per call: the loader hands it K consecutive batches at once (one gather of
K x B rows, :class:`~deepgen.training.sampler.StepBatches` with ``group=K``) and
:class:`~deepgen.training.likelihood.LikelihoodModule` runs K complete steps on them (forward, backward,
the non-finite check, clipping, the update, the learning-rate schedule), so the run sees the same batches
and applies the same updates whatever K is; only Lightning's share is paid once per K steps.

Validations, metrics rows and step checkpoints happen between calls, so K divides ``eval_every``,
``log_every`` and ``checkpoint_every`` (and, on resume, the step the run resumes from).  Stop signals are
honoured between calls (at most K steps later).
"""

from __future__ import annotations

import math

from deepgen.errors import ConfigError

AUTO_MAX = 25  # the most steps per call chosen automatically (with the defaults eval 500 / log 25: exactly 25)


def choose_steps_per_call(cfg, module, spec, step_offset: int = 0, target=None) -> int:
    """K for this run: ``cfg.steps_per_call`` if > 0 (refused where it cannot apply), else automatic: the
    largest divisor of the cadences up to :data:`AUTO_MAX` for a likelihood-trained model on vector data in
    one process, 1 otherwise (images: steps are long enough that Lightning's share is small; GANs and
    several processes: one step per call)."""
    asked = int(getattr(cfg, "steps_per_call", 0) or 0)
    single = int(cfg.devices) * int(cfg.num_nodes) == 1
    can = target is None and single and getattr(module, "supports_steps_per_call", False)
    if asked > 1 and not can:
        why = ("it trains adversarial or variational objectives one step per call" if single
               else f"{int(cfg.devices) * int(cfg.num_nodes)} processes take one step per call")
        raise ConfigError(f"--steps-per-call / field 'steps_per_call' {asked}: --model {cfg.model} cannot "
                          f"take it here ({why}); leave it at 0 (auto) or 1")
    if not can or (asked == 0 and len(spec.shape) != 1):
        return 1
    cadence = math.gcd(math.gcd(int(cfg.eval_every), int(cfg.log_every)),
                       math.gcd(int(cfg.checkpoint_every), int(step_offset)))
    limit = asked if asked > 0 else AUTO_MAX
    return max(d for d in range(1, limit + 1) if cadence % d == 0)
