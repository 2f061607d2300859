"""Learning-rate schedules: the one-cycle wrapper survives the step counts torch's own divides by zero on."""

from __future__ import annotations

import pytest
import torch

from fashion_retrieval.models.schedules import one_cycle


def _run(total_steps: int, pct_start: float) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = one_cycle(optimizer, total_steps=total_steps, max_lr=1e-3, pct_start=pct_start)
    rates = []
    for _ in range(total_steps):
        optimizer.step()
        rates.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    return rates


def test_torch_fails_where_the_warm_up_is_one_step() -> None:
    """The case the wrapper exists for: torch's OneCycleLR itself raises on it."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ZeroDivisionError):  # at construction: it computes the first step's rate
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10, pct_start=0.1)


@pytest.mark.parametrize(("total_steps", "pct_start"), [(10, 0.1), (2, 0.5), (20, 0.05), (1, 0.3), (50, 0.3)])
def test_one_cycle_peaks_then_anneals(total_steps: int, pct_start: float) -> None:
    rates = _run(total_steps, pct_start)
    assert max(rates) <= 1e-3 + 1e-12
    assert rates[-1] <= rates[0]
    peak = rates.index(max(rates))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :]))  # annealing never goes back up
