"""Scores of text and composed queries (:mod:`fashion_retrieval.data.text_queries`): a ``(Q, G)`` score
matrix of any method (BM25, a frozen backbone, a dual encoder) ranked and scored by one protocol.

Metrics (``docs/metrics.md``): ``recall@k`` (micro, the challenge's), ``hit_rate@k``, ``map@k`` and
``map@R``, from the shared metric functions. A composed query never retrieves its own image's product.
A text-image model is scored through :class:`TextImageEncoder`, the two functions a trained dual encoder
provides: text -> product by cosine similarity, composed queries by embedding arithmetic
(:func:`~fashion_retrieval.models.fusion.composed_embeddings`).
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
from fashion_retrieval.models.fusion import composed_embeddings

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
    ``(Q, D), (Q, D) -> (Q, D)``) when given, else by arithmetic
    (:func:`~fashion_retrieval.models.fusion.composed_embeddings`)."""
    text = model.embed_texts(list(queries.texts))
    if queries.image_rows is not None:
        image = product_embeddings[queries.image_rows]
        text = composed_embeddings(image, text, text_weight) if fuse is None else fuse.fuse(image, text)
    return text @ np.asarray(product_embeddings, np.float32).T


def expected_random_ap_at_r(num_relevant: int, num_items: int) -> float:
    """The expected AP@R of a uniformly random ranking of ``num_items`` items, ``num_relevant`` of them
    relevant: ``(1/R) sum_{k<=R} (1/k) (R/N + (k-1) R(R-1) / (N(N-1)))`` (rank ``k`` is relevant with
    probability ``R/N``, ranks ``j < k`` and ``k`` both with ``R(R-1) / (N(N-1))``); the chance row of
    :func:`class_text_scores`."""
    r, n = int(num_relevant), int(num_items)
    if not 0 < r <= n:
        raise ValueError(f"need 0 < R <= N, got R={r}, N={n}")
    both = r * (r - 1) / (n * (n - 1)) if n > 1 else 0.0
    return float(sum((r / n + (k - 1) * both) / k for k in range(1, r + 1)) / r)


def class_text_scores(
    text_embeddings: np.ndarray, photo_embeddings: np.ndarray, labels: Sequence[str], k: int = 10
) -> dict[str, dict[str, float]]:
    """Zero-shot text -> photo retrieval, one query per class: row ``c`` of ``(C, D)`` ``text_embeddings``
    is the text of class ``sorted(set(labels))[c]``, searched among ``(N, D)`` ``photo_embeddings`` (same
    space, L2-normalised) whose classes are ``labels``; relevant = the photos of that class.

    Returns ``{class: {"precision@k", "map@R", "num_relevant", "chance/precision@k", "chance/map@R"}}``
    (chance: the expectation under a random ranking, ``R/N`` and :func:`expected_random_ap_at_r`).
    """
    classes = sorted(set(labels))
    if len(text_embeddings) != len(classes) or len(photo_embeddings) != len(labels):
        raise ValueError(
            f"{len(text_embeddings)} texts for {len(classes)} classes, {len(photo_embeddings)} photos for "
            f"{len(labels)} labels"
        )
    truth = GroundTruth.from_lists([[i for i, label in enumerate(labels) if label == c] for c in classes])
    depth = max(k, int(truth.num_relevant.max()))
    scores = np.asarray(text_embeddings, np.float32) @ np.asarray(photo_embeddings, np.float32).T
    hits = hit_matrix(rank_scores(scores, depth), truth)
    ap = average_precision_at_r(hits, truth.num_relevant)
    n = len(labels)
    out = {}
    for row, label in enumerate(classes):
        r = int(truth.num_relevant[row])
        out[label] = {
            f"precision@{k}": float(hits[row, :k].mean()),
            "map@R": float(ap[row]),
            "num_relevant": float(r),
            f"chance/precision@{k}": r / n,
            "chance/map@R": expected_random_ap_at_r(r, n),
        }
    return out
