"""``index``: embed the catalogue with a trained checkpoint and save embeddings + FAISS index."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def datamodule_for(cfg: DictConfig, encoder: ImageEncoder) -> ChallengeDataModule:
    """The data config with the normalisation the trained encoder expects."""
    datamodule: ChallengeDataModule = instantiate(cfg.data)
    datamodule.setup()
    return datamodule


def build_index(
    encoder: ImageEncoder, datamodule: ChallengeDataModule, checkpoint: Path, index_dir: Path, spec: IndexSpec
) -> EmbeddingIndex:
    """Embed the catalogue with ``encoder`` (from ``checkpoint``), save a ``spec`` index in ``index_dir``."""
    embeddings = embed_loader(encoder, datamodule.gallery_dataloader())
    ids = datamodule.gallery_ids
    index = export_catalogue(index_dir, embeddings, ids, checkpoint, spec)
    log.info(
        "index: %d products, dim %d, %s built in %.1f s, written to %s",
        len(ids),
        embeddings.shape[1],
        spec.index_type,
        index.build_seconds,
        index_dir,
    )
    return index


def index(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    checkpoint = context.checkpoint(cfg)
    encoder = load_encoder(checkpoint)
    spec = instantiate(cfg.index.spec)
    built = build_index(encoder, datamodule_for(cfg, encoder), checkpoint, Path(cfg.index.dir), spec)
    return {"index/num_items": float(len(built))}
