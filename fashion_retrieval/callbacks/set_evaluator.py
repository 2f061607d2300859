"""Validation metrics of reader training (``data=reader``): the reader's queries against its gallery,
scored each epoch like ``retrieval-eval`` scores a model (precision@k, CMC@k, recall@k, MAP@R)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl

from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator
from fashion_retrieval.data.readers import RetrievalSet
from fashion_retrieval.evaluation.retrieval_sets import score_set
from fashion_retrieval.index.factory import FlatSpec
from fashion_retrieval.models.module import GALLERY_LOADER, QUERY_LOADER

log = logging.getLogger(__name__)


class RetrievalSetEvaluator(RetrievalEvaluator):
    """Scores the validation embeddings against ``trainer.datamodule.validation_set`` (a reader's
    :class:`RetrievalSet`; see :class:`fashion_retrieval.data.reader_datamodule.ReaderDataModule`) with the
    ``retrieval-eval`` stage's search and metrics
    (:func:`fashion_retrieval.evaluation.retrieval_sets.score_set`: exact top-k, a query's own gallery row
    left out).

    Logs ``<prefix>/precision@k``, ``hit_rate@k`` (CMC@k), ``recall@k`` for ``ks`` and, with ``map_at_r``,
    ``<prefix>/map@R``; embeddings are gathered by dataset index as in :class:`RetrievalEvaluator`.
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 10), map_at_r: bool = True, prefix: str = "val") -> None:
        super().__init__(ks, prefix)
        self.map_at_r = map_at_r
        self.default_metric = "map@R" if map_at_r else f"precision@{max(self.ks)}"

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        data: RetrievalSet = trainer.datamodule.validation_set
        query_rows, query_seen = self._collectors[QUERY_LOADER].assemble(len(data.queries))
        gallery_rows, gallery_seen = self._collectors[GALLERY_LOADER].assemble(len(data.gallery))
        if not (query_seen.all() and gallery_seen.all()):
            # As in RetrievalEvaluator: a fraction of the gallery is an easier task, never comparable.
            log.warning(
                "partial validation: %d of %d queries against %d of %d gallery items; "
                "metrics are not comparable with a full validation",
                int(query_seen.sum()),
                len(query_seen),
                int(gallery_seen.sum()),
                len(gallery_seen),
            )
            gallery = np.flatnonzero(gallery_seen)
            data, queries = data.subset(np.flatnonzero(query_seen), gallery)
            query_rows, gallery_rows = query_rows[queries], gallery_rows[gallery]
        overall, _ = score_set(query_rows, gallery_rows, data, self.ks, self.map_at_r, FlatSpec(device="cpu"))
        metrics = {name: value for name, value in overall.items() if not name.startswith("num_")}
        for name, value in metrics.items():
            pl_module.log(f"{self.prefix}/{name}", value, sync_dist=False, rank_zero_only=True)
        self.history.append({"epoch": trainer.current_epoch, **overall})
        log.info("epoch %d %s", trainer.current_epoch, {k: round(v, 4) for k, v in metrics.items()})
