"""Learning-rate schedules: the one-cycle `train.py` trains with, and the choices the quadratic tab offers.

`one_cycle` builds the torch scheduler for an optimizer; `step_rates` gives every step's learning rate and
momentum in closed form (numpy), the very numbers torch's CosineAnnealingLR and OneCycleLR set, for a loop
that steps by hand (tests/test_quadratic.py checks them against torch). Both read ONE_CYCLE.
Light on purpose: torch and numpy only, so a lesson can import it without the training stack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

SCHEDULES = ("constant", "cosine", "one-cycle")


@dataclass(frozen=True)
class OneCycle:
    """fastai's one-cycle: warm up from lr / div_factor to lr, then anneal (both halves of a cosine) to
    lr / (div_factor * final_div_factor); momentum goes the other way, max -> base -> max."""

    pct_start: float = 0.25  # share of the steps spent warming up, as in fastai
    div_factor: float = 25.0
    final_div_factor: float = 1e5
    base_momentum: float = 0.85  # at the peak learning rate
    max_momentum: float = 0.95  # at the start and the end

    def fits(self, steps: int) -> bool:
        """Whether the warm-up lasts more than one step: torch's OneCycleLR divides by zero otherwise."""
        return self.pct_start * steps > 1

    def momentum_range(self, momentum: float) -> tuple[float, float]:
        """(base, max) for a run whose momentum is `momentum`: it starts and ends there and dips at the
        peak in the proportion of base_momentum to max_momentum (0.95 -> 0.85 -> 0.95 for 0.95)."""
        return momentum * self.base_momentum / self.max_momentum, momentum


ONE_CYCLE = OneCycle()  # fastai's fit_one_cycle
# fastai's fine_tune: the frozen phase warms up for 99% of its steps; the unfrozen one for 30%, from a fifth of the peak.
FROZEN_ONE_CYCLE = replace(ONE_CYCLE, pct_start=0.99)
UNFROZEN_ONE_CYCLE = replace(ONE_CYCLE, pct_start=0.3, div_factor=5.0)


def one_cycle(optimizer: torch.optim.Optimizer, lr: float | list[float], steps: int, momentum: float | None = None,
              cycle: OneCycle = ONE_CYCLE) -> torch.optim.lr_scheduler.LRScheduler:
    """`cycle` over `steps` steps, peaking at `lr` (one for all parameter groups, or one each), as torch's
    OneCycleLR. Momentum (SGD's, or Adam's beta1) is cycled from `momentum` (default cycle.max_momentum) down
    and back; 0 leaves it alone. A run whose warm-up would last a step or less keeps `lr` constant instead (a
    tiny data set, a frozen epoch)."""
    if not cycle.fits(steps):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    base, top = cycle.momentum_range(cycle.max_momentum if momentum is None else momentum)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=cycle.pct_start, div_factor=cycle.div_factor,
        final_div_factor=cycle.final_div_factor, cycle_momentum=top > 0, base_momentum=base, max_momentum=top,
    )


def _cos_between(start: float, end: float, share: np.ndarray) -> np.ndarray:
    """From `start` (share 0) to `end` (share 1) along half a cosine, as OneCycleLR's anneal."""
    return end + (start - end) / 2 * (np.cos(math.pi * share) + 1)


def step_rates(schedule: str, lr: float, momentum: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The learning rate and momentum of each of `steps` steps: "constant" (`lr` and `momentum` throughout),
    "cosine" (CosineAnnealingLR with T_max=steps: from `lr` towards 0) or "one-cycle" (`one_cycle`'s)."""
    lrs = np.full(steps, float(lr))
    momentums = np.full(steps, float(momentum))
    step = np.arange(steps, dtype=np.float64)
    if schedule == "cosine":
        lrs = lr * (1 + np.cos(math.pi * step / steps)) / 2
    elif schedule == "one-cycle" and ONE_CYCLE.fits(steps):
        # OneCycleLR's two phases: up to step pct_start * steps - 1, then down to the last step
        warm_end = ONE_CYCLE.pct_start * steps - 1
        warming = step <= warm_end
        share = np.where(warming, step / warm_end, (step - warm_end) / (steps - 1 - warm_end))
        start_lr = lr / ONE_CYCLE.div_factor
        lrs = np.where(warming, _cos_between(start_lr, lr, share),
                       _cos_between(lr, start_lr / ONE_CYCLE.final_div_factor, share))
        if momentum > 0:
            base, top = ONE_CYCLE.momentum_range(momentum)
            momentums = np.where(warming, _cos_between(top, base, share), _cos_between(base, top, share))
    elif schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}")
    return lrs, momentums
