"""Feature cache: embeddings computed once through Lightning ``predict``, sharded to disk, reused.

The two entry points (docs/features.md):

- :func:`ensure_features` ``(encoder, dataset, ids, cache_dir, method="forward" | "backbone_features", ...)
  -> Path``: the cache directory of ``encoder``'s features of ``dataset`` (items ``{"image", "index"}``,
  item ``i`` has id ``ids[i]``), computed only when no complete entry with the same fingerprint (weights,
  preprocessing, crops, ids, precision) exists. Runs under DDP unchanged (``trainer_options``).
- :func:`load_features` ``(directory) -> (embeddings (N, D) float32, ids list[str])``, in dataset order;
  :func:`iter_shards` streams the same rows one shard at a time for data larger than memory.

Example::

    directory = ensure_features(encoder, datamodule.catalogue_dataloader().dataset, datamodule.catalogue_ids,
                                "outputs/feature_cache", method="backbone_features")
    embeddings, ids = load_features(directory)
"""

from fashion_retrieval.features.cache import FeatureCache, ensure_features, feature_cache, image_features
from fashion_retrieval.features.fingerprint import (
    describe_dataset,
    feature_settings,
    module_digest,
)
from fashion_retrieval.features.predict import FeatureExtractor, ShardWriter
from fashion_retrieval.features.shards import Shard, iter_shards, load_features, read_manifest

__all__ = [
    "FeatureCache",
    "FeatureExtractor",
    "Shard",
    "ShardWriter",
    "describe_dataset",
    "ensure_features",
    "feature_cache",
    "feature_settings",
    "image_features",
    "iter_shards",
    "load_features",
    "module_digest",
    "read_manifest",
]
