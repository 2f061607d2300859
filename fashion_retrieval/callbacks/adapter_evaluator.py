"""Validation metrics of head training on frozen features
(:class:`~fashion_retrieval.models.adapter_module.FeatureAdapterModule`): the adapted validation queries
against the whole head-mapped catalogue, section-aware, scored like every other validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from fashion_retrieval.callbacks.evaluator import EmbeddingCollector
from fashion_retrieval.evaluation.ranking import evaluate_embeddings


class FeatureAdapterEvaluator(Callback):
    """Logs ``<prefix>/recall@k`` (hits over ground-truth pairs), hit rate and mAP for ``ks`` each epoch.

    The module's ``validation_step`` returns ``{"index": (B,), "embeddings": (B, D')}`` and the module has
    ``embed_whole_catalogue``; the datamodule provides ``catalogue_features (G, D)``, ``val_truth`` (lists
    of catalogue rows per validation query) and ``validation_sections() -> (query sections (V,), catalogue
    sections (G,))`` (:class:`~fashion_retrieval.features.datamodule.FeatureDataModule`). Queries cut
    by ``limit_val_batches`` are left out, their truth too.
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 15), prefix: str = "val") -> None:
        self.ks = tuple(ks)
        self.prefix = prefix
        self._queries = EmbeddingCollector()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._queries = EmbeddingCollector()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: dict,
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._queries.add(outputs["index"], outputs["embeddings"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._queries.index:
            return
        for name, value in self.validation_metrics(trainer.datamodule, pl_module).items():
            pl_module.log(f"{self.prefix}/{name}", value)

    @torch.no_grad()
    def validation_metrics(self, datamodule: object, pl_module: pl.LightningModule) -> dict[str, float]:
        """Metrics of the collected validation queries against the whole catalogue."""
        rows, seen = self._queries.assemble(len(datamodule.val_truth))
        queries = np.flatnonzero(seen)
        catalogue = pl_module.embed_whole_catalogue(datamodule.catalogue_features).cpu().numpy()
        query_sections, catalogue_sections = datamodule.validation_sections()
        truth = [datamodule.val_truth[i] for i in queries]
        ids = [str(i) for i in range(len(catalogue))]
        return evaluate_embeddings(
            rows[queries],
            catalogue,
            ids,
            np.asarray(query_sections)[queries],
            catalogue_sections,
            truth,
            self.ks,
        )
