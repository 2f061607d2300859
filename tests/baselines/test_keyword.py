"""BM25 keyword matching against a slow, obvious reference and a hand-computed score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fashion_retrieval.baselines.keyword import bm25_scores, tokenize


def reference_bm25(queries: list[str], documents: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    docs = [tokenize(d) for d in documents]
    average = sum(map(len, docs)) / len(docs)
    out = np.zeros((len(queries), len(docs)))
    for q, query in enumerate(queries):
        for d, words in enumerate(docs):
            for term in tokenize(query):
                n = sum(term in other for other in docs)
                if n == 0:
                    continue
                idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
                tf = words.count(term)
                out[q, d] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / average))
    return out


def test_tokenize_keeps_hyphenated_words_whole() -> None:
    assert tokenize("Navy T-shirt, long-sleeved: STRIPED") == ["navy", "t-shirt", "long-sleeved", "striped"]


def test_hand_computed_score() -> None:
    documents = ["red shirt", "red red trousers", "blue shirt shirt"]
    scores = bm25_scores(["red shirt"], documents)
    # idf(red) = idf(shirt) = ln(1.6); document 0 (length 2, average 8/3): tf 1 -> 2.2 / (1 + 1.2 * 0.8125)
    assert scores[0, 0] == pytest.approx(2 * math.log(1.6) * 2.2 / (1 + 1.2 * 0.8125))
    assert scores[0].argmax() == 0


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["red", "navy", "striped", "shirt", "t-shirt", "slim-fit", "trousers", "plain", "knit"]
    documents = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(15)]
    queries = [" ".join(rng.choice([*words, "unseen"], size=rng.integers(1, 4))) for _ in range(6)]
    np.testing.assert_allclose(bm25_scores(queries, documents), reference_bm25(queries, documents))


def test_unknown_words_and_compounds_score_nothing() -> None:
    scores = bm25_scores(["shirt", "sweater"], ["navy t-shirt", "white shirt"])
    assert scores[0, 0] == 0.0 and scores[0, 1] > 0.0  # "shirt" is not the word "t-shirt"
    assert not scores[1].any()
    assert bm25_scores(["shirt"], []).shape == (1, 0)
