"""Scores of text and composed queries (:mod:`fashion_retrieval.data.text_queries`): a ``(Q, G)`` score
matrix of any method (BM25, a frozen backbone, a dual encoder) ranked and scored by one protocol.

Metrics (``docs/metrics.md``): ``recall@k`` (micro, the challenge's), ``hit_rate@k``, ``map@k`` and
``map@R``, from the shared metric functions. A composed query never retrieves its own image's product.
A text-image model is scored through :class:`TextImageEncoder`, the two functions a trained dual encoder
provides: text -> product by cosine similarity, composed queries by embedding arithmetic
(:func:`composed_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fashion_retrieval.data.text_queries import TextQueries
from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    average_precision_at_r,
    hit_matrix,
    metrics_from_hits,
)
from fashion_retrieval.evaluation.retrieval_sets import drop_own

REPORTED = ("recall", "hit_rate", "map")


class TextImageEncoder(Protocol):
    """What a trained text-image model gives the evaluation (a dual encoder loaded from its checkpoint)."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """``(N, D)`` float32, L2-normalised."""
        ...

    def embed_products(self, image_paths: list[str]) -> np.ndarray:
        """``(N, D)`` float32, L2-normalised, in the text embeddings' space."""
        ...


class Fuse(Protocol):
    """A trained fusion of composed queries (:class:`~fashion_retrieval.models.fusion.FusionHead`)."""

    def fuse(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        """``(Q, D)`` image and ``(Q, D)`` text embeddings -> ``(Q, D)`` float32, L2-normalised."""
        ...


def rank_scores(scores: np.ndarray, k: int, exclude: Sequence[int] | None = None) -> np.ndarray:
    """``(Q, min(k, G'))`` int64 gallery rows of ``(Q, G)`` ``scores`` by decreasing score, ties to the lower
    row; ``exclude[q]``: a gallery row query ``q`` must not retrieve (its own image), ``G' = G - 1`` then."""
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")
    if exclude is None:
        return order[:, : min(k, scores.shape[1])]
    return drop_own(order, np.asarray(exclude, np.int64), min(k, scores.shape[1] - 1))


def score_queries(scores: np.ndarray, queries: TextQueries, ks: Sequence[int]) -> dict[str, float]:
    """Metrics of ``(Q, G)`` ``scores`` (higher is better; rows: ``queries``, columns: its gallery):
    ``recall@k``, ``hit_rate@k``, ``map@k`` for each ``k``, ``map@R``, ``num_queries`` and ``num_gallery``."""
    scores = np.asarray(scores)
    if scores.shape != (len(queries), len(queries.catalogue_ids)):
        raise ValueError(
            f"scores {scores.shape} for {len(queries)} queries and {len(queries.catalogue_ids)} products"
        )
    truth = GroundTruth.from_lists(queries.truth)
    depth = max(max(ks), int(truth.num_relevant.max(initial=0)))
    ranked = rank_scores(scores, depth, queries.image_rows)
    hits = hit_matrix(ranked, truth)
    metrics = metrics_from_hits(hits, truth.num_relevant, ks)
    out = {f"{name}@{k}": metrics[f"{name}@{k}"] for name in REPORTED for k in ks}
    out["map@R"] = float(np.nanmean(average_precision_at_r(hits, truth.num_relevant)))
    out["num_queries"] = float(len(queries))
    out["num_gallery"] = float(len(queries.catalogue_ids))
    return out


def composed_embeddings(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_weight: float = 1.0
) -> np.ndarray:
    """``(Q, D)`` float32 L2-normalised ``image + text_weight * text`` of ``(Q, D)`` L2-normalised image and
    text embeddings: "this product, but <text>" by embedding arithmetic."""
    fused = np.asarray(image_embeddings, np.float32) + text_weight * np.asarray(text_embeddings, np.float32)
    return fused / np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)


def model_scores(
    model: TextImageEncoder,
    queries: TextQueries,
    product_embeddings: np.ndarray,
    text_weight: float = 1.0,
    fuse: Fuse | None = None,
) -> np.ndarray:
    """``(Q, G)`` cosine scores of ``model``'s queries against ``(G, D)`` product embeddings (``queries``'
    gallery, :meth:`TextImageEncoder.embed_products`): the text alone, or for composed queries the query
    image's product embedding fused with the text: by ``fuse`` (a trained fusion head's
    ``(Q, D), (Q, D) -> (Q, D)``) when given, else by arithmetic (:func:`composed_embeddings`)."""
    text = model.embed_texts(list(queries.texts))
    if queries.image_rows is not None:
        image = product_embeddings[queries.image_rows]
        text = composed_embeddings(image, text, text_weight) if fuse is None else fuse.fuse(image, text)
    return text @ np.asarray(product_embeddings, np.float32).T
