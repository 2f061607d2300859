"""Exponential moving average of the weights, on Lightning's own weight-averaging machinery."""

from __future__ import annotations

from pytorch_lightning.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn


class EMAWeightAveraging(WeightAveraging):
    """Keeps ``ema = decay * ema + (1 - decay) * weights`` after every optimiser step from ``start_step`` on.

    Lightning swaps the averaged weights in for validation and at the end of fit, and saves them in
    checkpoints (the live weights travel alongside, so resuming continues both). Buffers (batch-norm
    statistics, the cross-batch memory) are averaged too, which is harmless for batch-norm and ignored
    for the memory queue, whose live copy is the one training reads.
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(avg_fn=get_ema_avg_fn(decay))
        self.decay = decay
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step
