"""Wall-clock seconds of each training epoch."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class EpochTimer(pl.Callback):
    """Appends each training epoch's wall-clock seconds to :attr:`seconds`.

    On CUDA both ends wait for the device, so queued kernels count in the epoch that launched them.
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    @staticmethod
    def _now(module: pl.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._now(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(self._now(pl_module) - self._start)
