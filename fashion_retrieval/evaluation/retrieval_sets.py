"""Retrieval on a :class:`~fashion_retrieval.data.readers.RetrievalSet` (queries, gallery, positives):
search the gallery leaving out each query's own row, and score the ranking (``precision@k``,
``hit_rate@k`` = CMC@k, ``recall@k`` and ``map@R`` overall; ``precision@k`` and ``map@R`` per query class).

Shared by the ``retrieval-eval`` stage, the real-photo scores of every stage
(:mod:`fashion_retrieval.evaluation.real_photos`) and the validation of reader training
(:class:`fashion_retrieval.callbacks.RetrievalSetEvaluator`); definitions in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.readers import ImageList, RetrievalSet
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    average_precision_at_r,
    hit_matrix,
    metrics_by_group,
    metrics_from_hits,
)
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex

Encode = Callable[[torch.Tensor], torch.Tensor]
OVERALL_METRICS = ("precision", "hit_rate", "recall")


def drop_own(found: np.ndarray, query_in_gallery: np.ndarray, k: int) -> np.ndarray:
    """``(Q, k)`` gallery indices: each row of ``found`` ``(Q, K >= k)`` without the query's own gallery
    row ``query_in_gallery[q]`` (``-1``: none), order kept; rows are cut to their first ``k`` others."""
    if found.shape[1] < k:
        raise ValueError(f"need at least k={k} columns to keep, got {found.shape[1]}")
    own = (found == query_in_gallery[:, None]) & (query_in_gallery[:, None] >= 0)
    # A stable sort on "is own" moves that one column to the end and keeps the others in rank order.
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def search_set(
    query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, k: int, data: RetrievalSet, spec: IndexSpec
) -> np.ndarray:
    """``(Q, min(k, G'))`` ranked gallery indices; ``G'`` is the gallery less the query's own row."""
    index = EmbeddingIndex(gallery_embeddings, [str(j) for j in range(len(gallery_embeddings))], spec=spec)
    if data.query_in_gallery is None:
        return index.search(query_embeddings, min(k, len(index)))[1]
    k = min(k, len(index) - 1)
    _, found = index.search(query_embeddings, k + 1)
    return drop_own(found, data.query_in_gallery, k)


def search_depth(data: RetrievalSet, ks: Sequence[int], with_map_at_r: bool) -> int:
    """How many items to retrieve per query: the largest ``k``, and every query's ``R`` for MAP@R."""
    depth = max(ks)
    if with_map_at_r:
        depth = max(depth, max(len(found) for found in data.positives))
    return depth


def set_metrics(
    ranked: np.ndarray, data: RetrievalSet, ks: Sequence[int], with_map_at_r: bool
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall metrics and ``{class: {precision@k, map@R}}`` per query class (``data.queries.categories``)."""
    truth = GroundTruth.from_lists(data.positives)
    hits = hit_matrix(ranked, truth)
    scores = metrics_from_hits(hits, truth.num_relevant, ks)
    overall = {f"{name}@{k}": scores[f"{name}@{k}"] for name in OVERALL_METRICS for k in ks}
    classes = np.asarray(data.queries.categories)
    grouped = metrics_by_group(ranked, truth, query_groups=classes, ks=ks)
    per_class = {
        str(label): {f"precision@{k}": values[f"precision@{k}"] for k in ks}
        for label, values in grouped.items()
    }
    if with_map_at_r:
        per_query = average_precision_at_r(hits, truth.num_relevant)
        overall["map@R"] = float(np.mean(per_query))
        for label in per_class:
            per_class[label]["map@R"] = float(np.mean(per_query[classes == label]))
    overall["num_queries"] = float(len(data.queries))
    overall["num_gallery"] = float(len(data.gallery))
    return overall, per_class


def score_set(
    query_embeddings: np.ndarray,
    gallery_embeddings: np.ndarray,
    data: RetrievalSet,
    ks: Sequence[int],
    with_map_at_r: bool,
    spec: IndexSpec,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Search ``(Q, D)`` queries in the ``(G, D)`` gallery (L2-normalised float32, rows as ``data``'s) and
    score the ranking (:func:`set_metrics`); cut-offs larger than the searchable gallery are left out."""
    ranked = search_set(
        query_embeddings, gallery_embeddings, search_depth(data, ks, with_map_at_r), data, spec
    )
    return set_metrics(ranked, data, [k for k in ks if k <= ranked.shape[1]], with_map_at_r)


def image_loader(images: ImageList, size: Sequence[int], batch_size: int, num_workers: int) -> DataLoader:
    """The images (their boxes when the reader gives them) resized to ``size = (H, W)``, in order."""
    return DataLoader(
        image_dataset(images, size), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )


def image_dataset(images: ImageList, size: Sequence[int]) -> ImageDataset:
    """The images (their boxes when the reader gives them) resized to ``size = (H, W)``, in order."""
    return ImageDataset([str(p) for p in images.paths], eval_transform(size), boxes=images.box_list())
