"""What a search of the dataset's bundles needs besides the model: the slot settings of the config, the
garment crops of bundle photos (through the detection cache), and the known bundles the re-ranking chain's
bundle priors learn from (:mod:`fashion_retrieval.rerank.bundle_priors`): for ``val`` only the data
module's training split, for ``test`` every training match. The search itself:
:class:`~fashion_retrieval.search.retriever.Retriever`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.detection.crops import CropSettings, detect_crops_cached
from fashion_retrieval.detection.types import Detector
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    BundleStatistics,
)
from fashion_retrieval.search.garments import (
    GarmentQueries,
    SlotSettings,
)

if TYPE_CHECKING:
    from fashion_retrieval.models.encoder import ImageEncoder

log = logging.getLogger(__name__)


def slot_settings(cfg: DictConfig) -> SlotSettings:
    retrieval = cfg.retrieval
    return SlotSettings(
        k=int(retrieval.k),
        per_crop_k=retrieval.get("per_crop_k"),
        strategy=retrieval.merge,
        category_mask=bool(retrieval.category_mask),
        label_weights=OmegaConf.to_container(retrieval.label_weights) if retrieval.label_weights else {},
        category_caps=dict(retrieval.get("category_caps") or {}),
        default_category_cap=retrieval.get("default_category_cap"),
        one_per_article=bool(retrieval.get("one_per_article", False)),
    )


def detect_garments(
    cfg: DictConfig, detector: Detector, image_paths: Sequence[str], bundle_ids: Sequence[str]
) -> GarmentQueries:
    """The garment crops of bundle photos through ``detector`` and the ``crops:`` settings, cached under
    ``detection_cache`` (keyed by bundle id), plus the whole photo with ``retrieval.whole_image``."""
    crop_settings: CropSettings = instantiate(cfg.crops)
    detections = detect_crops_cached(detector, image_paths, bundle_ids, crop_settings, cfg.detection_cache)
    whole_image = bool(cfg.retrieval.whole_image)
    return GarmentQueries.from_detections(image_paths, detections, whole_image=whole_image)


def known_bundle_ids(datamodule: CatalogueData, split: str) -> list[str]:
    """The bundles whose matches the priors may learn from when searching ``split``: for ``val`` the
    training split only (validation must not read its own matches), for ``test`` every training bundle."""
    return list(datamodule.train_bundle_ids if split == "val" else datamodule.cat.train_bundle_ids)


def bundle_photo_embeddings(
    encoder: ImageEncoder, datamodule: CatalogueData, bundle_ids: list[str], views: list[str]
) -> np.ndarray:
    """``(B, D)`` float32 whole-photo embeddings of bundles (at the query size, as ``detector=none``)."""
    # Imported here, as the next function's: the data loaders' path needs torch, the ONNX service not.
    from fashion_retrieval.models.inference import embed_loader

    photos = datamodule.cat.bundle_queries(bundle_ids, with_truth=False)
    return embed_loader(encoder, datamodule.query_set_dataloader(photos), views=views)


def bundle_prior_data(
    cfg: DictConfig, encoder: ImageEncoder, datamodule: CatalogueData, split: str, embeddings: bool
) -> BundlePriorData:
    """The known bundles of ``split`` (:func:`known_bundle_ids`) and its query bundles, with whole-photo
    embeddings of both when ``embeddings`` (the similar-bundle prior)."""
    from fashion_retrieval.models.inference import embed_loader

    known = known_bundle_ids(datamodule, split)
    queries = datamodule.query_set(split)
    views = list(cfg.retrieval.tta)
    known_embeddings = query_embeddings = None
    if embeddings:
        known_embeddings = bundle_photo_embeddings(encoder, datamodule, known, views)
        query_embeddings = embed_loader(encoder, datamodule.query_dataloader(split), views=views)
    statistics = BundleStatistics.from_catalogue(datamodule.cat, known, known_embeddings)
    log.info("bundle priors: %d known bundles for %s", len(known), split)
    return BundlePriorData(statistics, queries.bundle_ids, query_embeddings)
