"""Section constraint: products never cross sections, so a bundle only receives products of its own
section (or products whose section is unknown, i.e. never seen in a training match)."""

from __future__ import annotations

import numpy as np

from fashion_retrieval.index.faiss_index import EmbeddingIndex

UNKNOWN_SECTION = -1


def filter_by_section(
    candidates: np.ndarray, query_sections: np.ndarray, gallery_sections: np.ndarray, k: int
) -> np.ndarray:
    """Keep, in rank order, the first ``k`` candidates whose section is the query's or unknown.

    Args:
        candidates: ``(Q, N)`` int64 gallery indices in rank order, ``-1`` for padding.
        query_sections: ``(Q,)`` int section of each query.
        gallery_sections: ``(G,)`` int section of each gallery item, ``UNKNOWN_SECTION`` if unknown.
        k: how many to keep.

    Returns:
        ``(Q, k)`` int64 gallery indices, ``-1``-padded where fewer than ``k`` candidates qualify.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    valid = candidates >= 0
    sections = np.where(valid, gallery_sections[np.where(valid, candidates, 0)], UNKNOWN_SECTION - 1)
    allowed = valid & ((sections == UNKNOWN_SECTION) | (sections == np.asarray(query_sections)[:, None]))
    # A stable sort of "not allowed" moves allowed candidates to the front and keeps their rank order.
    order = np.argsort(~allowed, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(candidates, order, axis=1)
    kept[~np.take_along_axis(allowed, order, axis=1)] = -1
    if kept.shape[1] < k:
        kept = np.pad(kept, ((0, 0), (0, k - kept.shape[1])), constant_values=-1)
    return kept


def search_within_sections(
    index: EmbeddingIndex,
    queries: np.ndarray,
    query_sections: np.ndarray,
    gallery_sections: np.ndarray,
    k: int,
    depth: int | None = None,
) -> np.ndarray:
    """Top-``k`` gallery indices per query ``(Q, D)`` that respect sections; ``(Q, k)`` int64.

    Searches ``depth`` candidates (default ``10 k``) and searches deeper only for the queries that the
    filter left short, so the usual cost is one FAISS search.
    """
    query_sections = np.asarray(query_sections)
    depth = min(len(index), depth or 10 * k)
    _, candidates = index.search(queries, depth)
    result = filter_by_section(candidates, query_sections, gallery_sections, k)
    short = np.flatnonzero((result < 0).any(axis=1))
    while len(short) and depth < len(index):
        depth = min(len(index), depth * 4)
        _, deeper = index.search(queries[short], depth)
        result[short] = filter_by_section(deeper, query_sections[short], gallery_sections, k)
        short = short[(result[short] < 0).any(axis=1)]
    return result


def gallery_section_array(gallery_ids: list[str], product_sections: dict[str, int]) -> np.ndarray:
    """``(G,)`` int64 section per gallery item, ``UNKNOWN_SECTION`` where no training match tells it."""
    return np.array([product_sections.get(pid, UNKNOWN_SECTION) for pid in gallery_ids], dtype=np.int64)
