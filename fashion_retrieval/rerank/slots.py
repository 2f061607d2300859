"""Share a bundle's ``k`` slots among its garments: merge the ranked lists of its crops into one list.

Each crop of a bundle photo is searched on its own; these functions turn the ``C`` per-crop lists into the
bundle's ``k`` products. Crops come in the caller's order (detections by confidence), which breaks ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

MergeStrategy = Literal["round_robin", "score", "quota"]
MERGE_STRATEGIES: tuple[str, ...] = ("round_robin", "score", "quota")


def merge_round_robin(ids: np.ndarray, k: int) -> np.ndarray:
    """Each crop's best remaining product in turn: rank 1 of every crop, then rank 2, ...

    Args:
        ids: ``(C, K)`` int64 gallery indices per crop in rank order, ``-1`` padding.
        k: slots.

    Returns:
        ``(k,)`` int64, distinct, ``-1``-padded when the crops hold fewer distinct products.
    """
    # Column-major order visits rank 1 of every crop, then rank 2...
    return _first_distinct(np.asarray(ids, dtype=np.int64).T.reshape(-1), k)


def merge_by_score(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` products with the highest score over all crops (a product found by several crops counts
    once, at its best score); ties go to the earlier crop, then the better rank.

    ``ids (C, K)`` int64 with ``-1`` padding, ``scores (C, K)`` float; returns ``(k,)`` int64.
    """
    flat_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    flat_scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-flat_scores, kind="stable")  # row-major flattening: crop order breaks ties
    return _first_distinct(flat_ids[order], k)


def allocate_quotas(weights: Sequence[float], k: int) -> np.ndarray:
    """Split ``k`` slots in proportion to ``weights (C,)`` (largest remainder; ties to earlier crops).

    Returns ``(C,)`` int64 quotas summing to ``k`` (all zero when every weight is zero).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if (weights < 0).any():
        raise ValueError(f"crop weights must be non-negative, got {weights.tolist()}")
    total = weights.sum()
    if total <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = k * weights / total
    quotas = np.floor(exact).astype(np.int64)
    remainder = exact - quotas
    for crop in np.argsort(-remainder, kind="stable")[: k - int(quotas.sum())]:
        quotas[crop] += 1
    return quotas


def merge_with_quotas(ids: np.ndarray, scores: np.ndarray, k: int, weights: Sequence[float]) -> np.ndarray:
    """Each crop first fills its quota of ``k`` (:func:`allocate_quotas` of ``weights (C,)``) with its best
    products not taken yet, crop after crop; slots a crop cannot fill go to the best remaining scores.

    ``ids (C, K)`` int64 with ``-1`` padding, ``scores (C, K)`` float; returns ``(k,)`` int64.
    """
    ids = np.asarray(ids, dtype=np.int64)
    chosen: list[int] = []
    for crop, quota in enumerate(allocate_quotas(weights, k)):
        taken = 0
        for product in ids[crop]:
            if taken == quota:
                break
            if product >= 0 and product not in chosen:
                chosen.append(int(product))
                taken += 1
    rest = merge_by_score(ids, scores, k + len(chosen))
    chosen += [int(p) for p in rest if p >= 0 and p not in chosen][: k - len(chosen)]
    return np.array(chosen + [-1] * (k - len(chosen)), dtype=np.int64)


def merge_garment_lists(
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    strategy: MergeStrategy = "round_robin",
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """One bundle's ``k`` products from its ``C`` crops' lists ``ids``/``scores (C, K)`` with ``strategy``
    (``quota`` uses ``weights (C,)``, default equal). A single crop returns its own list."""
    if strategy == "round_robin":
        return merge_round_robin(ids, k)
    if strategy == "score":
        return merge_by_score(ids, scores, k)
    if strategy == "quota":
        return merge_with_quotas(ids, scores, k, np.ones(len(ids)) if weights is None else weights)
    raise ValueError(f"unknown merge strategy {strategy!r}; choose from {list(MERGE_STRATEGIES)}")


def _first_distinct(candidates: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` distinct non-negative values of ``candidates`` in order, ``-1``-padded: ``(k,)``."""
    valid = candidates[candidates >= 0]
    _, first = np.unique(valid, return_index=True)
    distinct = valid[np.sort(first)][:k]
    return np.concatenate([distinct, np.full(k - len(distinct), -1, dtype=np.int64)])
