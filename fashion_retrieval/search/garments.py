"""Retrieval per garment: every crop of a bundle photo is searched on its own, within the bundle's section
and the categories its detector label allows, and the crops' lists share the bundle's ``k`` slots."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashion_retrieval.data.catalogue import list_examples
from fashion_retrieval.detection.types import Box, Detection
from fashion_retrieval.detection.zones import WHOLE_LABEL
from fashion_retrieval.index.eligibility import Eligibility, search_eligible
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankChain, RerankContext
from fashion_retrieval.search.slots import (
    MergeStrategy,
    SlotConstraints,
    merge_garment_lists,
    slot_scores,
    slot_sources,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GarmentQueries:
    """The crops of a set of bundle photos, flattened; crops of one bundle are in decreasing score order.

    ``bundle_rows (N,)`` the bundle (row of the query set) of each crop; ``paths``/``boxes``/``labels``
    ``N`` photo paths, pixel boxes (final: padded and clipped; ``None``: the whole photo) and labels;
    ``scores (N,)`` detector confidences.
    """

    bundle_rows: np.ndarray
    paths: list[str]
    boxes: list[Box | None]
    labels: list[str]
    scores: np.ndarray

    @classmethod
    def from_detections(
        cls, image_paths: Sequence[str], detections: Sequence[Sequence[Detection]], whole_image: bool = False
    ) -> GarmentQueries:
        """One crop per detection of each photo, and with ``whole_image`` the whole photo as one more query
        after them (box ``None``, label ``whole``, score 0): what the detector missed can still be found.
        A photo with no query at all is an error (the detection step falls back to zones or the whole)."""
        if len(image_paths) != len(detections):
            raise ValueError(f"{len(detections)} detection lists for {len(image_paths)} images")
        rows, paths, boxes, labels, scores = [], [], [], [], []
        for row, (path, found) in enumerate(zip(image_paths, detections)):
            regions: list[tuple[Box | None, str, float]] = [
                (d.box, d.label, d.score) for d in sorted(found, key=lambda d: -d.score)
            ]
            if whole_image:
                regions.append((None, WHOLE_LABEL, 0.0))
            if not regions:
                raise ValueError(f"{path}: no region to search (detection must fall back to zones or whole)")
            for box, label, score in regions:
                rows.append(row)
                paths.append(str(path))
                boxes.append(box)
                labels.append(label)
                scores.append(score)
        return cls(np.asarray(rows, np.int64), paths, boxes, labels, np.asarray(scores, np.float32))

    def __post_init__(self) -> None:
        if (np.diff(self.bundle_rows) < 0).any():
            raise ValueError("crops must be grouped by bundle, in bundle order")

    def __len__(self) -> int:
        return len(self.paths)


def category_codes(categories: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """``(G,)`` int code per catalogue item and the category -> code map (codes in first-seen order)."""
    codes: dict[str, int] = {}
    array = np.array([codes.setdefault(category, len(codes)) for category in categories], dtype=np.int64)
    return array, codes


def label_category_mask(
    labels: Sequence[str], label_categories: Mapping[str, Sequence[str]], codes: Mapping[str, int]
) -> np.ndarray:
    """``(N, C)`` bool: the category codes each crop may receive.

    A label missing from ``label_categories`` (or mapped to nothing) restricts nothing; so does a label
    none of whose categories is in this catalogue (logged once per label: a wrong map must not silently
    leave crops with no candidates). Categories that no label maps to (:func:`unmapped_categories`) stay
    open to every crop: a map written for another taxonomy must not make them unreachable.
    """
    mask = np.ones((len(labels), len(codes)), dtype=bool)
    open_to_all = [codes[category] for category in unmapped_categories(label_categories, codes)]
    rows_of: dict[str, np.ndarray] = {}
    for label in dict.fromkeys(labels):
        allowed = [codes[c] for c in label_categories.get(label, ()) if c in codes]
        if label_categories.get(label) and not allowed:
            log.warning(
                "detector label %r maps to %s, none of which is a category of this catalogue: "
                "its crops are searched over every category",
                label,
                list(label_categories[label]),
            )
        if allowed:
            rows_of[label] = np.zeros(len(codes), dtype=bool)
            rows_of[label][allowed + open_to_all] = True
    for row, label in enumerate(labels):
        if label in rows_of:
            mask[row] = rows_of[label]
    return mask


def unmapped_categories(label_categories: Mapping[str, Sequence[str]], codes: Mapping[str, int]) -> list[str]:
    """The categories of this catalogue (``codes``' keys) that no label of ``label_categories`` maps to."""
    mapped = {category for categories in label_categories.values() for category in categories}
    return [category for category in codes if category not in mapped]


def log_unmapped_categories(
    label_categories: Mapping[str, Sequence[str]], catalogue_codes: np.ndarray, codes: Mapping[str, int]
) -> list[str]:
    """Log how many categories and products (``catalogue_codes (G,)``) the label map does not cover, and
    return those categories (every crop may receive them, :func:`label_category_mask`)."""
    unmapped = unmapped_categories(label_categories, codes)
    if unmapped and label_categories:
        counts = np.bincount(catalogue_codes, minlength=len(codes))
        products = {category: int(counts[codes[category]]) for category in unmapped}
        log.warning(
            "category mask: %d of %d categories (%d of %d products) are in no detector label's list; every "
            "crop may receive them (docs/detection.md, 'Label maps for another taxonomy'): %s",
            len(unmapped),
            len(codes),
            sum(products.values()),
            len(catalogue_codes),
            list_examples([f"{c} ({n})" for c, n in sorted(products.items(), key=lambda x: -x[1])], 10),
        )
    return unmapped


def label_known(
    labels: Sequence[str], label_categories: Mapping[str, Sequence[str]], codes: Mapping[str, int]
) -> np.ndarray:
    """``(N,)`` bool: which labels map to at least one category of this catalogue (the others restrict
    nothing in :func:`label_category_mask`)."""
    return np.array(
        [any(category in codes for category in label_categories.get(label, ())) for label in labels],
        dtype=bool,
    )


def label_categories_in(
    labels: Sequence[str], label_categories: Mapping[str, Sequence[str]], codes: Mapping[str, int]
) -> list[tuple[str, ...]]:
    """``N`` tuples: the categories of this catalogue (``codes``' keys) each label maps to, in the map's
    order (empty for a label the map does not know): the crops' predicted categories."""
    return [tuple(c for c in label_categories.get(label, ()) if c in codes) for label in labels]


@dataclass(frozen=True)
class SlotSettings:
    """How crops share a bundle's slots.

    ``k`` slots per bundle; ``per_crop_k`` products searched per crop (default ``k``); ``strategy`` one of
    :data:`fashion_retrieval.search.slots.MERGE_STRATEGIES`; ``category_mask`` restricts each crop to its
    label's categories; ``label_weights`` weigh crops by label for ``quota`` (default 1).
    ``category_caps``: the most products of a category (by name) in the ``k`` slots, ``default_category_cap``
    for the others (``None``: uncapped); ``one_per_article``: at most one product per article (needs
    ``CatalogueMetadata.articles``). See :class:`fashion_retrieval.search.slots.SlotConstraints`.
    """

    k: int = 15
    per_crop_k: int | None = None
    strategy: MergeStrategy = "round_robin"
    category_mask: bool = True
    label_weights: Mapping[str, float] = field(default_factory=dict)
    category_caps: Mapping[str, int] = field(default_factory=dict)
    default_category_cap: int | None = None
    one_per_article: bool = False

    def constraints(
        self, codes: np.ndarray, code_of: Mapping[str, int], catalogue: CatalogueMetadata | None
    ) -> SlotConstraints | None:
        """The slot rules for catalogue category ``codes (G,)``; ``None`` when nothing is constrained."""
        articles = None
        if self.one_per_article:
            articles = None if catalogue is None else catalogue.articles
            if articles is None:
                raise ValueError(
                    "retrieval.one_per_article needs product articles (CatalogueMetadata.articles), which "
                    "this catalogue lacks; set retrieval.one_per_article=false"
                )
        return SlotConstraints.build(codes, code_of, self.category_caps, self.default_category_cap, articles)


def rank_bundles(*args: Any, **kwargs: Any) -> np.ndarray:
    """:func:`rank_bundles_sourced` without the scores and crops: ``(Q, k)`` int64 catalogue indices."""
    return rank_bundles_sourced(*args, **kwargs)[0]


def rank_bundles_sourced(
    crop_embeddings: np.ndarray,
    queries: GarmentQueries,
    num_bundles: int,
    bundle_sections: np.ndarray,
    index: EmbeddingIndex,
    catalogue_sections: np.ndarray,
    catalogue_categories: Sequence[str],
    label_categories: Mapping[str, Sequence[str]],
    settings: SlotSettings,
    reranker: RerankChain | None = None,
    catalogue: CatalogueMetadata | None = None,
    bundle_timestamps: np.ndarray | None = None,
    bundle_codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search every crop, re-rank its candidates and merge each bundle's lists.

    Args:
        crop_embeddings: ``(N, D)`` float32, L2-normalised, one row per crop of ``queries``.
        num_bundles: ``Q``; bundle_sections ``(Q,)`` int.
        index: the catalogue; catalogue_sections ``(G,)`` int; catalogue_categories ``G`` category names.
        label_categories: detector label -> categories it may match.
        reranker: applied to each crop's candidates before merging (default: none); its steps see the
            crops' labels as category masks whether or not ``settings.category_mask`` restricts the search.
        catalogue: packshot paths and articles for the re-ranking steps.
        bundle_timestamps, bundle_codes: ``(Q,)`` URL metadata of the bundles (float64 ms, int64 codes), for
            the metadata priors (:mod:`fashion_retrieval.rerank.priors`); each crop gets its bundle's.

    Returns:
        ``(Q, k)`` int64 catalogue indices, ``-1``-padded where the eligible catalogue is too small, and
        ``(Q, k)`` float32 their best score over the bundle's crops (the re-ranking chain's scale when it
        has steps, else cosine; ``nan`` for padding and for free slots filled outside the crops' lists),
        and ``(Q, k)`` int64 the crop (row of ``queries``) whose list gave each slot its score (``-1``
        where the score is ``nan``).
    """
    if len(crop_embeddings) != len(queries):
        raise ValueError(f"{len(crop_embeddings)} embeddings for {len(queries)} crops")
    codes, code_of = category_codes(catalogue_categories)
    mask = None
    if settings.category_mask:
        log_unmapped_categories(label_categories, codes, code_of)
        mask = label_category_mask(queries.labels, label_categories, code_of)
    eligibility = Eligibility(
        np.asarray(bundle_sections)[queries.bundle_rows],
        catalogue_sections,
        mask,
        codes if mask is not None else None,
    )
    reranker = reranker or RerankChain()
    context = None
    if reranker:
        context = RerankContext(
            Eligibility(
                eligibility.query_sections,
                catalogue_sections,
                label_category_mask(queries.labels, label_categories, code_of) if mask is None else mask,
                codes,
            ),
            queries.paths,
            queries.boxes,
            label_known(queries.labels, label_categories, code_of),
            catalogue or CatalogueMetadata(),
            query_bundles=queries.bundle_rows,
            query_timestamps=None if bundle_timestamps is None else bundle_timestamps[queries.bundle_rows],
            query_codes=None if bundle_codes is None else bundle_codes[queries.bundle_rows],
            query_categories=label_categories_in(queries.labels, label_categories, code_of),
        )
    crop_ids, crop_scores = reranker.search(
        index, crop_embeddings, eligibility, settings.per_crop_k or settings.k, context
    )
    weights = np.array([settings.label_weights.get(label, 1.0) for label in queries.labels])
    constraints = settings.constraints(codes, code_of, catalogue)
    result = np.full((num_bundles, settings.k), -1, dtype=np.int64)
    scores = np.full((num_bundles, settings.k), np.nan, dtype=np.float32)
    sources = np.full((num_bundles, settings.k), -1, dtype=np.int64)
    # Crops are grouped by bundle (GarmentQueries keeps them in bundle order).
    bounds = np.searchsorted(queries.bundle_rows, np.arange(num_bundles + 1))
    for bundle, (start, stop) in enumerate(itertools.pairwise(bounds)):
        if stop > start:
            result[bundle] = merge_garment_lists(
                crop_ids[start:stop],
                crop_scores[start:stop],
                settings.k,
                settings.strategy,
                weights[start:stop],
                constraints,
            )
            scores[bundle] = slot_scores(result[bundle], crop_ids[start:stop], crop_scores[start:stop])
            found = slot_sources(result[bundle], crop_ids[start:stop], crop_scores[start:stop])
            sources[bundle] = np.where(found >= 0, found + start, -1)
    short = np.flatnonzero((result < 0).any(axis=1) & (bounds[1:] > bounds[:-1]))
    if mask is not None and len(short):
        # The categories of a bundle's labels hold fewer than k products of its section: the free slots go
        # to the crops' best products of any category, so a submission still gets k products per bundle.
        crops_of_short = np.flatnonzero(np.isin(queries.bundle_rows, short))
        unmasked = Eligibility(
            np.asarray(bundle_sections)[queries.bundle_rows[crops_of_short]], catalogue_sections
        )
        extra_ids, extra_scores = search_eligible(
            index, crop_embeddings[crops_of_short], unmasked, settings.k
        )
        for bundle in short:
            rows = queries.bundle_rows[crops_of_short] == bundle
            extra = merge_garment_lists(extra_ids[rows], extra_scores[rows], 2 * settings.k, "score")
            result[bundle] = fill_free_slots(result[bundle], extra)
        log.info("%d bundles had fewer than %d products in their crops' categories", len(short), settings.k)
    return result, scores, sources


def fill_free_slots(ranked: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``ranked (k,)`` with its ``-1`` slots (at the end) filled by the products of ``extra`` it lacks."""
    kept = [int(p) for p in ranked if p >= 0]
    kept += [int(p) for p in extra if p >= 0 and p not in kept][: len(ranked) - len(kept)]
    return np.array(kept + [-1] * (len(ranked) - len(kept)), dtype=np.int64)
