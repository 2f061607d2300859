"""Index-mined hard negatives: every N epochs, rank the catalogue for each training bundle with the current
model and hand each bundle its highest-ranked wrong products, which the data module then adds to its
batches (``data.mined_negatives`` per bundle per step).

When: at the end of every ``every_n_epochs``-th training epoch (not after the last epoch, nor when training
is stopping), so epochs ``n, 2n, ...`` train with fresh lists; ``mine_before_training`` also mines once
before epoch 0 (with a pretrained backbone, the first epochs then see hard negatives too).

Resuming: the lists live in the data module's ``state_dict`` (saved in checkpoints). A checkpoint written
at validation end (the default ``ModelCheckpoint``) precedes the end-of-epoch mining, so on train start the
miner re-mines when the lists due for the current epoch are missing; the weights are then exactly those
the uninterrupted run mined with, so both runs draw the same negatives. (Lists handed over in
``on_train_start`` reach the first epoch's workers because the data module's train loader starts them at
the first batch: ``fashion_retrieval.data.datamodule.DeferredDataLoader``.)

DDP: rank 0 mines and broadcasts the lists (``trainer.strategy.broadcast``), so every rank holds the same
lists even if embeddings differed in the last bit across devices; the other ranks wait at the broadcast
(embedding the catalogue must fit in the process group timeout, 30 minutes by default).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from fashion_retrieval.miners.index import mine_hard_negatives
from fashion_retrieval.models.inference import embed_loader

log = logging.getLogger(__name__)

BEFORE_TRAINING = -1  # ``mined_epoch`` of lists mined before the first epoch


def negatives_by_bundle(bundle_labels: list[int], mined: np.ndarray) -> dict[int, list[int]]:
    """``(Q, K)`` -1-padded mined product ids, row ``i`` for ``bundle_labels[i]`` -> ``{label: ids}``, bundles
    without any negative left out."""
    result = {}
    for label, row in zip(bundle_labels, mined.tolist()):
        ids = [int(p) for p in row if p >= 0]
        if ids:
            result[int(label)] = ids
    return result


class IndexNegativeMiner(Callback):
    """Mines ``pool_size`` hard negatives per training bundle every ``every_n_epochs`` epochs.

    Args:
        every_n_epochs: mine at the end of epochs ``n-1, 2n-1, ...`` (0-based), for the epochs after them.
        pool_size: negatives kept per bundle (the data module draws ``mined_negatives`` of its top
            ``mined_pool`` per step).
        skip_top: ignore the ``skip_top`` most similar wrong products (often unlabelled true matches).
        mine_before_training: also mine once before the first epoch.
        chunk_size: queries per block of the exact search (memory ``chunk_size x catalogue`` float32).

    Needs the data module's ``mining_query_loader()``, ``catalogue_dataloader()``, ``mining_targets()``,
    ``catalogue_section_array()`` and ``set_mined_negatives(negatives, epoch)``
    (:class:`fashion_retrieval.data.datamodule.ChallengeDataModule`) and ``pl_module.encoder`` (returns
    L2-normalised embeddings). Training bundles are embedded with the eval transform; sections restrict
    negatives to the bundle's section (or products of unknown section).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        pool_size: int = 20,
        skip_top: int = 0,
        mine_before_training: bool = False,
        chunk_size: int = 1024,
    ) -> None:
        if every_n_epochs < 1 or pool_size < 1 or skip_top < 0:
            raise ValueError(
                "need every_n_epochs >= 1, pool_size >= 1, skip_top >= 0; "
                f"got {every_n_epochs}, {pool_size}, {skip_top}"
            )
        self.every_n_epochs = every_n_epochs
        self.pool_size = pool_size
        self.skip_top = skip_top
        self.mine_before_training = mine_before_training
        self.chunk_size = chunk_size
        self.history: list[dict[str, float]] = []

    def due_epoch(self, next_epoch: int) -> int | None:
        """The epoch whose end should have produced the lists used by ``next_epoch`` (``BEFORE_TRAINING``
        for lists mined before training), or ``None`` if none is due yet."""
        last = next_epoch - next_epoch % self.every_n_epochs - 1  # latest e < next_epoch with (e+1) % n == 0
        if last >= 0:
            return last
        return BEFORE_TRAINING if self.mine_before_training else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        due = self.due_epoch(trainer.current_epoch)
        if due is not None and getattr(trainer.datamodule, "mined_epoch", None) != due:
            # First start with mine_before_training, or a resume from a checkpoint saved before the mining.
            self.mine(trainer, pl_module, due)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs or trainer.should_stop:
            return
        if trainer.max_epochs is not None and 0 < trainer.max_epochs <= epoch + 1:
            return  # no epoch left to use them
        self.mine(trainer, pl_module, epoch)

    def mine(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> dict[int, list[int]]:
        """Embed, mine (rank 0), broadcast, hand over to the data module; returns the lists."""
        start = time.perf_counter()
        datamodule = trainer.datamodule
        negatives: dict[int, list[int]] | None = None
        if trainer.is_global_zero:
            negatives = self._mine_here(datamodule, pl_module)
        negatives = trainer.strategy.broadcast(negatives, src=0)
        datamodule.set_mined_negatives(negatives, epoch)
        seconds = time.perf_counter() - start
        bundles = len(datamodule.mining_targets().bundle_labels)
        self.history.append({"epoch": epoch, "bundles": len(negatives), "seconds": seconds})
        log.info(
            "mined hard negatives after epoch %d: %d of %d training bundles got negatives (up to %d each) "
            "in %.1fs",
            epoch,
            len(negatives),
            bundles,
            self.pool_size,
            seconds,
        )
        return negatives

    def _mine_here(
        self, datamodule: pl.LightningDataModule, pl_module: pl.LightningModule
    ) -> dict[int, list[int]]:
        encoder = pl_module.encoder
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.no_grad():
                queries = embed_loader(encoder, datamodule.mining_query_loader(), pl_module.device)
                catalogue = embed_loader(encoder, datamodule.catalogue_dataloader(), pl_module.device)
        finally:
            encoder.train(was_training)
        targets = datamodule.mining_targets()
        mined = mine_hard_negatives(
            queries,
            catalogue,
            targets.positives,
            num_negatives=self.pool_size,
            query_sections=targets.sections,
            catalogue_sections=datamodule.catalogue_section_array(),
            exclude=targets.excluded,
            skip_top=self.skip_top,
            chunk_size=self.chunk_size,
        )
        return negatives_by_bundle(targets.bundle_labels, mined)
