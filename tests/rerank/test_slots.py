"""Slot merging against slow, obvious references."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.rerank.slots import (
    allocate_quotas,
    merge_by_score,
    merge_garment_lists,
    merge_round_robin,
    merge_with_quotas,
)


def padded(values: list[int], k: int) -> list[int]:
    return values[:k] + [-1] * (k - len(values[:k]))


def reference_round_robin(ids: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    for rank in range(ids.shape[1]):
        for crop in range(ids.shape[0]):
            product = int(ids[crop, rank])
            if product >= 0 and product not in chosen:
                chosen.append(product)
    return padded(chosen, k)


def reference_score(ids: np.ndarray, scores: np.ndarray, k: int) -> list[int]:
    best: dict[int, tuple[float, int, int]] = {}
    for crop in range(ids.shape[0]):
        for rank in range(ids.shape[1]):
            product = int(ids[crop, rank])
            if product < 0:
                continue
            key = (-float(scores[crop, rank]), crop, rank)
            if product not in best or key < best[product]:
                best[product] = key
    return padded(sorted(best, key=best.__getitem__), k)


def random_lists(seed: int, crops: int = 4, depth: int = 8, catalogue: int = 20):
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.permutation(catalogue)[:depth] for _ in range(crops)]).astype(np.int64)
    ids[rng.random(ids.shape) < 0.15] = -1
    scores = np.sort(rng.random(ids.shape).round(2), axis=1)[:, ::-1]  # descending per crop, some ties
    return ids, scores


@pytest.mark.parametrize("seed", range(8))
def test_round_robin_matches_reference(seed: int) -> None:
    ids, _ = random_lists(seed)
    for k in (1, 5, 15, 40):
        assert merge_round_robin(ids, k).tolist() == reference_round_robin(ids, k)


@pytest.mark.parametrize("seed", range(8))
def test_score_merge_matches_reference(seed: int) -> None:
    ids, scores = random_lists(seed)
    for k in (1, 5, 15, 40):
        assert merge_by_score(ids, scores, k).tolist() == reference_score(ids, scores, k)


def test_round_robin_shares_slots_between_garments() -> None:
    ids = np.array([[1, 2, 3], [7, 8, 9]])
    assert merge_round_robin(ids, 4).tolist() == [1, 7, 2, 8]


def test_score_merge_keeps_a_product_once_at_its_best_score() -> None:
    ids = np.array([[5, 1], [5, 2]])
    scores = np.array([[0.2, 0.1], [0.9, 0.3]])
    assert merge_by_score(ids, scores, 3).tolist() == [5, 2, 1]


def test_quotas_split_slots_by_weight_with_largest_remainder() -> None:
    assert allocate_quotas([1, 1, 1], 15).tolist() == [5, 5, 5]
    assert allocate_quotas([1, 1, 1, 1], 15).tolist() == [4, 4, 4, 3]
    assert allocate_quotas([2, 1], 15).tolist() == [10, 5]
    assert allocate_quotas([0, 0], 15).tolist() == [0, 0]
    with pytest.raises(ValueError, match="non-negative"):
        allocate_quotas([1, -1], 15)


def test_quota_merge_fills_quotas_then_best_scores() -> None:
    ids = np.array([[1, 2, 3, 4], [1, 8, -1, -1]])  # crop 1 has only one product of its own
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.95, 0.5, 0.0, 0.0]])
    merged = merge_with_quotas(ids, scores, 6, weights=[1, 1])
    # Crop 0 takes 1, 2, 3; crop 1's 1 is taken, so it takes 8; the free slots go by score: 4.
    assert merged.tolist() == [1, 2, 3, 8, 4, -1]


@pytest.mark.parametrize("strategy", ["round_robin", "score", "quota"])
def test_single_crop_returns_its_own_list(strategy: str) -> None:
    ids = np.array([[4, 2, 9, -1]])
    scores = np.array([[0.9, 0.5, 0.1, -1.0]])
    assert merge_garment_lists(ids, scores, 3, strategy).tolist() == [4, 2, 9]
    assert merge_garment_lists(ids, scores, 5, strategy).tolist() == [4, 2, 9, -1, -1]


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown merge strategy 'best'"):
        merge_garment_lists(np.zeros((1, 1), np.int64), np.zeros((1, 1)), 1, "best")  # type: ignore[arg-type]
