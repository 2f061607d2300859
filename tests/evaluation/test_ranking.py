"""The section-aware ranking and scores every training-time validation and the baselines share."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.evaluation.ranking import evaluate_embeddings, rank_embeddings, restrict_to_seen


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference_topk(queries, gallery, query_sections, gallery_sections, k):
    """Slow and obvious: every eligible gallery row (same section or unknown) sorted by cosine."""
    rows = []
    for query, section in zip(queries, query_sections, strict=True):
        eligible = [g for g in range(len(gallery)) if gallery_sections[g] in (section, -1)]
        ranked = sorted(eligible, key=lambda g: -float(gallery[g] @ query))[:k]
        rows.append(ranked + [-1] * (k - len(ranked)))
    return np.asarray(rows)


def test_restrict_to_seen_renumbers_truth_into_the_kept_gallery():
    truth = [[0, 2], [1], [3, 4], [2]]
    query_seen = np.array([True, False, True, True])
    gallery_seen = np.array([True, False, True, False, True])
    queries, gallery, kept = restrict_to_seen(truth, query_seen, gallery_seen)
    assert queries.tolist() == [0, 2, 3]
    assert gallery.tolist() == [0, 2, 4]
    assert kept == [[0, 1], [2], [1]]  # gallery 3 was cut: query 2 keeps only gallery 4, now row 2


def test_rank_embeddings_is_the_section_aware_top_k():
    rng = np.random.default_rng(0)
    queries, gallery = unit_rows(rng, 12, 8), unit_rows(rng, 40, 8)
    query_sections = rng.integers(0, 3, 12)
    gallery_sections = rng.integers(-1, 3, 40)
    ids = [f"p{i}" for i in range(40)]
    got = rank_embeddings(queries, gallery, ids, query_sections, gallery_sections, 20)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, reference_topk(queries, gallery, query_sections, gallery_sections, 20))


def test_evaluate_embeddings_scores_hits_over_ground_truth_pairs():
    gallery = np.eye(4, dtype=np.float32)
    # Query 0 finds product 0 first; query 1 is closest to product 1, which section 1 may not receive.
    queries = np.array([[1, 0.2, 0, 0], [0, 1, 0.1, 0]], dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    sections_q, sections_g = np.array([0, 1]), np.array([0, 0, 1, -1])
    truth = [[0, 3], [2]]
    metrics = evaluate_embeddings(queries, gallery, list("abcd"), sections_q, sections_g, truth, ks=(1, 2))
    assert metrics["recall@1"] == pytest.approx(2 / 3)  # query 0: product 0; query 1: product 2
    assert metrics["hit_rate@1"] == pytest.approx(1.0)
    assert metrics["recall@2"] == pytest.approx(2 / 3)  # query 0's second is product 1 (0.2 > 0)
    assert not any(name.startswith("per_query_") for name in metrics)
