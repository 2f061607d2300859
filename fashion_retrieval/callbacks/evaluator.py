"""Validation metrics as a callback: embeddings are gathered by dataset index (DDP padding cannot count
twice), the catalogue is searched with FAISS top-k (no N x N matrix), and the challenge metrics are logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from fashion_retrieval.evaluation.ranking import rank_embeddings, restrict_to_seen, score_ranking
from fashion_retrieval.index.eligibility import catalogue_section_array
from fashion_retrieval.models.module import GALLERY_LOADER, QUERY_LOADER

log = logging.getLogger(__name__)


class EmbeddingCollector:
    """Embeddings placed by dataset index; duplicates from distributed padding overwrite themselves."""

    def __init__(self) -> None:
        self.index: list[torch.Tensor] = []
        self.embeddings: list[torch.Tensor] = []

    def add(self, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        self.index.append(index.reshape(-1).cpu())
        self.embeddings.append(embeddings.reshape(-1, embeddings.shape[-1]).float().cpu())

    def assemble(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(size, D)`` rows by dataset index and the ``(size,)`` bool mask of the rows that were seen
        (all of them unless ``limit_val_batches`` or ``fast_dev_run`` cut the loader)."""
        index = torch.cat(self.index).numpy()
        embeddings = torch.cat(self.embeddings).numpy()
        rows = np.zeros((size, embeddings.shape[1]), dtype=np.float32)
        rows[index] = embeddings
        seen = np.zeros(size, dtype=bool)
        seen[index] = True
        return rows, seen


@dataclass(frozen=True)
class ValidationRanking:
    """One validation's search, kept for callbacks that show examples (``wandb_tables``) or reuse the
    catalogue's embeddings (``EmbeddingExporter``).

    ``queries (Q',)``: the rows of ``validation_queries()`` that were scored; ``topk (Q', k)`` int64: their
    top-k rows of the whole catalogue (``catalogue_ids``), ``-1`` padding; ``catalogue (G, D)`` float32:
    the embeddings of the whole catalogue in ``catalogue_ids`` order, ``None`` when validation saw only part
    of it.
    """

    epoch: int
    queries: np.ndarray
    topk: np.ndarray
    catalogue: np.ndarray | None = None


class RetrievalEvaluator(Callback):
    """Computes Recall@k (the challenge metric), hit rate and mAP on the validation bundles each epoch
    (reader datasets: :class:`fashion_retrieval.callbacks.RetrievalSetEvaluator`).

    Expects the datamodule's ``val_dataloader`` to return [queries, catalogue] and ``validation_queries()``,
    ``catalogue_ids``, ``catalogue_sections()`` (see :class:`fashion_retrieval.data.ChallengeDataModule`).
    """

    default_metric = "recall@15"  # what "best epoch" means without a checkpoint monitor

    def __init__(self, ks: Sequence[int] = (1, 5, 15), prefix: str = "val") -> None:
        self.ks = tuple(ks)
        self.prefix = prefix
        self.history: list[dict[str, float]] = []
        self.last_ranking: ValidationRanking | None = None
        self._collectors: dict[int, EmbeddingCollector] = {}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collectors = {QUERY_LOADER: EmbeddingCollector(), GALLERY_LOADER: EmbeddingCollector()}

    def best(self, monitor: str | None = None) -> dict[str, float]:
        """The history row of the best epoch by ``monitor`` (``<prefix>/<metric>``, higher is better: the
        checkpoint's; ``None``: :attr:`default_metric`)."""
        metric = monitor.removeprefix(f"{self.prefix}/") if monitor else self.default_metric
        return max(self.history, key=lambda row: row[metric])

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
        metrics = self.validation_metrics(trainer)
        for name, value in metrics.items():
            pl_module.log(f"{self.prefix}/{name}", value, sync_dist=False, rank_zero_only=True)
        self.history.append({"epoch": trainer.current_epoch, **metrics})
        log.info("epoch %d %s", trainer.current_epoch, {k: round(v, 4) for k, v in metrics.items()})

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: every validation so far, so a resumed run (in any directory) still knows
        its best epoch and metrics."""
        # Plain ints and floats (no numpy scalars): checkpoints load with torch.load(weights_only=True).
        plain = [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in self.history]
        return {"history": plain}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict.get("history", [])]

    def validation_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        """Search the gathered validation embeddings and score them (``score_ranking``); keeps the ranking
        in :attr:`last_ranking`."""
        datamodule = trainer.datamodule
        queries = datamodule.validation_queries()
        catalogue_ids = np.asarray(datamodule.catalogue_ids)
        query_rows, query_seen = self._collectors[QUERY_LOADER].assemble(len(queries.bundle_ids))
        catalogue_rows, catalogue_seen = self._collectors[GALLERY_LOADER].assemble(len(catalogue_ids))
        kept_queries, kept_catalogue, truth = restrict_to_seen(queries.truth, query_seen, catalogue_seen)
        if len(kept_queries) < len(query_seen) or len(kept_catalogue) < len(catalogue_seen):
            # fast_dev_run / limit_val_batches: the numbers still exercise the code path, but searching a
            # fraction of the catalogue is easier than the task: never compare them with full runs.
            log.warning(
                "partial validation: %d of %d queries against %d of %d catalogue items; "
                "metrics are not comparable with a full validation",
                len(kept_queries),
                len(query_seen),
                len(kept_catalogue),
                len(catalogue_seen),
            )
        sections = catalogue_section_array(list(catalogue_ids), datamodule.catalogue_sections())
        topk = rank_embeddings(
            query_rows[kept_queries],
            catalogue_rows[kept_catalogue],
            list(catalogue_ids[kept_catalogue]),
            np.asarray(queries.sections)[kept_queries],
            sections[kept_catalogue],
            max(self.ks),
        )
        catalogue_topk = np.where(topk >= 0, kept_catalogue[np.maximum(topk, 0)], -1)
        whole = catalogue_rows if catalogue_seen.all() else None
        self.last_ranking = ValidationRanking(trainer.current_epoch, kept_queries, catalogue_topk, whole)
        return score_ranking(topk, truth, self.ks)
