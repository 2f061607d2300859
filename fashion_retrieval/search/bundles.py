"""Search the catalogue for a split's bundles through the configured detector; shared by ``infer`` (test
bundles) and ``validate`` (validation bundles).

``detector=none`` embeds each bundle photo whole, at the query size. Any other detector turns each photo
into garment crops (cached on disk), embeds every crop at the crop size, searches it within the bundle's
section and its label's categories, and shares the ``k`` slots among the crops
(:mod:`fashion_retrieval.search.garments`). Either way the re-ranking chain (``reranker``) re-ranks each
query's first ``reranker.depth`` candidates before the first ``k`` are kept. Bundle priors in the chain
(:mod:`fashion_retrieval.rerank.bundle_priors`) learn from the training bundles: for ``val`` only the data
module's training split, for ``test`` every training match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue import code_numbers
from fashion_retrieval.data.datamodule import ChallengeDataModule, QuerySet
from fashion_retrieval.detection.crops import CropSettings, detect_crops_cached
from fashion_retrieval.detection.types import Detector
from fashion_retrieval.detection.zones import WholeImageDetector
from fashion_retrieval.index.eligibility import UNKNOWN_SECTION, Eligibility
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    BundleStatistics,
    bind_bundle_priors,
    bundle_prior_steps,
)
from fashion_retrieval.rerank.chain import GalleryMetadata, RerankChain, RerankContext
from fashion_retrieval.search.garments import (
    GarmentQueries,
    SlotSettings,
    category_codes,
    rank_bundles_scored,
)
from fashion_retrieval.search.slots import merge_garment_lists, slot_scores

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


def known_bundle_ids(datamodule: ChallengeDataModule, split: str) -> list[str]:
    """The bundles whose matches the priors may learn from when searching ``split``: for ``val`` the
    training split only (validation must not read its own matches), for ``test`` every training bundle."""
    return list(datamodule.train_bundle_ids if split == "val" else datamodule.cat.train_bundle_ids)


def bundle_photo_embeddings(
    encoder: ImageEncoder, datamodule: ChallengeDataModule, bundle_ids: list[str], views: list[str]
) -> np.ndarray:
    """``(B, D)`` float32 whole-photo embeddings of bundles (at the query size, as ``detector=none``)."""
    rows = datamodule.cat.bundles.set_index("bundle_asset_id").loc[bundle_ids]
    paths = [str(p) for p in rows["image_path"]]
    photos = QuerySet(list(bundle_ids), paths, [int(s) for s in rows["bundle_id_section"]], None)
    return embed_loader(encoder, datamodule.query_set_dataloader(photos), views=views)


def bundle_prior_data(
    cfg: DictConfig, encoder: ImageEncoder, datamodule: ChallengeDataModule, split: str, embeddings: bool
) -> BundlePriorData:
    """The known bundles of ``split`` (:func:`known_bundle_ids`) and its query bundles, with whole-photo
    embeddings of both when ``embeddings`` (the similar-bundle prior)."""
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
    queries, ranked, _ = search_bundles_scored(cfg, encoder, datamodule, index, split, gallery_sections)
    return queries, ranked


def search_bundles_scored(
    cfg: DictConfig,
    encoder: ImageEncoder,
    datamodule: ChallengeDataModule,
    index: EmbeddingIndex,
    split: str,
    gallery_sections: np.ndarray,
    prior_data: BundlePriorData | None = None,
    crop_embedder: Callable[[GarmentQueries], np.ndarray] | None = None,
) -> tuple[QuerySet, np.ndarray, np.ndarray]:
    """:func:`search_bundles` plus each slot's ``(Q, k)`` float32 score (see
    :func:`~fashion_retrieval.search.garments.rank_bundles_scored`). ``prior_data``: the known bundles for
    the chain's bundle priors (self-training adds pseudo pairs); default :func:`bundle_prior_data`.
    ``crop_embedder``: ``crops -> (N, D)`` float32 L2-normalised crop embeddings in place of ``encoder``'s
    (``train-adapter``: cached backbone features through a trained query head); needs a crop detector."""
    if not cfg.retrieval.get("sections", True):
        # Measuring the section rule: every product's section unknown, so neither the search nor the
        # chain's SectionFilter can rule a product out.
        gallery_sections = np.full(np.shape(gallery_sections), UNKNOWN_SECTION, dtype=np.int64)
    queries = datamodule.query_set(split)
    settings = slot_settings(cfg)
    views = list(cfg.retrieval.tta)
    detector = instantiate(cfg.detector)
    reranker: RerankChain = instantiate(cfg.reranker)
    priors = bundle_prior_steps(reranker)
    if priors:
        if prior_data is None:
            needs_embeddings = any(prior.needs_embeddings for prior in priors)
            prior_data = bundle_prior_data(cfg, encoder, datamodule, split, needs_embeddings)
        bind_bundle_priors(reranker, prior_data)
    needs_gallery = bool(reranker) or settings.one_per_article
    gallery = GalleryMetadata.from_catalogue(datamodule.cat) if needs_gallery else None
    # URL metadata of the query bundles (NaN / -1 where absent) for the metadata priors.
    bundle_timestamps = datamodule.cat.bundle_timestamps(queries.bundle_ids)
    bundle_codes = code_numbers(datamodule.cat.bundle_codes(queries.bundle_ids))
    if isinstance(detector, WholeImageDetector):
        if crop_embedder is not None:
            raise ValueError("a crop_embedder needs a crop detector (detector=zones|yolo|truth), not none")
        embeddings = embed_loader(encoder, datamodule.query_dataloader(split), views=views)
        eligibility = Eligibility(np.asarray(queries.sections), gallery_sections)
        context = (
            RerankContext(
                eligibility,
                queries.image_paths,
                queries.boxes,
                gallery=gallery,
                query_bundles=np.arange(len(queries.bundle_ids)),
                query_timestamps=bundle_timestamps,
                query_codes=bundle_codes,
            )
            if reranker
            else None
        )
        categories = list(datamodule.cat.products["product_description"])
        constraints = settings.constraints(*category_codes(categories), gallery)
        if constraints is None:
            ranked, scores = reranker.search(index, embeddings, eligibility, settings.k, context)
            return queries, ranked, scores
        # Diverse slots: the photo's list is one "crop" list, searched deeper so the rules have room.
        depth = max(settings.k, settings.per_crop_k or 2 * settings.k)
        ids, all_scores = reranker.search(index, embeddings, eligibility, depth, context)
        ranked = np.stack(
            [
                merge_garment_lists(i[None], s[None], settings.k, constraints=constraints)
                for i, s in zip(ids, all_scores)
            ]
        )
        scores = np.stack([slot_scores(r, i[None], s[None]) for r, i, s in zip(ranked, ids, all_scores)])
        return queries, ranked, scores
    crops = detect_garments(cfg, detector, queries.image_paths, queries.bundle_ids)
    log.info(
        "%s: %d crops of %d bundles (%.2f per bundle)",
        split,
        len(crops),
        len(queries.bundle_ids),
        len(crops) / max(1, len(queries.bundle_ids)),
    )
    if crop_embedder is None:
        embeddings = embed_loader(encoder, datamodule.crop_dataloader(crops.paths, crops.boxes), views=views)
    else:
        embeddings = crop_embedder(crops)
    categories = list(datamodule.cat.products["product_description"])
    ranked, scores = rank_bundles_scored(
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
        bundle_timestamps=bundle_timestamps,
        bundle_codes=bundle_codes,
    )
    return queries, ranked, scores
