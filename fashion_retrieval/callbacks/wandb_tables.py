"""What a W&B run holds besides Lightning's metric curves: the best values in its summary, a table of
retrieval examples, an embedding table for the projector, and the checkpoint and FAISS index as artifacts.

Without a ``WandbLogger`` among the trainer's loggers the callback does nothing. The table contents are
built by pure functions (plain rows, tested without wandb); only :class:`WandbTables` touches wandb. The
examples and thumbnails are :mod:`fashion_retrieval.evaluation.plots`'s, which also draws the run
directory's and the notebooks' pictures.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator, ValidationRanking
from fashion_retrieval.callbacks.exporter import EmbeddingExporter
from fashion_retrieval.data.datamodule import QuerySet
from fashion_retrieval.evaluation.plots import HIT, MISS, RetrievalExample, spread_indices, thumbnail
from fashion_retrieval.index.faiss_index import IDS_FILE, INDEX_FILE, META_FILE

log = logging.getLogger(__name__)

EXAMPLES_KEY = "val/examples"
EMBEDDINGS_KEY = "catalogue/embeddings"


# -- pure table building --------------------------------------------------------------------------------
def best_summary(
    history: Sequence[Mapping[str, float]], monitor: str, prefix: str = "val"
) -> dict[str, float]:
    """``best/<prefix>/<metric>`` of the epoch with the highest ``monitor``, and ``best/<prefix>/epoch``.

    The values of one epoch, not each metric's own maximum: they match the best checkpoint and
    ``metrics.json``.
    """
    if not history:
        return {}
    best = max(history, key=lambda row: row[monitor])
    return {f"best/{prefix}/{name}": float(value) for name, value in best.items()}


def retrieval_examples(
    queries: QuerySet,
    ranking: ValidationRanking,
    catalogue_ids: Sequence[str],
    catalogue_paths: Sequence[str],
    count: int,
    k: int,
) -> list[RetrievalExample]:
    """``count`` scored validation queries (:func:`spread_indices` over the ranking's rows) with their top
    ``k`` catalogue products and hit marks."""
    assert queries.truth is not None, "validation queries carry their truth"
    examples = []
    for row in spread_indices(len(ranking.queries), count):
        query = int(ranking.queries[row])
        top = [int(g) for g in ranking.topk[row, :k] if g >= 0]
        relevant = set(queries.truth[query])
        examples.append(
            RetrievalExample(
                bundle_id=queries.bundle_ids[query],
                query_path=queries.image_paths[query],
                query_box=None if queries.boxes is None else queries.boxes[query],
                products=[catalogue_ids[g] for g in top],
                product_paths=[catalogue_paths[g] for g in top],
                hits=[g in relevant for g in top],
                num_relevant=len(relevant),
            )
        )
    return examples


def example_columns(k: int) -> list[str]:
    return ["bundle_id", "query", "hits", "recall", *[f"rank_{r}" for r in range(1, k + 1)]]


def embedding_table(
    embeddings: np.ndarray,
    ids: Sequence[str],
    categories: Mapping[str, str],
    sections: Mapping[str, int],
    max_rows: int,
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the projector's table: ``product_id``, ``category``, ``section`` (``-1``:
    unknown), then one numeric column per dimension ``d0..d{D-1}``, for at most ``max_rows`` products
    (:func:`spread_indices`).

    ``embeddings``: ``(N, D)`` float32, row ``i`` is product ``ids[i]``.
    """
    columns = ["product_id", "category", "section", *[f"d{d}" for d in range(embeddings.shape[1])]]
    rows = []
    for i in spread_indices(len(ids), max_rows):
        product = ids[i]
        values = [round(float(v), 5) for v in embeddings[i]]  # 5 digits: a third of the JSON, same picture
        rows.append([product, categories.get(product, ""), int(sections.get(product, -1)), *values])
    return columns, rows


def size_mb(paths: Sequence[Path]) -> float:
    return sum(Path(p).stat().st_size for p in paths) / 2**20


def find_wandb_logger(loggers: Sequence[Any]) -> WandbLogger | None:
    return next((logger for logger in loggers if isinstance(logger, WandbLogger)), None)


# -- Lightning glue -------------------------------------------------------------------------------------
class WandbTables(Callback):
    """Adds to the run of the trainer's ``WandbLogger`` (nothing without one):

    * summary ``best/val/<metric>`` and ``best/val/epoch``: the epoch with the best ``monitor``, updated
      after each validation;
    * ``val/examples``: ``num_examples`` validation queries (the same ones every run) at the best epoch,
      their top ``k`` product images with hit marks;
    * ``catalogue/embeddings``: the exported catalogue embeddings (at most ``embedding_rows`` products) with
      category and section, for W&B's 2D projection panel;
    * artifacts ``model-<run id>`` (the best checkpoint) and ``index-<run id>`` (the FAISS index and its id
      map) when ``log_checkpoint`` / ``log_index`` and each is at most ``max_artifact_mb``.

    Needs the :class:`RetrievalEvaluator` (examples, summary) and the :class:`EmbeddingExporter` (embedding
    table, index) before it in the callback list.
    """

    def __init__(
        self,
        monitor: str = "recall@15",
        num_examples: int = 8,
        k: int = 15,
        thumbnail_size: int = 128,
        embedding_rows: int = 2000,
        log_checkpoint: bool = True,
        log_index: bool = True,
        max_artifact_mb: float = 100.0,
    ) -> None:
        self.monitor = monitor
        self.num_examples = num_examples
        self.k = k
        self.thumbnail_size = thumbnail_size
        self.embedding_rows = embedding_rows
        self.log_checkpoint = log_checkpoint
        self.log_index = log_index
        self.max_artifact_mb = max_artifact_mb
        self._logger: WandbLogger | None = None
        self._best: float | None = None
        self._examples: list[RetrievalExample] = []
        self._examples_epoch: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._logger = find_wandb_logger(trainer.loggers)
        if self._logger is None:
            log.debug("wandb_tables: no WandbLogger among the trainer's loggers; nothing to log")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._logger is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        evaluator = _find(trainer.callbacks, RetrievalEvaluator)
        if evaluator is None or not evaluator.history or evaluator.last_ranking is None:
            return
        latest = evaluator.history[-1]
        if self.monitor not in latest:
            raise KeyError(
                f"callbacks.wandb_tables.monitor={self.monitor!r} is not among the validation metrics "
                f"{sorted(latest)} (set it to one of them, e.g. recall@<k> for a k in retrieval.ks)"
            )
        if self._best is not None and latest[self.monitor] <= self._best:
            return
        self._best = latest[self.monitor]
        # Only the chosen rows are kept: the images are read once, at the end of fit.
        datamodule = trainer.datamodule
        paths = datamodule.catalogue_paths
        self._examples = retrieval_examples(
            datamodule.validation_queries(),
            evaluator.last_ranking,
            datamodule.catalogue_ids,
            paths,
            self.num_examples,
            self.k,
        )
        self._examples_epoch = evaluator.last_ranking.epoch
        self._logger.experiment.summary.update(
            best_summary(evaluator.history, self.monitor, evaluator.prefix)
        )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._logger is None or not trainer.is_global_zero:
            return
        import wandb

        run = self._logger.experiment
        if self._examples:
            run.log({EXAMPLES_KEY: self._examples_table(wandb)})
            log.info(
                "wandb: %d retrieval examples of epoch %s logged", len(self._examples), self._examples_epoch
            )
        exporter = _find(trainer.callbacks, EmbeddingExporter)
        exported = exporter.written if exporter is not None else None
        if exported is None:
            log.info("wandb: no catalogue export in this fit; embedding table and index artifact skipped")
        else:
            self._log_embeddings(run, wandb, trainer.datamodule, exported)
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if self.log_checkpoint and best:
            score = checkpoint.best_model_score
            metadata = {"monitor": checkpoint.monitor, "score": None if score is None else float(score)}
            self._log_artifact(run, wandb, "model", "model", [Path(best)], metadata)
        if self.log_index and exported is not None:
            files = [exported / name for name in (INDEX_FILE, IDS_FILE, META_FILE)]
            self._log_artifact(run, wandb, "index", "faiss-index", [f for f in files if f.is_file()], {})

    def _examples_table(self, wandb: Any) -> Any:
        table = wandb.Table(columns=example_columns(self.k))
        for example in self._examples:
            query = wandb.Image(thumbnail(example.query_path, example.query_box, self.thumbnail_size))
            ranks: list[Any] = [
                wandb.Image(
                    thumbnail(path, None, self.thumbnail_size), caption=f"{HIT if hit else MISS} {pid}"
                )
                for pid, path, hit in zip(example.products, example.product_paths, example.hits, strict=True)
            ]
            ranks += [None] * (self.k - len(ranks))
            table.add_data(example.bundle_id, query, example.marks, round(example.recall, 4), *ranks)
        return table

    def _log_embeddings(self, run: Any, wandb: Any, datamodule: Any, exported: Path) -> None:
        from fashion_retrieval.index.embeddings import load_embeddings
        from fashion_retrieval.index.export import EMBEDDINGS_FILE

        embeddings, ids = load_embeddings(exported / EMBEDDINGS_FILE)
        products = datamodule.cat.products
        categories = dict(zip(products["product_asset_id"], products["product_description"], strict=True))
        columns, rows = embedding_table(
            embeddings, ids, categories, datamodule.catalogue_sections(), self.embedding_rows
        )
        run.log({EMBEDDINGS_KEY: wandb.Table(columns=columns, data=rows)})
        log.info("wandb: embedding table of %d of %d products logged", len(rows), len(ids))

    def _log_artifact(
        self, run: Any, wandb: Any, kind: str, artifact_type: str, files: list[Path], metadata: dict
    ) -> None:
        size = size_mb(files)
        if size > self.max_artifact_mb:
            log.info(
                "wandb: %s artifact skipped: %.1f MB is over max_artifact_mb=%s (%s)",
                kind,
                size,
                self.max_artifact_mb,
                ", ".join(str(f) for f in files),
            )
            return
        artifact = wandb.Artifact(f"{kind}-{run.id}", type=artifact_type, metadata=metadata)
        for path in files:
            artifact.add_file(str(path))
        run.log_artifact(artifact, aliases=["best", "latest"] if kind == "model" else ["latest"])
        log.info("wandb: %s artifact logged (%.1f MB)", kind, size)


def _find(callbacks: Sequence[Callback], kind: type) -> Any:
    return next((c for c in callbacks if isinstance(c, kind)), None)
