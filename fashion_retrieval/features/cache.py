"""Feature cache: one directory of shards per fingerprint, reused across runs and sweeps, recomputed when
the weights, image content, preprocessing, crops or items change, and only trusted once its manifest
exists; one process writes an entry at a time (:func:`~fashion_retrieval.locks.directory_lock`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.features.fingerprint import describe_dataset, feature_settings
from fashion_retrieval.features.predict import FeatureExtractor, ShardWriter
from fashion_retrieval.features.shards import clear_directory, load_features, read_manifest
from fashion_retrieval.locks import directory_lock, is_launch_leader
from fashion_retrieval.models.ensemble import weighted_concat
from fashion_retrieval.progress import show_progress

log = logging.getLogger(__name__)

__all__ = ["FeatureCache", "ensure_features", "image_features"]

# Trainer options a predict run always needs, whatever the training config says.
PREDICT_OPTIONS: dict[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    # Lightning shards the loader across ranks (without repeating items, for predict) even where the
    # training config turns its own sampler injection off.
    "use_distributed_sampler": True,
    # A cache entry covers every item: debug limits of the training config do not apply.
    "fast_dev_run": False,
    "limit_predict_batches": None,
    "overfit_batches": 0.0,
}


class FeatureCache:
    """Feature directories ``root/<fingerprint>/``, each written by :class:`ShardWriter`.

    ``shard_size``: rows per shard; ``batch_size``, ``num_workers``: the predict loader;
    ``trainer_options``: ``pl.Trainer`` keyword arguments (accelerator, devices, strategy, precision;
    e.g. ``conf/trainer/*.yaml`` without ``_target_``), default one CPU device at fp32.
    """

    def __init__(
        self,
        root: str | Path,
        shard_size: int = 50_000,
        batch_size: int = 64,
        num_workers: int = 0,
        trainer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        options = {"accelerator": "cpu", "devices": 1}
        options.update({k: v for k, v in (trainer_options or {}).items() if k != "_target_"})
        self.trainer_options = options

    def directory(self, fingerprint: str) -> Path:
        return self.root / fingerprint

    def lookup(self, fingerprint: str) -> Path | None:
        """The complete directory of ``fingerprint``, or ``None`` (absent, interrupted or another entry's)."""
        directory = self.directory(fingerprint)
        try:
            manifest = read_manifest(directory)
        except FileNotFoundError:
            return None
        except ValueError as error:
            log.warning("feature cache: %s; recomputing", error)
            return None
        return directory if manifest["fingerprint"] == fingerprint else None

    @property
    def precision(self) -> str:
        """The Lightning precision features are computed at (part of their fingerprint)."""
        return str(self.trainer_options.get("precision", "32-true"))

    def get_or_compute(
        self,
        encoder: nn.Module,
        dataset: Dataset,
        ids: Sequence[str],
        method: str = "forward",
        views: Sequence[str] = (),
        crops: Mapping[str, Any] | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        weights_digest: str | None = None,
        force: bool = False,
    ) -> Path:
        """The feature directory of ``dataset`` (items ``{"image", "index"}``, item ``i`` has id ``ids[i]``)
        under ``encoder``'s ``method``; computed through ``trainer.predict`` only when absent (or ``force``).

        Read it with :func:`~fashion_retrieval.features.load_features` or
        :func:`~fashion_retrieval.features.iter_shards`. Under DDP every rank calls this; all return the
        same directory once rank 0 has written the manifest.
        """
        if len(ids) != len(dataset):  # type: ignore[arg-type]
            raise ValueError(f"{len(ids)} ids for a dataset of {len(dataset)} items")  # type: ignore[arg-type]
        if preprocessing is None:
            preprocessing = describe_dataset(dataset)
        settings = feature_settings(
            encoder, ids, preprocessing, method, views, crops, self.precision, weights_digest
        )
        fingerprint = settings_digest(settings)
        found = None if force else self.lookup(fingerprint)
        if found is not None:
            log.info("feature cache: reusing %s (%d items)", found, len(ids))
            return found
        directory = self.directory(fingerprint)
        # One writer per entry: another process computing the same features (a sweep's parallel jobs) is
        # waited for, then its entry reused. The other ranks of a distributed run write with the leader.
        lock = directory_lock(directory, "feature extraction", wait=True) if is_launch_leader() else None
        with lock or contextlib.nullcontext():
            found = None if force else self.lookup(fingerprint)
            if found is not None:
                log.info("feature cache: reusing %s (%d items), written meanwhile", found, len(ids))
                return found
            self._compute(encoder, dataset, ids, method, views, directory, fingerprint, settings)
        return directory

    def _compute(
        self,
        encoder: nn.Module,
        dataset: Dataset,
        ids: Sequence[str],
        method: str,
        views: Sequence[str],
        directory: Path,
        fingerprint: str,
        settings: dict[str, Any],
    ) -> None:
        writer = ShardWriter(directory, ids, self.shard_size, fingerprint, settings)
        # Lightning's bar (count, rate, ETA) on a terminal only (fashion_retrieval.progress).
        options = {**self.trainer_options, **PREDICT_OPTIONS, "enable_progress_bar": show_progress()}
        trainer = pl.Trainer(**options, callbacks=[writer])
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
        log.info("feature cache: embedding %d items into %s", len(ids), directory)
        trainer.predict(
            FeatureExtractor(encoder, method, views), dataloaders=loader, return_predictions=False
        )

    def get_or_combine(
        self, directories: Sequence[Path], weights: Sequence[float], force: bool = False
    ) -> Path:
        """The weighted concatenation of complete feature directories of the same items (an ensemble's
        ``backbone_features`` from its members' caches, each member at its own input size).

        Rows ``(N, D_i)`` are L2-normalised, then :func:`~fashion_retrieval.models.ensemble.weighted_concat`
        (weights summing to 1): ``(N, sum D_i)`` unit rows whose dot products are the weighted sums of the
        members' cosines. Keyed by the members' fingerprints and the weights; computed only when absent.
        """
        manifests = [read_manifest(d) for d in directories]
        if len(manifests) != len(weights) or not manifests:
            raise ValueError(f"{len(manifests)} feature directories for {len(weights)} weights")
        ids = manifests[0]["ids"]
        for directory, manifest in zip(directories, manifests):
            if manifest["ids"] != ids:
                raise ValueError(f"{directory} holds other items than {directories[0]}: cannot combine them")
        settings = {"combined": [m["fingerprint"] for m in manifests], "weights": [float(w) for w in weights]}
        fingerprint = settings_digest(settings)
        found = None if force else self.lookup(fingerprint)
        if found is not None:
            log.info("feature cache: reusing %s (%d items, combined)", found, len(ids))
            return found
        directory = self.directory(fingerprint)
        lock = directory_lock(directory, "feature combination", wait=True) if is_launch_leader() else None
        with lock or contextlib.nullcontext():
            found = None if force else self.lookup(fingerprint)
            if found is not None:
                return found
            parts = [
                torch.nn.functional.normalize(torch.from_numpy(load_features(d)[0]), dim=-1)
                for d in directories
            ]
            fused = weighted_concat(parts, [float(w) for w in weights]).numpy()
            directory.mkdir(parents=True, exist_ok=True)
            clear_directory(directory)
            writer = ShardWriter(directory, ids, self.shard_size, fingerprint, settings)
            writer.add(fused, np.arange(len(ids)))
            writer.flush()
            writer.finalize()
        return directory


def ensure_features(
    encoder: nn.Module,
    dataset: Dataset,
    ids: Sequence[str],
    cache_dir: str | Path,
    method: str = "forward",
    views: Sequence[str] = (),
    crops: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    shard_size: int = 50_000,
    batch_size: int = 64,
    num_workers: int = 0,
    trainer_options: Mapping[str, Any] | None = None,
) -> Path:
    """The cache directory holding ``encoder``'s features of ``dataset`` (item ``i`` = ``ids[i]``), computed
    only when no complete entry with the same fingerprint exists under ``cache_dir``.

    ``method``: ``forward`` (embeddings) or ``backbone_features`` (raw backbone features: a frozen
    backbone's cache survives any change of head). ``preprocessing``: needed unless ``dataset`` is an
    :class:`~fashion_retrieval.data.datasets.ImageDataset`. See :class:`FeatureCache` for the rest.
    """
    cache = FeatureCache(cache_dir, shard_size, batch_size, num_workers, trainer_options)
    return cache.get_or_compute(encoder, dataset, ids, method, views, crops, preprocessing)


def image_features(
    cache: FeatureCache,
    encoder: nn.Module,
    dataset: ImageDataset,
    ids: Sequence[str],
    method: str = "forward",
) -> np.ndarray:
    """``(N, D)`` float32 features of an :class:`ImageDataset` (item ``i`` = ``ids[i]``) through ``cache``,
    keyed by the images' content (:func:`~fashion_retrieval.features.fingerprint.describe_dataset`): a
    dataset regenerated in place keeps its ids but not its images, and must not get the old features."""
    directory = cache.get_or_compute(encoder, dataset, ids, method)
    features, found = load_features(directory)
    if list(found) != list(ids):
        raise ValueError(f"feature cache {directory} does not hold these items in order")
    return features


def feature_cache(cfg: DictConfig) -> FeatureCache:
    """The ``features:`` cache of ``cfg``, extracting with its ``trainer:`` config (devices, strategy,
    precision)."""
    features = cfg.features
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(options, dict)
    # Nested objects (a profiler) are built; the Trainer itself is built by the cache, with its writer.
    trainer_options = {
        key: instantiate(value) if isinstance(value, dict) and "_target_" in value else value
        for key, value in options.items()
        if key != "_target_"
    }
    return FeatureCache(
        features.cache_dir,
        shard_size=int(features.shard_size),
        batch_size=int(features.batch_size),
        num_workers=int(features.num_workers),
        trainer_options=trainer_options,
    )
