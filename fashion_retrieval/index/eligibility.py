"""Hard constraints on what a query may retrieve.

* Section: products never cross sections, so a bundle only receives products of its own section (or
  products whose section is unknown, i.e. never seen in a training match).
* Category (optional): a garment crop only receives products of the categories its detector label maps
  to (a shoe crop never returns a coat).

It sits with the index, below re-ranking and search: the re-ranking chain's steps, the training evaluator
and :mod:`fashion_retrieval.search` all apply the same constraints to FAISS candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_retrieval.data.catalogue import UNKNOWN_SECTION
from fashion_retrieval.index.faiss_index import PAD_SCORE, EmbeddingIndex

__all__ = [
    "UNKNOWN_SECTION",
    "Eligibility",
    "catalogue_section_array",
    "keep_allowed",
    "popular_within_section",
    "search_eligible",
    "search_within_sections",
]


@dataclass(frozen=True)
class Eligibility:
    """Which catalogue items each query may receive.

    ``query_sections (Q,)`` and ``catalogue_sections (G,)`` int (``UNKNOWN_SECTION`` in the catalogue matches
    any query); optionally ``query_categories (Q, C)`` bool, the category codes each query may receive,
    with ``catalogue_categories (G,)`` int codes in ``[0, C)``.
    """

    query_sections: np.ndarray
    catalogue_sections: np.ndarray
    query_categories: np.ndarray | None = None
    catalogue_categories: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.query_categories is None) != (self.catalogue_categories is None):
            raise ValueError("query_categories and catalogue_categories go together")
        if self.query_categories is not None and len(self.query_categories) != len(self.query_sections):
            raise ValueError(
                f"{len(self.query_categories)} category rows for {len(self.query_sections)} queries"
            )

    def rows(self, rows: np.ndarray) -> Eligibility:
        """The constraints of a subset of the queries."""
        categories = None if self.query_categories is None else self.query_categories[rows]
        return Eligibility(
            np.asarray(self.query_sections)[rows],
            self.catalogue_sections,
            categories,
            self.catalogue_categories,
        )

    def allowed(self, candidates: np.ndarray) -> np.ndarray:
        """``(Q, N)`` bool: which of the ``(Q, N)`` candidate catalogue indices (``-1`` padding) are
        allowed."""
        valid = candidates >= 0
        safe = np.where(valid, candidates, 0)
        sections = self.catalogue_sections[safe]
        query_sections = np.asarray(self.query_sections)[:, None]
        allowed = valid & ((sections == UNKNOWN_SECTION) | (sections == query_sections))
        return allowed & self.category_allowed(candidates)

    def category_allowed(self, candidates: np.ndarray) -> np.ndarray:
        """``(Q, N)`` bool: which candidates are of a category their query may receive (all ``True`` without
        a category mask; meaningless on ``-1`` padding)."""
        if self.query_categories is None or self.catalogue_categories is None:
            return np.ones(np.shape(candidates), dtype=bool)
        codes = self.catalogue_categories[np.where(candidates >= 0, candidates, 0)]
        return np.take_along_axis(self.query_categories, codes, axis=1)


def keep_allowed(
    candidates: np.ndarray, scores: np.ndarray, allowed: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` allowed candidates of each row, in rank order.

    Args:
        candidates: ``(Q, N)`` int64 catalogue indices in rank order, ``-1`` for padding.
        scores: ``(Q, N)`` float32 their scores.
        allowed: ``(Q, N)`` bool.
        k: how many to keep.

    Returns:
        ``(Q, k)`` int64 indices, ``-1``-padded where fewer than ``k`` qualify, and ``(Q, k)`` float32 scores
        (``PAD_SCORE`` on padding).
    """
    # A stable sort of "not allowed" moves allowed candidates to the front and keeps their rank order.
    order = np.argsort(~allowed, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(np.asarray(candidates, dtype=np.int64), order, axis=1)
    kept_scores = np.take_along_axis(np.asarray(scores, dtype=np.float32), order, axis=1)
    rejected = ~np.take_along_axis(allowed, order, axis=1)
    kept[rejected] = -1
    kept_scores[rejected] = PAD_SCORE
    if kept.shape[1] < k:
        pad = ((0, 0), (0, k - kept.shape[1]))
        kept = np.pad(kept, pad, constant_values=-1)
        kept_scores = np.pad(kept_scores, pad, constant_values=PAD_SCORE)
    return kept, kept_scores


def search_eligible(
    index: EmbeddingIndex, queries: np.ndarray, eligibility: Eligibility, k: int, depth: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` allowed catalogue items per query ``(Q, D)``: ``(Q, k)`` int64 indices (``-1``-padded when
    fewer qualify) and ``(Q, k)`` float32 scores.

    Searches ``depth`` candidates (default ``10 k``) and searches deeper only for the queries that the
    constraints left short, so the usual cost is one FAISS search.
    """
    depth = min(len(index), depth or 10 * k)
    scores, candidates = index.search(queries, depth)
    result, result_scores = keep_allowed(candidates, scores, eligibility.allowed(candidates), k)
    short = np.flatnonzero((result < 0).any(axis=1))
    while len(short) and depth < len(index):
        depth = min(len(index), depth * 4)
        scores, deeper = index.search(queries[short], depth)
        allowed = eligibility.rows(short).allowed(deeper)
        result[short], result_scores[short] = keep_allowed(deeper, scores, allowed, k)
        short = short[(result[short] < 0).any(axis=1)]
    return result, result_scores


def search_within_sections(
    index: EmbeddingIndex,
    queries: np.ndarray,
    query_sections: np.ndarray,
    catalogue_sections: np.ndarray,
    k: int,
    depth: int | None = None,
) -> np.ndarray:
    """Top-``k`` catalogue indices per query ``(Q, D)`` that respect sections; ``(Q, k)`` int64."""
    eligibility = Eligibility(np.asarray(query_sections), catalogue_sections)
    return search_eligible(index, queries, eligibility, k, depth)[0]


def catalogue_section_array(catalogue_ids: list[str], product_sections: dict[str, int]) -> np.ndarray:
    """``(G,)`` int64 section per catalogue item, ``UNKNOWN_SECTION`` where no training match tells it."""
    return np.array([product_sections.get(pid, UNKNOWN_SECTION) for pid in catalogue_ids], dtype=np.int64)


def popular_within_section(
    popularity: np.ndarray, catalogue_sections: np.ndarray, section: int, k: int
) -> np.ndarray:
    """``(k,)`` int64: the ``k`` most popular catalogue items ``section`` may receive (its own and unknown
    sections), ties in catalogue order, ``-1``-padded; for a bundle with nothing to search (no photo).

    ``popularity (G,)``: e.g. training matches per product; ``catalogue_sections (G,)`` int.
    """
    eligible = np.flatnonzero((catalogue_sections == section) | (catalogue_sections == UNKNOWN_SECTION))
    order = eligible[np.argsort(-np.asarray(popularity)[eligible], kind="stable")][:k]
    return np.concatenate([order, np.full(k - len(order), -1)]).astype(np.int64)
