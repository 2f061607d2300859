"""Embedding extraction through Lightning ``predict``: a thin module that embeds a batch, and a prediction
writer that streams the embeddings to shards on disk, per rank, so it runs under DDP unchanged."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch import nn

from fashion_retrieval.features.shards import check_complete, clear_directory, write_manifest, write_parts
from fashion_retrieval.models.inference import TEST_TIME_VIEWS, check_views, embed_views

log = logging.getLogger(__name__)

__all__ = ["FeatureExtractor", "ShardWriter"]


class FeatureExtractor(pl.LightningModule):
    """``predict_step({"image": (B, 3, H, W), "index": (B,)})`` -> ``{"embeddings": (B, D) float32,
    "index": (B,) int64}``, the embeddings from ``getattr(encoder, method)``: ``forward`` (the trained
    embedding) or ``backbone_features`` (raw, L2-normalised backbone features of an ``ImageEncoder``).

    ``views``: test-time views averaged with the image (names in ``TEST_TIME_VIEWS``), as in
    :func:`~fashion_retrieval.models.inference.embed_loader`.
    """

    def __init__(self, encoder: nn.Module, method: str = "forward", views: Sequence[str] = ()) -> None:
        super().__init__()
        if not callable(getattr(encoder, method, None)):
            raise TypeError(f"{type(encoder).__name__} has no method {method!r} to embed with")
        self.encoder = encoder
        self.method = method
        self.views = check_views(views)

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        encode = getattr(self.encoder, self.method)
        transforms = [TEST_TIME_VIEWS[view] for view in self.views]
        embeddings = embed_views(encode, batch["image"], transforms)
        return {"embeddings": embeddings, "index": torch.as_tensor(batch["index"]).long()}


class ShardWriter(BasePredictionWriter):
    """Writes each rank's predictions to ``directory`` in parts of about ``shard_size`` rows (see
    :mod:`fashion_retrieval.features.shards`), each part atomically, then, once every rank is done, the
    manifest (rank 0 only, last, atomically, after checking that every index ``0 .. len(ids) - 1`` is
    there). ``rank`` is taken from the trainer at predict start; set it by hand only to drive the writer
    without one (tests).
    """

    def __init__(
        self,
        directory: str | Path,
        ids: Sequence[str],
        shard_size: int = 50_000,
        fingerprint: str = "",
        settings: Mapping[str, Any] | None = None,
        rank: int = 0,
    ) -> None:
        super().__init__(write_interval="batch")
        if shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        self.directory = Path(directory)
        self.ids = list(ids)
        self.shard_size = shard_size
        self.fingerprint = fingerprint
        self.settings = dict(settings or {})
        self.rank = rank
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self._seq = 0

    # -- rank-local writing (no trainer needed) ------------------------------------------------------------
    def add(self, embeddings: torch.Tensor | np.ndarray, indices: torch.Tensor | np.ndarray) -> None:
        """Buffer ``(B, D)`` embeddings of dataset ``indices (B,)``; a part is written per ``shard_size``."""
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().float().cpu().numpy()
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        self._buffer.append((np.asarray(embeddings, dtype=np.float32), np.asarray(indices, dtype=np.int64)))
        self._buffered += len(indices)
        if self._buffered >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (one part per shard it touches)."""
        if not self._buffer:
            return
        embeddings = np.concatenate([e for e, _ in self._buffer])
        indices = np.concatenate([i for _, i in self._buffer])
        self.directory.mkdir(parents=True, exist_ok=True)
        write_parts(self.directory, embeddings, indices, self.shard_size, self.rank, self._seq)
        self._seq += 1
        self._buffer, self._buffered = [], 0

    def finalize(self) -> Path:
        """Check the parts of every rank cover the dataset, then write the manifest; returns its path."""
        dim = check_complete(self.directory, len(self.ids))
        path = write_manifest(self.directory, self.ids, dim, self.shard_size, self.fingerprint, self.settings)
        log.info("features: %d x %d written to %s", len(self.ids), dim, self.directory)
        return path

    # -- Lightning hooks ---------------------------------------------------------------------------------
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rank = int(trainer.global_rank)
        self._buffer, self._buffered, self._seq = [], 0, 0
        if trainer.is_global_zero:
            # Parts and temporary files of an interrupted extraction must not mix with this one's.
            clear_directory(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("feature_directory_cleared")

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Mapping[str, torch.Tensor],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.add(prediction["embeddings"], prediction["index"])

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush()
        trainer.strategy.barrier("feature_parts_written")
        error = None
        if trainer.is_global_zero:
            try:
                self.finalize()
            except (ValueError, OSError) as failure:
                error = str(failure)
        # Every rank learns whether the cache is complete, so none waits on a failed rank 0.
        error = trainer.strategy.broadcast(error, src=0)
        if error:
            raise RuntimeError(f"feature extraction failed: {error}")
