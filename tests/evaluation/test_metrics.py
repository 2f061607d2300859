from __future__ import annotations

import math

import numpy as np
import pytest

from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    average_precision_at_r,
    flatten_groups,
    grouped_retrieval_metrics,
    hit_matrix,
    map_at_r,
    metrics_by_group,
    metrics_from_hits,
    retrieval_metrics,
)

# --- slow, obvious reference ----------------------------------------------------------------------


def reference_hits(topk: list[list[int]], truth: list[list[int]]) -> list[list[bool]]:
    rows = []
    for retrieved, relevant in zip(topk, truth, strict=True):
        seen: set[int] = set()
        row = []
        for idx in retrieved:
            row.append(idx >= 0 and idx in relevant and idx not in seen)
            seen.add(idx)
        rows.append(row)
    return rows


def reference_metrics(topk: list[list[int]], truth: list[list[int]], ks: list[int]) -> dict[str, float]:
    hits = reference_hits(topk, truth)
    out: dict[str, float] = {}
    evaluated = [q for q in range(len(truth)) if len(truth[q]) > 0]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    for k in ks:
        total_hits = sum(sum(hits[q][:k]) for q in range(len(truth)))
        total_truth = sum(len(t) for t in truth)
        out[f"recall@{k}"] = total_hits / total_truth if total_truth else math.nan
        out[f"per_query_recall@{k}"] = mean([sum(hits[q][:k]) / len(truth[q]) for q in evaluated])
        out[f"hit_rate@{k}"] = mean([1.0 if any(hits[q][:k]) else 0.0 for q in evaluated])
        out[f"precision@{k}"] = mean([sum(hits[q][:k]) / k for q in evaluated])
        aps = []
        for q in evaluated:
            found, total = 0, 0.0
            for rank in range(k):
                if hits[q][rank]:
                    found += 1
                    total += found / (rank + 1)
            aps.append(total / min(k, len(truth[q])))
        out[f"map@{k}"] = mean(aps)
        ndcgs = []
        for q in evaluated:
            dcg = sum(1 / math.log2(rank + 2) for rank in range(k) if hits[q][rank])
            ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(truth[q]))))
            ndcgs.append(dcg / ideal)
        out[f"ndcg@{k}"] = mean(ndcgs)
    out["num_queries"] = float(len(truth))
    out["num_queries_without_truth"] = float(len(truth) - len(evaluated))
    return out


def reference_category_metrics(
    topk: list[list[int]], truth: list[list[int]], category: list[str], ks: list[int]
) -> dict[str, dict[str, float]]:
    """Category ``c``: the queries with a ``c`` pair, their truth cut to ``c`` and every other item masked to
    padding, scored by ``reference_metrics``."""
    out = {}
    for c in sorted({category[item] for row in truth for item in row}):
        rows = [q for q in range(len(truth)) if any(category[item] == c for item in truth[q])]
        masked = [[idx if idx >= 0 and category[idx] == c else -1 for idx in topk[q]] for q in rows]
        kept = [[item for item in truth[q] if category[item] == c] for q in rows]
        out[c] = reference_metrics(masked, kept, ks)
    return out


def random_case(
    rng: np.random.Generator, num_queries: int, width: int, gallery: int
) -> tuple[list[list[int]], list[list[int]]]:
    truth = []
    topk = []
    for _ in range(num_queries):
        n_rel = int(rng.integers(0, min(7, gallery) + 1))
        relevant = [int(x) for x in rng.choice(gallery, size=n_rel, replace=False)]
        truth.append(relevant)
        row = []
        for _ in range(width):
            # Mix of relevant items, random items (with repeats) and padding.
            u = rng.random()
            if relevant and u < 0.35:
                row.append(int(rng.choice(relevant)))
            elif u < 0.9:
                row.append(int(rng.integers(0, gallery)))
            else:
                row.append(-1)
        if rng.random() < 0.3:
            # FAISS-style trailing padding.
            cut = int(rng.integers(0, width + 1))
            row = row[:cut] + [-1] * (width - cut)
        topk.append(row)
    return topk, truth


def assert_metrics_close(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, abs=1e-9, rel=0), key


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("num_queries", "width", "gallery"), [(1, 1, 3), (7, 5, 10), (50, 20, 30), (200, 15, 500)]
)
def test_hit_matrix_and_metrics_match_reference(
    seed: int, num_queries: int, width: int, gallery: int
) -> None:
    rng = np.random.default_rng(seed * 1000 + num_queries)
    topk, truth = random_case(rng, num_queries, width, gallery)
    gt = GroundTruth.from_lists(truth)
    topk_arr = np.asarray(topk, dtype=np.int64)

    np.testing.assert_array_equal(
        hit_matrix(topk_arr, gt), np.asarray(reference_hits(topk, truth), dtype=bool)
    )
    ks = sorted({1, min(5, width), width})
    assert_metrics_close(retrieval_metrics(topk_arr, gt, ks=ks), reference_metrics(topk, truth, ks))


def test_duplicates_count_once_at_first_rank() -> None:
    gt = GroundTruth.from_lists([[3, 4]])
    hits = hit_matrix(np.array([[3, 3, -1, 4, 4]]), gt)
    np.testing.assert_array_equal(hits, [[True, False, False, True, False]])
    metrics = retrieval_metrics(np.array([[3, 3, -1, 4, 4]]), gt, ks=(1, 5))
    assert metrics["recall@5"] == 1.0
    assert metrics["precision@5"] == pytest.approx(2 / 5)
    assert metrics["map@5"] == pytest.approx((1 / 1 + 2 / 4) / 2)


def test_padding_never_hits_even_next_to_query_boundaries() -> None:
    # Query 0 owns the largest gallery index; -1 in query 1 must not be mistaken for it.
    gt = GroundTruth.from_lists([[9], [0]])
    hits = hit_matrix(np.array([[-1, 9], [-1, 0]]), gt)
    np.testing.assert_array_equal(hits, [[False, True], [False, True]])


def test_micro_recall_vs_macro_recall_and_queries_without_truth() -> None:
    gt = GroundTruth.from_lists([[0, 1, 2, 3], [5], []])
    topk = np.array([[0, 9], [5, 9], [7, 8]])
    metrics = retrieval_metrics(topk, gt, ks=(2,))
    assert metrics["recall@2"] == pytest.approx(2 / 5)
    assert metrics["per_query_recall@2"] == pytest.approx((1 / 4 + 1) / 2)
    assert metrics["hit_rate@2"] == 1.0
    assert metrics["map@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert metrics["num_queries_without_truth"] == 1.0
    assert metrics["num_queries"] == 3.0


def test_no_truth_at_all_gives_nan() -> None:
    metrics = retrieval_metrics(np.array([[1, 2]]), GroundTruth.from_lists([[]]), ks=(1,))
    assert math.isnan(metrics["recall@1"]) and math.isnan(metrics["map@1"])
    assert metrics["num_queries_without_truth"] == 1.0


def test_k_larger_than_width_raises() -> None:
    gt = GroundTruth.from_lists([[1]])
    with pytest.raises(ValueError, match=r"k=6 exceeds .* K=5"):
        retrieval_metrics(np.zeros((1, 5), dtype=np.int64), gt, ks=(1, 6))
    with pytest.raises(ValueError, match="k must be >= 1"):
        retrieval_metrics(np.zeros((1, 5), dtype=np.int64), gt, ks=(0,))


@pytest.mark.parametrize(
    ("topk", "match"),
    [
        (np.zeros(3, dtype=np.int64), "2-D"),
        (np.zeros((2, 3), dtype=np.int64), "2 rows but the ground truth has 1"),
        (np.full((1, 3), -2), "got -2 at \\[0, 0\\]"),
        (np.zeros((1, 3), dtype=np.float32), "integer"),
    ],
)
def test_bad_topk_raises(topk: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hit_matrix(topk, GroundTruth.from_lists([[1]]))


def test_ground_truth_validation() -> None:
    with pytest.raises(ValueError, match="item 2 more than once for query 1"):
        GroundTruth.from_lists([[1], [2, 2]])
    with pytest.raises(ValueError, match=">= 0"):
        GroundTruth.from_lists([[-1]])
    with pytest.raises(ValueError, match="start at 0"):
        GroundTruth(offsets=np.array([1, 2]), items=np.array([0, 1]))
    with pytest.raises(ValueError, match="non-decreasing"):
        GroundTruth(offsets=np.array([0, 2, 1, 2]), items=np.array([0, 1]))


def test_ground_truth_constructors_and_select() -> None:
    truth = [[4, 1], [], [7], [0, 2, 3]]
    gt = GroundTruth.from_lists(truth)
    np.testing.assert_array_equal(gt.offsets, [0, 2, 2, 3, 6])
    np.testing.assert_array_equal(gt.num_relevant, [2, 0, 1, 3])
    assert gt.num_queries == 4

    pairs = [(q, item) for q, row in enumerate(truth) for item in row]
    rng = np.random.default_rng(0)
    rng.shuffle(pairs)
    from_pairs = GroundTruth.from_pairs([p[0] for p in pairs], [p[1] for p in pairs], num_queries=4)
    np.testing.assert_array_equal(from_pairs.offsets, gt.offsets)
    for q in range(4):
        got = from_pairs.items[from_pairs.offsets[q] : from_pairs.offsets[q + 1]]
        assert sorted(got.tolist()) == sorted(truth[q])

    sub = gt.select([3, 0, 1])
    np.testing.assert_array_equal(sub.offsets, [0, 3, 5, 5])
    np.testing.assert_array_equal(sub.items, [0, 2, 3, 4, 1])
    with pytest.raises(ValueError):
        gt.items[0] = 5  # read-only


@pytest.mark.parametrize("seed", range(4))
def test_query_group_metrics_match_reference_per_group(seed: int) -> None:
    """Per section: each group is the reference metrics of its queries (with and without truth)."""
    rng = np.random.default_rng(seed)
    topk, truth = random_case(rng, 60, 10, 40)
    groups = rng.choice(np.array([3, 1, 2]), size=60)
    gt = GroundTruth.from_lists(truth)
    result = metrics_by_group(np.asarray(topk), gt, query_groups=groups, ks=(1, 10))
    assert list(result) == sorted(set(groups.tolist()))
    for label, metrics in result.items():
        rows = [q for q in range(60) if groups[q] == label]
        expected = reference_metrics([topk[q] for q in rows], [truth[q] for q in rows], [1, 10])
        assert_metrics_close(metrics, expected)
    assert all(type(label) is int for label in result)
    assert grouped_retrieval_metrics(np.asarray(topk), gt, groups, ks=(1, 10)) == result


@pytest.mark.parametrize("seed", range(4))
def test_item_group_metrics_match_reference_per_category(seed: int) -> None:
    """Per category: every metric against the masked reference, and recall against its literal definition,
    hits on the category's (query, item) pairs over its pairs, counted pair by pair."""
    rng = np.random.default_rng(100 + seed)
    gallery, width = 40, 10
    topk, truth = random_case(rng, 80, width, gallery)
    # One category has no pair at all: it must not appear.
    category = [str(c) for c in rng.choice(np.array(["SHIRT", "TROUSERS", "BAG"]), size=gallery)]
    category[-1] = "UNUSED"
    truth = [[item for item in row if item != gallery - 1] for row in truth]
    result = metrics_by_group(
        np.asarray(topk), GroundTruth.from_lists(truth), item_groups=category, ks=(1, 5, 10)
    )
    expected = reference_category_metrics(topk, truth, category, [1, 5, 10])
    assert list(result) == list(expected) and "UNUSED" not in result
    for label in expected:
        assert_metrics_close(result[label], expected[label])
        pairs = [(q, item) for q in range(len(truth)) for item in truth[q] if category[item] == label]
        found = sum(1 for q, item in pairs if item in topk[q][:5])
        assert result[label]["recall@5"] == pytest.approx(found / len(pairs), abs=1e-12)


def test_item_groups_hand_made() -> None:
    # Query 0 wants a shirt (1) and trousers (2, 3); query 1 only trousers (3); query 2 nothing.
    category = np.array(["SHIRT", "SHIRT", "TROUSERS", "TROUSERS"])
    gt = GroundTruth.from_lists([[1, 2, 3], [3], []])
    topk = np.array([[2, 0, 1], [0, 3, -1], [1, 2, 3]])
    result = metrics_by_group(topk, gt, item_groups=category, ks=(1, 3))
    assert result["SHIRT"]["recall@3"] == 1.0 and result["SHIRT"]["num_queries"] == 1.0
    assert result["SHIRT"]["map@3"] == pytest.approx(1 / 3)
    assert result["TROUSERS"]["recall@1"] == pytest.approx(1 / 3)  # one of its three pairs at rank 1
    assert result["TROUSERS"]["recall@3"] == pytest.approx(2 / 3)
    assert result["TROUSERS"]["map@3"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert result["TROUSERS"]["num_queries"] == 2.0


def test_flatten_groups_keys() -> None:
    grouped = {
        "TROUSERS": {"recall@15": 0.5, "map@15": 0.25, "num_queries": 3.0},
        2: {"recall@15": 1.0, "map@15": 1.0},
    }
    assert flatten_groups(grouped, "val_none/category", ["recall@15", "map@15"]) == {
        "val_none/category/TROUSERS/recall@15": 0.5,
        "val_none/category/TROUSERS/map@15": 0.25,
        "val_none/category/2/recall@15": 1.0,
        "val_none/category/2/map@15": 1.0,
    }


def test_metrics_by_group_argument_checks() -> None:
    topk, gt = np.zeros((2, 3), dtype=np.int64), GroundTruth.from_lists([[0], [4]])
    with pytest.raises(ValueError, match="exactly one of"):
        metrics_by_group(topk, gt, ks=(1,))
    with pytest.raises(ValueError, match="exactly one of"):
        metrics_by_group(topk, gt, query_groups=[0, 1], item_groups=list(range(5)), ks=(1,))
    with pytest.raises(ValueError, match=r"item_groups must be 1-D .* \(> 4\), got shape \(4,\)"):
        metrics_by_group(topk, gt, item_groups=list(range(4)), ks=(1,))


def test_ndcg_hand_made() -> None:
    # R = 3 > k = 2: the ideal fills both ranks, so hits at ranks 1 and 2 give exactly 1.
    gt = GroundTruth.from_lists([[0, 1, 2], [5]])
    topk = np.array([[0, 1, 9], [9, 5, 5]])
    metrics = retrieval_metrics(topk, gt, ks=(2, 3))
    assert metrics["ndcg@2"] == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    ideal_3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["ndcg@3"] == pytest.approx(((1 + 1 / math.log2(3)) / ideal_3 + 1 / math.log2(3)) / 2)


def test_grouped_metrics_rejects_wrong_group_length() -> None:
    with pytest.raises(ValueError, match="groups must have shape"):
        grouped_retrieval_metrics(
            np.zeros((2, 3), dtype=np.int64), GroundTruth.from_lists([[0], [1]]), [1], ks=(1,)
        )


def test_metrics_from_hits_shape_checks() -> None:
    with pytest.raises(ValueError, match="num_relevant must have shape"):
        metrics_from_hits(np.zeros((2, 3), dtype=bool), np.array([1]), ks=(1,))


@pytest.mark.parametrize("seed", range(3))
def test_cross_check_with_torchmetrics(seed: int) -> None:
    """Every metric against ``torchmetrics.functional.retrieval`` (1.9) on random rows with repeats, padding
    and queries without truth, to 1e-6.

    torchmetrics scores one query's whole gallery by ``preds``, so each row becomes a full ranking it reads
    exactly as we read the row: column ``j`` gets score ``K - j``, given to the item there if it is its first
    occurrence, otherwise to a dummy gallery item that is never relevant (so repeats and padding keep their
    rank and count as misses, as in ours); every other item scores 0, below rank ``K`` (precision, recall
    and AP also drop targets with ``preds <= 0``). Conventions that differ, and how they are reconciled:

    * ``retrieval_recall`` is per query (hits / R): our ``per_query_recall``; the challenge's micro recall is
      ``sum_q R_q * recall_q / sum_q R_q`` of it.
    * ``retrieval_average_precision`` with ``top_k`` divides by the hits found in the first k, ours by
      ``min(k, R)``: theirs is rescaled by ``hits / min(k, R)``.
    * torchmetrics scores a query without truth 0 (nDCG, recall, AP, precision) while we leave it out of the
      averages: only queries with truth are passed to it.
    """
    torch = pytest.importorskip("torch")
    retrieval = pytest.importorskip("torchmetrics.functional.retrieval")

    rng = np.random.default_rng(seed)
    gallery, width = 30, 12
    topk, truth = random_case(rng, 80, width, gallery)
    topk_arr = np.asarray(topk)
    gt = GroundTruth.from_lists(truth)
    hits = hit_matrix(topk_arr, gt)
    evaluated = [q for q in range(len(truth)) if truth[q]]
    assert len(evaluated) < len(truth), "the case must hold queries without truth"

    def ranking(q: int) -> tuple[torch.Tensor, torch.Tensor]:
        preds = torch.zeros(gallery + width, dtype=torch.float64)
        seen: set[int] = set()
        for col, idx in enumerate(topk[q]):
            first = idx >= 0 and idx not in seen
            preds[idx if first else gallery + col] = float(width - col)
            seen.add(idx)
        target = torch.zeros(gallery + width, dtype=torch.bool)
        target[truth[q]] = True
        return preds, target

    for k in (1, 4, width):
        theirs: dict[str, list[float]] = {
            "recall": [],
            "hit_rate": [],
            "precision": [],
            "map": [],
            "ndcg": [],
        }
        for q in evaluated:
            preds, target = ranking(q)
            theirs["recall"].append(float(retrieval.retrieval_recall(preds, target, top_k=k)))
            theirs["hit_rate"].append(float(retrieval.retrieval_hit_rate(preds, target, top_k=k)))
            theirs["precision"].append(float(retrieval.retrieval_precision(preds, target, top_k=k)))
            ap = float(retrieval.retrieval_average_precision(preds, target, top_k=k))
            theirs["map"].append(ap * int(hits[q, :k].sum()) / min(k, len(truth[q])))
            theirs["ndcg"].append(float(retrieval.retrieval_normalized_dcg(preds, target, top_k=k)))
        ours = retrieval_metrics(topk_arr, gt, ks=(k,))
        relevant = np.array([len(truth[q]) for q in evaluated], dtype=np.float64)
        micro = float(np.dot(theirs["recall"], relevant) / relevant.sum())
        assert ours[f"recall@{k}"] == pytest.approx(micro, abs=1e-6)
        assert ours[f"per_query_recall@{k}"] == pytest.approx(np.mean(theirs["recall"]), abs=1e-6)
        assert ours[f"hit_rate@{k}"] == pytest.approx(np.mean(theirs["hit_rate"]), abs=1e-6)
        assert ours[f"precision@{k}"] == pytest.approx(np.mean(theirs["precision"]), abs=1e-6)
        assert ours[f"map@{k}"] == pytest.approx(np.mean(theirs["map"]), abs=1e-6)
        assert ours[f"ndcg@{k}"] == pytest.approx(np.mean(theirs["ndcg"]), abs=1e-6)


# --- MAP@R --------------------------------------------------------------------------------------------


def reference_map_at_r(topk: list[list[int]], truth: list[list[int]]) -> float:
    """Musgrave et al.'s MAP@R by the definition: each query's first R ranks, one rank at a time."""
    hits = reference_hits(topk, truth)
    aps = []
    for q, relevant in enumerate(truth):
        if not relevant:
            continue
        r, found, total = len(relevant), 0, 0.0
        for rank in range(r):
            if hits[q][rank]:
                found += 1
                total += found / (rank + 1)
        aps.append(total / r)
    return sum(aps) / len(aps) if aps else math.nan


@pytest.mark.parametrize("seed", range(4))
def test_map_at_r_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    topk, truth = random_case(rng, 60, 12, 25)
    gt = GroundTruth.from_lists(truth)
    assert map_at_r(np.asarray(topk), gt) == pytest.approx(reference_map_at_r(topk, truth), abs=1e-12)
    per_query = average_precision_at_r(hit_matrix(np.asarray(topk), gt), gt.num_relevant)
    assert np.isnan(per_query[[not t for t in truth]]).all()


def test_map_at_r_hand_made() -> None:
    # R = 2: hits at ranks 1 and 3, but rank 3 is past R, so AP@R = (1/1) / 2; R = 1 hit at rank 1: 1.
    gt = GroundTruth.from_lists([[4, 7], [3], []])
    topk = np.array([[4, 0, 7], [3, 1, 2], [5, 6, -1]])
    np.testing.assert_allclose(
        average_precision_at_r(hit_matrix(topk, gt), gt.num_relevant), [0.5, 1.0, np.nan]
    )
    assert map_at_r(topk, gt) == pytest.approx(0.75)
    assert math.isnan(map_at_r(topk[2:], GroundTruth.from_lists([[]])))


def test_map_at_r_needs_r_columns() -> None:
    gt = GroundTruth.from_lists([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"up to R=3 relevant items but only K=2"):
        map_at_r(np.array([[0, 1]]), gt)


@pytest.mark.parametrize("seed", range(3))
def test_map_at_r_against_torchmetrics(seed: int) -> None:
    """AP@R is torchmetrics' ``retrieval_average_precision`` with ``top_k = R``, rescaled from its divisor
    (the hits found in the first k) to ours (R), on full rankings without repeats or padding."""
    torch = pytest.importorskip("torch")
    retrieval = pytest.importorskip("torchmetrics.functional.retrieval")
    rng = np.random.default_rng(seed)
    gallery = 40
    sizes = rng.integers(1, 12, size=50)
    truth = [sorted(rng.choice(gallery, size=int(n), replace=False).tolist()) for n in sizes]
    topk = np.stack([rng.permutation(gallery) for _ in truth])
    gt = GroundTruth.from_lists(truth)
    hits = hit_matrix(topk, gt)
    theirs = []
    for q, relevant in enumerate(truth):
        preds = torch.zeros(gallery, dtype=torch.float64)
        preds[torch.as_tensor(topk[q])] = torch.arange(gallery, 0, -1, dtype=torch.float64)
        target = torch.zeros(gallery, dtype=torch.bool)
        target[relevant] = True
        r = len(relevant)
        ap = float(retrieval.retrieval_average_precision(preds, target, top_k=r))
        theirs.append(ap * int(hits[q, :r].sum()) / r)
    assert map_at_r(topk, gt) == pytest.approx(float(np.mean(theirs)), abs=1e-6)
