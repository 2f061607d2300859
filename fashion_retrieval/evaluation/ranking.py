"""Scores of embeddings: the section-aware top-k of queries against a gallery and its challenge metrics.

Shared by the training-time validations (:class:`fashion_retrieval.callbacks.RetrievalEvaluator`,
:class:`fashion_retrieval.callbacks.FeatureAdapterEvaluator`) and the ``baselines`` stage, so a baseline,
a fine-tuned model and an adapter are scored by one search and one set of metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashion_retrieval.evaluation.metrics import GroundTruth, retrieval_metrics
from fashion_retrieval.index.eligibility import search_within_sections
from fashion_retrieval.index.faiss_index import EmbeddingIndex


def restrict_to_seen(
    truth: Sequence[Sequence[int]], query_seen: np.ndarray, gallery_seen: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Keep seen queries and seen gallery items; truth is renumbered into the kept gallery.

    Returns the kept query indices ``(Q',)``, the kept gallery indices ``(G',)`` and the new truth lists
    (a query whose products were all cut keeps an empty list, which the metrics skip).
    """
    queries = np.flatnonzero(query_seen)
    gallery = np.flatnonzero(gallery_seen)
    renumber = np.full(len(gallery_seen), -1, dtype=np.int64)
    renumber[gallery] = np.arange(len(gallery))
    kept_truth = [[int(renumber[g]) for g in truth[q] if renumber[g] >= 0] for q in queries]
    return queries, gallery, kept_truth


def evaluate_embeddings(
    query_embeddings: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_ids: Sequence[str],
    query_sections: np.ndarray,
    gallery_sections: np.ndarray,
    truth: Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 5, 15),
) -> dict[str, float]:
    """Section-aware top-k retrieval and metrics.

    Args:
        query_embeddings: ``(Q, D)`` float32, L2-normalised.
        gallery_embeddings: ``(G, D)`` float32, L2-normalised.
        gallery_ids: ``G`` product ids.
        query_sections: ``(Q,)`` section per query; gallery_sections ``(G,)`` (-1 unknown).
        truth: per query, the gallery indices of its products.
    """
    topk = rank_embeddings(
        query_embeddings, gallery_embeddings, gallery_ids, query_sections, gallery_sections, max(ks)
    )
    return score_ranking(topk, truth, ks)


def rank_embeddings(
    query_embeddings: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_ids: Sequence[str],
    query_sections: np.ndarray,
    gallery_sections: np.ndarray,
    k: int,
) -> np.ndarray:
    """Section-aware top-``k``: ``(Q, k)`` int64 gallery rows, ``-1`` padding (arguments as
    :func:`evaluate_embeddings`)."""
    index = EmbeddingIndex(gallery_embeddings, list(gallery_ids))
    return search_within_sections(index, query_embeddings, query_sections, gallery_sections, k)


def score_ranking(topk: np.ndarray, truth: Sequence[Sequence[int]], ks: Sequence[int]) -> dict[str, float]:
    """The overall metrics of a ``(Q, k)`` ranking against the per-query truth lists."""
    metrics = retrieval_metrics(topk, GroundTruth.from_lists(truth), ks)
    return {name: float(value) for name, value in metrics.items() if not name.startswith("per_query_")}
