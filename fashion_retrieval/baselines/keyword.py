"""The keyword baseline of text retrieval: Okapi BM25 of a query's words over each product's captions.

A product's document is all its captions together. Words are lower-cased runs of letters and digits, a
hyphenated compound kept whole (``t-shirt`` is not ``shirt``, ``long-sleeved`` is one word).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order (``"Navy T-shirt, slim"`` -> ``navy t-shirt slim``)."""
    return _WORD.findall(text.lower())


def _counts(texts: Sequence[str], vocabulary: dict[str, int]) -> np.ndarray:
    """``(N, V)`` float64 term counts of ``texts`` over ``vocabulary`` (words outside it are dropped)."""
    counts = np.zeros((len(texts), len(vocabulary)), np.float64)
    for row, text in enumerate(texts):
        for word in tokenize(text):
            column = vocabulary.get(word)
            if column is not None:
                counts[row, column] += 1.0
    return counts


def bm25_scores(
    queries: Sequence[str], documents: Sequence[str], k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """``(Q, D)`` float64 Okapi BM25 scores of each query against each document:
    ``sum_{t in q} idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))`` with the
    non-negative ``idf(t) = ln(1 + (D - n_t + 0.5) / (n_t + 0.5))`` (``n_t``: documents holding ``t``); a
    query word repeated counts each time, a word in no document scores 0."""
    if not documents:
        return np.zeros((len(queries), 0), np.float64)
    vocabulary: dict[str, int] = {}
    for document in documents:
        for word in tokenize(document):
            vocabulary.setdefault(word, len(vocabulary))
    tf = _counts(documents, vocabulary)
    lengths = tf.sum(axis=1, keepdims=True)
    average = max(float(lengths.mean()), 1e-12)
    df = (tf > 0).sum(axis=0)
    idf = np.log1p((len(documents) - df + 0.5) / (df + 0.5))
    weights = idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * lengths / average))
    return _counts(queries, vocabulary) @ weights.T
