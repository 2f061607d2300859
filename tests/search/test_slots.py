"""Slot merging against slow, obvious references."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.search.slots import (
    SlotConstraints,
    allocate_quotas,
    merge_by_score,
    merge_garment_lists,
    merge_round_robin,
    merge_with_quotas,
    slot_scores,
    slot_sources,
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


def reference_constrained(order: list[int], k: int, categories, caps, articles) -> list[int]:
    chosen: list[int] = []
    skipped: list[int] = []
    for product in order:
        if product < 0 or product in chosen or product in skipped:
            continue
        in_category = sum(categories[p] == categories[product] for p in chosen) if caps is not None else 0
        capped = caps is not None and 0 <= caps[categories[product]] <= in_category
        repeated = articles is not None and any(articles[p] == articles[product] for p in chosen)
        (skipped if capped or repeated else chosen).append(product)
    return padded(chosen + skipped, k)


def random_constraints(seed: int, catalogue: int = 20) -> SlotConstraints:
    rng = np.random.default_rng(1000 + seed)
    categories = rng.integers(0, 4, size=catalogue)
    caps = rng.integers(-1, 3, size=4)
    caps[caps == 0] = 1
    articles = rng.integers(0, 12, size=catalogue)
    return SlotConstraints(categories, caps, articles if seed % 2 else None)


@pytest.mark.parametrize("seed", range(8))
def test_constrained_merges_match_reference(seed: int) -> None:
    ids, scores = random_lists(seed)
    rules = random_constraints(seed)
    round_robin_order = ids.T.reshape(-1).tolist()
    score_order = [p for p in reference_score(ids, scores, ids.size) if p >= 0]
    for k in (1, 5, 15, 40):
        expected = reference_constrained(round_robin_order, k, rules.categories, rules.caps, rules.articles)
        assert merge_round_robin(ids, k, rules).tolist() == expected
        expected = reference_constrained(score_order, k, rules.categories, rules.caps, rules.articles)
        assert merge_by_score(ids, scores, k, rules).tolist() == expected


def test_caps_and_articles_keep_the_slots_diverse_then_fill_the_rest() -> None:
    # Crop 0 finds dresses 1, 2, 3 (articles 1, 1, 2); crop 1 finds shoes 7, 8.
    categories = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])
    articles = np.arange(9)
    articles[2] = 1
    ids = np.array([[1, 2, 3], [7, 8, -1]])
    scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.0]])
    one_dress = SlotConstraints(categories, np.array([1, -1]), None)
    assert merge_round_robin(ids, 3, one_dress).tolist() == [1, 7, 8]
    assert merge_round_robin(ids, 5, one_dress).tolist() == [1, 7, 8, 2, 3]  # soft: skipped ones fill last
    per_article = SlotConstraints(None, None, articles)
    assert merge_by_score(ids, scores, 4, per_article).tolist() == [1, 3, 7, 8]
    quota = merge_with_quotas(
        ids, scores, 4, [1, 1], SlotConstraints(categories, np.array([1, -1]), articles)
    )
    assert quota.tolist() == [1, 7, 8, 2]


def test_constraints_are_built_from_names_and_checked() -> None:
    code_of = {"DRESS": 0, "SHOES": 1}
    categories = np.array([0, 1, 1])
    assert SlotConstraints.build(categories, code_of) is None
    rules = SlotConstraints.build(categories, code_of, {"SHOES": 2}, default_cap=4)
    assert rules is not None and rules.caps.tolist() == [4, 2] and rules.articles is None
    rules = SlotConstraints.build(categories, code_of, articles=np.array([5, 5, 6]))
    assert rules is not None and rules.caps is None and rules.articles.tolist() == [5, 5, 6]
    with pytest.raises(ValueError, match="HATS"):
        SlotConstraints.build(categories, code_of, {"HATS": 1})
    with pytest.raises(ValueError, match="positive"):
        SlotConstraints.build(categories, code_of, {"DRESS": 0})


def test_slot_scores_are_the_best_over_crops() -> None:
    ids = np.array([[5, 1], [5, 2]])
    scores = np.array([[0.2, 0.1], [0.9, 0.3]])
    np.testing.assert_allclose(slot_scores(np.array([5, 2, 9, -1]), ids, scores), [0.9, 0.3, np.nan, np.nan])


def reference_sources(slots: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> list[int]:
    """The crop of each slot's best score, by loops (first crop on ties; -1: no crop lists it)."""
    sources = []
    for product in slots.tolist():
        best, source = -np.inf, -1
        for crop, (row, values) in enumerate(zip(ids.tolist(), scores.tolist())):
            for candidate, score in zip(row, values):
                if product >= 0 and candidate == product and score > best:
                    best, source = score, crop
        sources.append(source)
    return sources


@pytest.mark.parametrize("seed", range(5))
def test_slot_sources_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 12, size=(4, 6))
    scores = rng.choice([0.1, 0.5, 0.9], size=(4, 6))  # ties between crops
    slots = np.concatenate([rng.permutation(14)[:9] - 1, [-1]])  # -1 padding, 12 and 13 in no list
    sources = slot_sources(slots, ids, scores)
    assert sources.tolist() == reference_sources(slots, ids, scores)
    found = sources >= 0
    np.testing.assert_array_equal(found, ~np.isnan(slot_scores(slots, ids, scores)))


def test_slot_sources_name_the_crop_that_gave_the_score() -> None:
    ids = np.array([[5, 1], [5, 2]])
    scores = np.array([[0.2, 0.1], [0.9, 0.3]])
    assert slot_sources(np.array([5, 1, 2, 9, -1]), ids, scores).tolist() == [1, 0, 1, -1, -1]
    assert slot_sources(np.array([3]), np.empty((0, 2), np.int64), np.empty((0, 2))).tolist() == [-1]
