"""One scoring protocol for text and composed queries: ranking, own-image exclusion, metrics, fusion."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.data.text_queries import TextQueries
from fashion_retrieval.evaluation.text_retrieval import (
    class_text_scores,
    expected_random_ap_at_r,
    model_scores,
    rank_scores,
    score_queries,
)
from fashion_retrieval.models.fusion import composed_embeddings


def test_rank_scores_breaks_ties_by_row_and_drops_the_query_image() -> None:
    scores = np.array([[0.1, 0.9, 0.9, 0.5], [0.8, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(rank_scores(scores, 3), [[1, 2, 3], [0, 3, 2]])
    np.testing.assert_array_equal(rank_scores(scores, 10, exclude=[1, 3]), [[2, 3, 0], [0, 2, 1]])


def test_score_queries_by_hand() -> None:
    queries = TextQueries(catalogue_ids=["a", "b", "c", "d"], texts=["q0", "q1"], truth=[[0, 2], [3]])
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])  # q0 ranks a, b, c, d; q1 ranks d first
    metrics = score_queries(scores, queries, ks=[1, 2])
    assert metrics["recall@1"] == pytest.approx(2 / 3)  # a and d of 3 relevant
    assert metrics["recall@2"] == pytest.approx(2 / 3) and metrics["hit_rate@1"] == 1.0
    # AP@R: q0 has R = 2 and hits at rank 1 only -> 1/2; q1 -> 1.
    assert metrics["map@R"] == pytest.approx(0.75)
    assert metrics["num_queries"] == 2.0 and metrics["num_gallery"] == 4.0
    with pytest.raises(ValueError, match=r"scores \(2, 3\) for 2 queries and 4 products"):
        score_queries(scores[:, :3], queries, ks=[1])


def test_composed_query_never_finds_its_own_image() -> None:
    queries = TextQueries(catalogue_ids=["a", "b", "c"], texts=["in red"], truth=[[1]], image_rows=[0])
    metrics = score_queries(np.array([[1.0, 0.5, 0.6]]), queries, ks=[1])
    assert metrics["recall@1"] == 0.0  # c outranks b once a is left out
    metrics = score_queries(np.array([[1.0, 0.6, 0.5]]), queries, ks=[1])
    assert metrics["recall@1"] == 1.0


def test_composed_embeddings_are_the_normalised_sum() -> None:
    image = np.array([[1.0, 0.0, 0.0]])
    text = np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(composed_embeddings(image, text), [[2**-0.5, 2**-0.5, 0.0]], atol=1e-7)
    np.testing.assert_allclose(composed_embeddings(image, text, text_weight=0.0), image)


class BagOfWords:
    """A fake text-image model: texts and products embed as one-hot colour words (products by file name)."""

    WORDS = ("red", "navy", "green")

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.array([[float(w in t) for w in self.WORDS] for t in texts], np.float32) + 1e-3

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        vectors = self._embed(texts)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_products(self, image_paths: list[str]) -> np.ndarray:
        return self.embed_texts(image_paths)


def test_a_model_is_scored_through_embed_texts_and_embed_products() -> None:
    model = BagOfWords()
    products = model.embed_products(["red.jpg", "navy.jpg", "green.jpg"])
    text_queries = TextQueries(["r", "n", "g"], ["navy shirt", "green shirt"], [[1], [2]])
    assert score_queries(model_scores(model, text_queries, products), text_queries, [1])["recall@1"] == 1.0
    composed = TextQueries(["r", "n", "g"], ["in green", "in red"], [[2], [0]], image_rows=[0, 1])
    scores = model_scores(model, composed, products, text_weight=2.0)
    assert scores.shape == (2, 3)
    assert score_queries(scores, composed, [1])["recall@1"] == 1.0


class SwapFusion:
    """A "trained head" that ignores the image: fused = the text."""

    def fuse(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        return np.asarray(text, np.float32)


def test_a_fusion_head_replaces_the_arithmetic_of_composed_queries() -> None:
    model = BagOfWords()
    products = model.embed_products(["red.jpg", "navy.jpg", "green.jpg"])
    composed = TextQueries(["r", "n", "g"], ["in green", "in red"], [[2], [0]], image_rows=[0, 1])
    fused = model_scores(model, composed, products, fuse=SwapFusion())
    np.testing.assert_allclose(fused, model.embed_texts(composed.texts) @ products.T)
    assert not np.allclose(fused, model_scores(model, composed, products))


@pytest.mark.parametrize(("r", "n"), [(1, 5), (3, 10), (4, 4), (7, 40)])
def test_expected_random_ap_at_r_matches_the_mean_over_permutations(r: int, n: int) -> None:
    rng = np.random.default_rng(r * 100 + n)
    relevant = np.zeros(n, bool)
    relevant[:r] = True
    hits = relevant[np.argsort(rng.random((20000, n)), axis=1)][:, :r]  # 20,000 random rankings' first R
    ap = (np.cumsum(hits, axis=1) / np.arange(1, r + 1) * hits).sum(axis=1) / r
    assert expected_random_ap_at_r(r, n) == pytest.approx(ap.mean(), abs=0.01)
    with pytest.raises(ValueError, match="0 < R <= N"):
        expected_random_ap_at_r(0, n)


def test_class_text_scores_by_hand() -> None:
    # 5 photos: classes a a b b b; the "a" text finds photo 0, then 2 (a "b"), then 1; the "b" text finds
    # its three photos first.
    photos = np.eye(5, dtype=np.float32)
    texts = np.array([[0.9, 0.5, 0.7, 0.0, 0.0], [0.0, 0.0, 0.6, 0.8, 0.7]], np.float32)
    out = class_text_scores(texts, photos, ["a", "a", "b", "b", "b"], k=2)
    assert out["a"]["precision@2"] == 0.5 and out["a"]["map@R"] == pytest.approx(0.5)
    assert out["b"]["precision@2"] == 1.0 and out["b"]["map@R"] == pytest.approx(1.0)
    assert out["a"]["num_relevant"] == 2 and out["b"]["chance/precision@2"] == pytest.approx(0.6)
    assert out["a"]["chance/map@R"] == pytest.approx(expected_random_ap_at_r(2, 5))
    with pytest.raises(ValueError, match="2 texts for 3 classes"):
        class_text_scores(texts, photos, ["a", "b", "c", "c", "c"])
