from __future__ import annotations

import math

import numpy as np
import pytest

from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    grouped_retrieval_metrics,
    hit_matrix,
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
    out["num_queries"] = float(len(truth))
    out["num_queries_without_truth"] = float(len(truth) - len(evaluated))
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
def test_grouped_metrics_match_reference_per_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    topk, truth = random_case(rng, 60, 10, 40)
    groups = rng.choice(np.array(["bottom", "shoes", "top"]), size=60)
    result = grouped_retrieval_metrics(np.asarray(topk), GroundTruth.from_lists(truth), groups, ks=(1, 10))
    assert list(result) == sorted(set(groups.tolist()))
    for label, metrics in result.items():
        rows = [q for q in range(60) if groups[q] == label]
        expected = reference_metrics([topk[q] for q in rows], [truth[q] for q in rows], [1, 10])
        assert_metrics_close(metrics, expected)
    assert all(isinstance(label, str) for label in result)


def test_grouped_metrics_rejects_wrong_group_length() -> None:
    with pytest.raises(ValueError, match="groups must have shape"):
        grouped_retrieval_metrics(
            np.zeros((2, 3), dtype=np.int64), GroundTruth.from_lists([[0], [1]]), [1], ks=(1,)
        )


def test_metrics_from_hits_shape_checks() -> None:
    with pytest.raises(ValueError, match="num_relevant must have shape"):
        metrics_from_hits(np.zeros((2, 3), dtype=bool), np.array([1]), ks=(1,))


def test_cross_check_with_torchmetrics() -> None:
    torch = pytest.importorskip("torch")
    retrieval = pytest.importorskip("torchmetrics.functional.retrieval")

    rng = np.random.default_rng(123)
    gallery, width = 25, 8
    topk, truth = random_case(rng, 60, width, gallery)
    for q in range(0, 60, 2):
        # Every other row distinct and unpadded, relevant items first-ish, so AP is checked on many rows.
        others = [int(x) for x in rng.permutation(gallery) if int(x) not in truth[q]]
        topk[q] = [int(x) for x in rng.permutation(truth[q] + others[: width - len(truth[q])])][:width]
    topk_arr = np.asarray(topk)
    gt = GroundTruth.from_lists(truth)
    hits = hit_matrix(topk_arr, gt)
    evaluated = [q for q in range(len(topk)) if truth[q]]
    for k in (1, 3, width):
        recalls, precisions, aps, dense = [], [], [], []
        for q in evaluated:
            # torchmetrics ranks the whole gallery by score: the distinct items of our first k columns get
            # decreasing positive scores, everything else 0, which torchmetrics 1.9 never counts as relevant
            # (it masks target where preds <= 0) -- the same as our -1 padding.
            firsts: list[int] = []
            for idx in topk[q][:k]:
                if idx >= 0 and idx not in firsts:
                    firsts.append(idx)
            preds = torch.zeros(gallery, dtype=torch.float64)
            for rank, idx in enumerate(firsts):
                preds[idx] = float(len(firsts) - rank)
            target = torch.zeros(gallery, dtype=torch.bool)
            target[truth[q]] = True
            # Both define recall@k as hits / R and precision@k as hits / k (adaptive_k=False).
            recalls.append(float(retrieval.retrieval_recall(preds, target, top_k=k)))
            precisions.append(float(retrieval.retrieval_precision(preds, target, top_k=k)))
            # AP differs twice: torchmetrics divides by the hits found in the top k, we by min(k, R)
            # (so rescale by hits / min(k, R)); and it ranks the compacted list, while our ranks keep the
            # columns taken by repeats and padding -- so compare AP only on rows whose first k columns are
            # distinct and real.
            if len(firsts) == k:
                dense.append(q)
                ap = float(retrieval.retrieval_average_precision(preds, target, top_k=k))
                aps.append(ap * int(hits[q, :k].sum()) / min(k, len(truth[q])))
        ours = retrieval_metrics(topk_arr, gt, ks=(k,))
        assert ours[f"per_query_recall@{k}"] == pytest.approx(np.mean(recalls), abs=1e-6)
        assert ours[f"precision@{k}"] == pytest.approx(np.mean(precisions), abs=1e-6)
        assert len(dense) >= 10
        ours_dense = retrieval_metrics(topk_arr[dense], gt.select(dense), ks=(k,))
        assert ours_dense[f"map@{k}"] == pytest.approx(np.mean(aps), abs=1e-6)
