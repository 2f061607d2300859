"""Validation metrics as a callback: embeddings are gathered by dataset index (DDP padding cannot count
twice), the gallery is searched with FAISS top-k (no N x N matrix), and the challenge metrics are logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from fashion_retrieval.evaluation.metrics import GroundTruth, retrieval_metrics
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.module import GALLERY_LOADER, QUERY_LOADER
from fashion_retrieval.rerank.section import gallery_section_array, search_within_sections

log = logging.getLogger(__name__)


class _Collector:
    """Embeddings placed by dataset index; duplicates from distributed padding overwrite themselves."""

    def __init__(self) -> None:
        self.index: list[torch.Tensor] = []
        self.embeddings: list[torch.Tensor] = []

    def add(self, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        self.index.append(index.reshape(-1).cpu())
        self.embeddings.append(embeddings.reshape(-1, embeddings.shape[-1]).float().cpu())

    def assemble(self, size: int) -> np.ndarray:
        index = torch.cat(self.index).numpy()
        embeddings = torch.cat(self.embeddings).numpy()
        rows = np.zeros((size, embeddings.shape[1]), dtype=np.float32)
        rows[index] = embeddings
        missing = size - len(np.unique(index))
        if missing:
            raise RuntimeError(
                f"validation saw {size - missing} of {size} items; limit_val_batches cuts the gallery?"
            )
        return rows


class RetrievalEvaluator(Callback):
    """Computes Recall@k (the challenge metric), hit rate and mAP on the validation bundles each epoch.

    Expects the datamodule's ``val_dataloader`` to return [queries, gallery] and ``query_set("val")``,
    ``gallery_ids``, ``gallery_sections()`` (see :class:`fashion_retrieval.data.ChallengeDataModule`).
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 15), prefix: str = "val") -> None:
        self.ks = tuple(ks)
        self.prefix = prefix
        self.history: list[dict[str, float]] = []
        self._collectors: dict[int, _Collector] = {}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collectors = {QUERY_LOADER: _Collector(), GALLERY_LOADER: _Collector()}

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: dict,
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        index = pl_module.all_gather(outputs["index"])
        embeddings = pl_module.all_gather(outputs["embeddings"])
        self._collectors[dataloader_idx].add(index, embeddings)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        queries = datamodule.query_set("val")
        gallery_ids = datamodule.gallery_ids
        metrics = evaluate_embeddings(
            self._collectors[QUERY_LOADER].assemble(len(queries.bundle_ids)),
            self._collectors[GALLERY_LOADER].assemble(len(gallery_ids)),
            gallery_ids,
            np.asarray(queries.sections),
            gallery_section_array(gallery_ids, datamodule.gallery_sections()),
            queries.truth,
            self.ks,
        )
        for name, value in metrics.items():
            pl_module.log(f"{self.prefix}/{name}", value, sync_dist=False, rank_zero_only=True)
        self.history.append({"epoch": trainer.current_epoch, **metrics})
        log.info("epoch %d %s", trainer.current_epoch, {k: round(v, 4) for k, v in metrics.items()})


def evaluate_embeddings(
    query_embeddings: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_ids: Sequence[str],
    query_sections: np.ndarray,
    gallery_sections: np.ndarray,
    truth: Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 5, 15),
) -> dict[str, float]:
    """Section-aware top-k retrieval and metrics.

    Args:
        query_embeddings: ``(Q, D)`` float32, L2-normalised.
        gallery_embeddings: ``(G, D)`` float32, L2-normalised.
        gallery_ids: ``G`` product ids.
        query_sections: ``(Q,)`` section per query; gallery_sections ``(G,)`` (-1 unknown).
        truth: per query, the gallery indices of its products.
    """
    index = EmbeddingIndex(gallery_embeddings, list(gallery_ids))
    topk = search_within_sections(index, query_embeddings, query_sections, gallery_sections, max(ks))
    metrics = retrieval_metrics(topk, GroundTruth.from_lists(truth), ks)
    return {name: float(value) for name, value in metrics.items() if not name.startswith("per_query_")}
