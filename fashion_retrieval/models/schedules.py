"""Learning-rate schedules, built once the number of optimisation steps is known."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.01
) -> LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to ``min_lr_ratio`` x lr."""
    total_steps = max(1, int(total_steps))
    warmup_steps = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(optimizer: Optimizer, total_steps: int, max_lr: float, pct_start: float = 0.3) -> OneCycleLR:
    """torch's one-cycle schedule (warm-up over ``pct_start`` of the steps to ``max_lr``, then annealing),
    safe for short runs: torch divides by ``pct_start x total_steps - 1``, which is zero when the warm-up is
    exactly one step (e.g. 10 steps at 0.1), so that case is nudged off it (the schedule barely changes)."""
    total_steps = max(1, int(total_steps))
    if math.isclose(pct_start * total_steps, 1.0):
        pct_start *= 1.0 + 1e-3
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)
