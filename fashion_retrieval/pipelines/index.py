"""``index``: embed the catalogue with a trained checkpoint and save embeddings + FAISS index.

With ``features.enabled`` (the default) the catalogue is embedded through Lightning ``predict`` (the
``trainer`` config: DDP runs unchanged) into the feature cache, in shards, and the index is built shard by
shard; a later run with the same checkpoint, preprocessing and catalogue reuses the cached shards.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.features import FeatureCache, feature_cache, iter_shards, read_manifest
from fashion_retrieval.index.export import export_catalogue_shards
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.locks import is_launch_leader
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.onnx_encoder import load_search_encoder
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.loading import build_index, datamodule_for, log_index

log = logging.getLogger(__name__)


def build_index_sharded(
    cache: FeatureCache,
    encoder: ImageEncoder,
    datamodule: CatalogueData,
    checkpoint: Path,
    index_dir: Path,
    spec: IndexSpec,
) -> EmbeddingIndex | None:
    """Embed the catalogue into ``cache`` (every rank of a distributed run takes part), then, on the first
    process only, build the ``spec`` index shard by shard into ``index_dir``; ``None`` on the others."""
    dataset = datamodule.catalogue_dataloader().dataset
    directory = cache.get_or_compute(encoder, dataset, datamodule.catalogue_ids)
    if not is_launch_leader():
        return None
    manifest = read_manifest(directory)
    index = export_catalogue_shards(
        index_dir,
        lambda: ((shard.embeddings, shard.ids) for shard in iter_shards(directory)),
        int(manifest["count"]),
        int(manifest["dim"]),
        checkpoint,
        spec,
        datamodule.catalogue_paths,
    )
    log_index(index, spec, index_dir)
    return index


def index(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    checkpoint = context.checkpoint(cfg)
    encoder = load_search_encoder(cfg, checkpoint)
    spec = instantiate(cfg.index.spec)
    datamodule = datamodule_for(cfg)
    index_dir = Path(cfg.index.dir)
    features = cfg.get("features")
    if features is None or not features.enabled:
        built: EmbeddingIndex | None = build_index(encoder, datamodule, checkpoint, index_dir, spec)
    else:
        built = build_index_sharded(feature_cache(cfg), encoder, datamodule, checkpoint, index_dir, spec)
    return {} if built is None else {"index/num_items": float(len(built))}
