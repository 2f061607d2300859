"""Search the catalogue for a split's bundles through the configured detector; shared by ``infer`` (test
bundles) and ``validate`` (validation bundles).

``detector=none`` embeds each bundle photo whole, at the query size. Any other detector turns each photo
into garment crops (cached on disk), embeds every crop at the crop size, searches it within the bundle's
section and its label's categories, and shares the ``k`` slots among the crops
(:mod:`fashion_retrieval.rerank.garments`). Either way the re-ranking chain (``reranker``) re-ranks each
query's first ``reranker.depth`` candidates before the first ``k`` are kept.
"""

from __future__ import annotations

import logging

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.datamodule import ChallengeDataModule, QuerySet
from fashion_retrieval.detection.crops import CropSettings, detect_crops_cached
from fashion_retrieval.detection.zones import WholeImageDetector
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.rerank.chain import GalleryMetadata, RerankChain, RerankContext
from fashion_retrieval.rerank.garments import GarmentQueries, SlotSettings, rank_bundles
from fashion_retrieval.rerank.section import Eligibility

log = logging.getLogger(__name__)


def slot_settings(cfg: DictConfig) -> SlotSettings:
    retrieval = cfg.retrieval
    return SlotSettings(
        k=int(retrieval.k),
        per_crop_k=retrieval.get("per_crop_k"),
        strategy=retrieval.merge,
        category_mask=bool(retrieval.category_mask),
        label_weights=OmegaConf.to_container(retrieval.label_weights) if retrieval.label_weights else {},
    )


def search_bundles(
    cfg: DictConfig,
    encoder: ImageEncoder,
    datamodule: ChallengeDataModule,
    index: EmbeddingIndex,
    split: str,
    gallery_sections: np.ndarray,
) -> tuple[QuerySet, np.ndarray]:
    """The ``split`` bundles and their ``(Q, k)`` int64 gallery indices (``-1`` where too few qualify).

    ``gallery_sections (G,)``: the section of each catalogue product that the caller may know (validation
    must not read its own bundles' matches).
    """
    queries = datamodule.query_set(split)
    settings = slot_settings(cfg)
    views = list(cfg.retrieval.tta)
    detector = instantiate(cfg.detector)
    reranker: RerankChain = instantiate(cfg.reranker)
    gallery = GalleryMetadata.from_catalogue(datamodule.cat) if reranker else None
    if isinstance(detector, WholeImageDetector):
        embeddings = embed_loader(encoder, datamodule.query_dataloader(split), views=views)
        eligibility = Eligibility(np.asarray(queries.sections), gallery_sections)
        context = (
            RerankContext(eligibility, queries.image_paths, queries.boxes, gallery=gallery)
            if gallery is not None
            else None
        )
        return queries, reranker.search(index, embeddings, eligibility, settings.k, context)[0]
    crop_settings: CropSettings = instantiate(cfg.crops)
    detections = detect_crops_cached(
        detector, queries.image_paths, queries.bundle_ids, crop_settings, cfg.detection_cache
    )
    crops = GarmentQueries.from_detections(
        queries.image_paths, detections, whole_image=bool(cfg.retrieval.whole_image)
    )
    log.info(
        "%s: %d crops of %d bundles (%.2f per bundle)",
        split,
        len(crops),
        len(queries.bundle_ids),
        len(crops) / max(1, len(queries.bundle_ids)),
    )
    embeddings = embed_loader(encoder, datamodule.crop_dataloader(crops.paths, crops.boxes), views=views)
    categories = list(datamodule.cat.products["product_description"])
    ranked = rank_bundles(
        embeddings,
        crops,
        len(queries.bundle_ids),
        np.asarray(queries.sections),
        index,
        gallery_sections,
        categories,
        detector.label_categories,
        settings,
        reranker,
        gallery,
    )
    return queries, ranked
