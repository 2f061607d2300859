"""The text re-ranking step: its pure functions against slow references, and the step with a stand-in dual
encoder (texts and images to known vectors) in both modes; the trained tower through validate and infer is
tests/pipelines/test_text_rerank.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from fashion_retrieval.index.eligibility import Eligibility
from fashion_retrieval.index.faiss_index import PAD_SCORE
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankContext
from fashion_retrieval.rerank.text import (
    TextBonus,
    add_text_bonus,
    candidate_text_similarity,
    mean_text_embeddings,
)
from tests.test_configs import compose_config


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def test_candidate_text_similarity_matches_reference() -> None:
    rng = np.random.default_rng(0)
    products = unit(rng.normal(size=(20, 5)))
    products[3] = np.nan  # a product without text
    candidates = np.stack([rng.permutation(20)[:8] for _ in range(4)])
    candidates[1, -3:] = -1
    queries = [unit(rng.normal(size=(k, 5))) for k in (2, 1, 0, 3)]
    found = candidate_text_similarity(queries, products, candidates)
    for q, row in enumerate(candidates):
        for n, g in enumerate(row):
            if g < 0 or len(queries[q]) == 0 or g == 3:
                assert np.isnan(found[q, n])
            else:
                best = max(float(np.dot(query, products[g])) for query in queries[q])
                assert found[q, n] == pytest.approx(best, abs=1e-6)
    with pytest.raises(ValueError, match="3 query embeddings for 4 candidate rows"):
        candidate_text_similarity(queries[:3], products, candidates)


def test_mean_text_embeddings_average_phrasings_then_normalise() -> None:
    texts = unit(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    means = mean_text_embeddings(texts, np.array([0, 0, 2]), 4)
    np.testing.assert_allclose(means[0], [2**-0.5, 2**-0.5, 0], atol=1e-6)
    np.testing.assert_allclose(means[2], [0, 0, 1], atol=1e-6)
    assert np.isnan(means[1]).all() and np.isnan(means[3]).all()


def test_add_text_bonus_maps_the_cosine_to_zero_one_and_keeps_the_rest() -> None:
    scores = np.array([[0.9, 0.8, 0.7, PAD_SCORE]], np.float32)
    similarity = np.array([[-1.0, 1.0, np.nan, 0.5]], np.float32)
    np.testing.assert_allclose(
        add_text_bonus(scores, similarity, 0.2), [[0.9, 0.8 + 0.2, 0.7, PAD_SCORE]], atol=1e-6
    )


# -- the step with a stand-in dual encoder ----------------------------------------------------------------
WORDS = ("shirt", "jeans", "red", "blue")


class WordEncoder:
    """Stand-in for DualEncoder: a text is the normalised sum of its known words' axes; an image the
    normalised mean of its red and blue channels on the red and blue axes."""

    image_size = (8, 8)

    class text_encoder:  # noqa: N801 - the attribute DualEncoder has
        embedding_dim = len(WORDS)

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        self.texts += list(texts)
        rows = np.array([[float(w in text.split()) for w in WORDS] for text in texts]) + 1e-3
        return unit(rows)

    def embed_images(self, images: torch.Tensor) -> np.ndarray:
        means = images.float().mean(dim=(2, 3)).numpy()
        return unit(np.stack([0 * means[:, 0], 0 * means[:, 0], means[:, 0], means[:, 2]], axis=1) + 1e-3)


def step_with(tmp_path: Path, **settings: object) -> tuple[TextBonus, WordEncoder]:
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.touch()
    step = TextBonus(checkpoint, **settings)  # type: ignore[arg-type]
    encoder = WordEncoder()
    step._dual = encoder  # type: ignore[assignment]
    return step, encoder


CATALOGUE = CatalogueMetadata(
    ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"],
    texts=[("blue jeans", "jeans in blue"), ("red shirt",), ("blue shirt",), ()],
)


def context_of(paths: list[str], boxes: list | None = None, categories: list | None = None) -> RerankContext:
    count = len(paths)
    eligibility = Eligibility(np.ones(count, np.int64), np.ones(4, np.int64))
    return RerankContext(eligibility, paths, boxes, catalogue=CATALOGUE, query_categories=categories)


def test_category_mode_promotes_the_predicted_category_and_leaves_unlabelled_queries(tmp_path: Path) -> None:
    step, encoder = step_with(tmp_path, weight=0.5)
    candidates = np.array([[0, 1, 3], [0, 1, 3], [0, -1, -1]])
    scores = np.array([[0.80, 0.79, 0.78], [0.80, 0.79, 0.78], [0.5, PAD_SCORE, PAD_SCORE]], np.float32)
    context = context_of(["a.jpg", "a.jpg", "b.jpg"], categories=[("SHIRT",), (), ("JEANS", "SHIRT")])
    ranked, new = step(candidates, scores, context)
    # The shirt crop: the red shirt above the jeans; the textless product keeps its score.
    assert ranked[0].tolist() == [1, 0, 3] and new[0, 2] == pytest.approx(0.78)
    assert ranked[1].tolist() == [0, 1, 3] and new[1].tolist() == scores[1].tolist()  # no category
    # A label of two categories: the best of them (jeans, against the jeans product's two phrasings).
    categories = WordEncoder().embed_texts(["jeans", "shirt"])
    product = mean_text_embeddings(
        WordEncoder().embed_texts(["blue jeans", "jeans in blue"]), np.zeros(2), 1
    )[0]
    best = categories @ product
    assert best[0] > best[1] and new[2, 0] == pytest.approx(0.5 + 0.5 * (best[0] + 1) / 2, abs=1e-5)
    # Product texts are embedded once for the catalogue, not per call.
    embedded = len(encoder.texts)
    step(candidates, scores, context)
    assert len(encoder.texts) == embedded


def test_category_mode_without_labels_is_a_no_op(tmp_path: Path) -> None:
    step, encoder = step_with(tmp_path)
    candidates, scores = np.array([[2, 1, 0]]), np.array([[0.9, 0.8, 0.7]], np.float32)
    ranked, new = step(candidates, scores, context_of(["a.jpg"]))
    assert ranked.tolist() == candidates.tolist() and new.tolist() == scores.tolist()
    assert encoder.texts == []  # nothing embedded, the model never loaded


def test_image_mode_scores_each_crop_against_the_product_texts(tmp_path: Path) -> None:
    photo = np.zeros((8, 16, 3), np.uint8)
    photo[:, :8, 0] = 255  # red left half
    photo[:, 8:, 2] = 255  # blue right half
    Image.fromarray(photo).save(tmp_path / "photo.png")
    path = str(tmp_path / "photo.png")
    step, _ = step_with(tmp_path, mode="image", weight=1.0)
    assert step.reads_query_photos
    candidates = np.array([[2, 1], [1, 2]])
    scores = np.array([[0.5, 0.5], [0.5, 0.5]], np.float32)
    ranked, _ = step(candidates, scores, context_of([path, path], [(0, 0, 8, 8), (8, 0, 16, 8)]))
    assert ranked.tolist() == [[1, 2], [2, 1]]  # red crop: the red shirt; blue crop: the blue shirt


def test_text_config_builds_the_step_and_bad_settings_are_named(tmp_path: Path) -> None:
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.touch()
    cfg = compose_config(["reranker=[section,colour,text]", f"reranker.steps.text.run_dir={checkpoint}"])
    chain = instantiate(cfg.reranker)
    assert isinstance(chain.steps[-1], TextBonus) and chain.steps[-1].mode == "category"
    with pytest.raises(ValueError, match=r"reranker.steps.text.run_dir=<run directory>"):
        TextBonus()
    with pytest.raises(ValueError, match="mode must be one of"):
        TextBonus(checkpoint, mode="caption")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"is .* a train-text run"):
        TextBonus(tmp_path)
    with pytest.raises(ValueError, match="weight must be a finite non-negative"):
        TextBonus(checkpoint, weight=-1)
