"""``baselines``: what the fine-tuned model must beat, on the same validation bundles and catalogue.

- ``random``: a random ranking (random unit vectors through the same section-aware search);
- ``colour_histogram``: global HSV histograms, Bhattacharyya similarity;
- ``pretrained``: the backbone's pooled features before any fine-tuning (no projection head);
- ``frozen_<name>`` for each model of ``baselines.backbones`` (e.g. the quickstart's EfficientNet-Lite2):
  the same as ``pretrained`` with that model's backbone.

The frozen backbones' rows also get real-photo scores (``real/baseline/<name>/...``, at the backbone's
native input size); their features go through the feature cache (``features.enabled``), so a later run
reuses them.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.baselines.colour_histogram import histogram_embeddings
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.evaluation.ranking import evaluate_embeddings
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.features import FeatureCache, image_features
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

METHOD = "backbone_features"  # frozen baselines: pooled backbone features, no projection head


def frozen_embeddings(
    encoder: ImageEncoder, datamodule: ChallengeDataModule, cache: FeatureCache | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, D)`` validation bundle and ``(G, D)`` catalogue pooled backbone features of a frozen ``encoder``
    (through ``cache`` when given, keyed by weights, preprocessing and files)."""
    queries = datamodule.query_dataloader("val").dataset
    catalogue = datamodule.catalogue_dataloader().dataset
    if cache is None:
        return (
            embed_loader(encoder.backbone_features, datamodule.query_dataloader("val")),
            embed_loader(encoder.backbone_features, datamodule.catalogue_dataloader()),
        )
    query_ids = [f"val/{b}" for b in datamodule.query_set("val").bundle_ids]
    return (
        image_features(cache, encoder, queries, query_ids, METHOD),
        image_features(cache, encoder, catalogue, datamodule.catalogue_ids, METHOD),
    )


def baseline_embeddings(
    name: str, cfg: DictConfig, datamodule: ChallengeDataModule, encoder: ImageEncoder | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, D)`` query and ``(G, D)`` catalogue embeddings of one baseline (``pretrained``: ``encoder``)."""
    queries = datamodule.query_set("val")
    catalogue_paths = datamodule.catalogue_paths
    if name == "random":
        rng = np.random.default_rng(cfg.seed)
        vectors = rng.standard_normal((len(queries.bundle_ids) + len(catalogue_paths), 64)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors[: len(queries.bundle_ids)], vectors[len(queries.bundle_ids) :]
    if name == "colour_histogram":
        query_crop = datamodule.query_crop  # the region the trained model sees, for a fair comparison
        return histogram_embeddings(queries.image_paths, crop=query_crop), histogram_embeddings(
            catalogue_paths
        )
    if name == "pretrained":
        torch.manual_seed(cfg.seed)
        encoder = encoder if encoder is not None else instantiate(cfg.model.encoder).eval()
        return frozen_embeddings(encoder, datamodule, baseline_cache(cfg))
    raise ValueError(f"unknown baseline {name!r}; choose from random, colour_histogram, pretrained")


def baseline_cache(cfg: DictConfig) -> FeatureCache | None:
    """The feature cache of frozen baselines (one device: baselines runs on the first process only)."""
    features = cfg.get("features")
    if features is None or not features.enabled:
        return None
    options = {"accelerator": cfg.trainer.accelerator, "devices": 1, "precision": "32-true"}
    return FeatureCache(features.cache_dir, batch_size=int(features.batch_size), trainer_options=options)


def baselines(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    datamodule: ChallengeDataModule = instantiate(cfg.data)
    datamodule.setup()
    queries = datamodule.query_set("val")
    catalogue_sections = datamodule.catalogue_section_array()
    real_settings = real_photo_settings(cfg)
    rows = [(name, None) for name in cfg.baselines.names]
    rows += [(f"frozen_{name}", node) for name, node in (cfg.baselines.get("backbones") or {}).items()]
    metrics: dict[str, float] = {}
    for name, model in rows:
        encoder = None
        if name == "pretrained" or model is not None:
            torch.manual_seed(cfg.seed)  # a backbone without pretrained weights: the same draw every run
            encoder = instantiate((cfg.model if model is None else model).encoder).eval()
        if model is None:
            query_embeddings, catalogue_embeddings = baseline_embeddings(name, cfg, datamodule, encoder)
        else:
            query_embeddings, catalogue_embeddings = frozen_embeddings(
                encoder, datamodule, baseline_cache(cfg)
            )
        scores = evaluate_embeddings(
            query_embeddings,
            catalogue_embeddings,
            datamodule.catalogue_ids,
            np.asarray(queries.sections),
            catalogue_sections,
            queries.truth,
            cfg.retrieval.ks,
        )
        log.info("baseline %s: %s", name, {k: round(v, 4) for k, v in scores.items()})
        metrics.update({f"baseline/{name}/{k}": v for k, v in scores.items()})
        if encoder is not None:
            model_encoder = PhotoEncoder(encoder, METHOD)
            metrics.update(
                real_photo_scores(real_settings, model_encoder, f"baseline/{name}", context.output_dir)
            )
    return metrics
