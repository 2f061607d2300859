"""The re-ranking chain: steps applied, in order, to each query's top-``depth`` candidates after the search.

A step is any callable ``step(candidates, scores, context) -> (candidates, scores)``:

* ``candidates``: ``(Q, N)`` int64 catalogue indices in rank order, ``-1`` padding at the end of a row;
* ``scores``: ``(Q, N)`` float32, non-negative (the chain maps the search's cosine similarities, which can
  be negative, to ``(s + 1) / 2`` before the first step, so multiplying by a factor below one always
  demotes); ``PAD_SCORE`` on padding;
* ``context``: a :class:`RerankContext`, what steps may know about the queries and the catalogue.

It returns both re-scored and re-sorted (descending, stable, padding last; :func:`resort`), same shape; it may
drop candidates (index ``-1``, score ``PAD_SCORE``) but never adds any. A learned pairwise re-ranker is one
more step: it reads the pairs ``(query i, catalogue candidates[i, j])`` from the context (paths, boxes),
scores them and returns :func:`resort` of its scores. Steps are configured in ``conf/reranker/``
(docs/reranking.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fashion_retrieval.data.captions import product_texts
from fashion_retrieval.data.catalogue import Catalogue, code_numbers
from fashion_retrieval.detection.types import Box
from fashion_retrieval.index.eligibility import Eligibility, search_eligible
from fashion_retrieval.index.faiss_index import PAD_SCORE, EmbeddingIndex


def check_factor(step: str, name: str, value: float) -> float:
    """``value`` as a float; ValueError naming ``step`` and ``name`` unless finite and non-negative (steps
    multiply scores by factors and bonuses, and the chain's scores must stay non-negative)."""
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{step}: {name} must be a finite non-negative factor, got {value}")
    return value


@dataclass(frozen=True)
class CatalogueMetadata:
    """What steps may read about the catalogue besides sections and categories.

    ``paths``: ``G`` packshot image paths; ``articles``: ``(G,)`` int64 article code per product (colour
    variants share one), ``None`` when the data has no articles (``product_articles.csv``).
    ``timestamps``: ``(G,)`` float64 packshot upload times in ms from the image URLs (NaN where absent);
    ``codes``: ``(G,)`` int64 11-digit codes from the URLs (``-1`` where absent); ``None``: not known.
    ``texts``: ``G`` tuples of each product's texts (:func:`~fashion_retrieval.data.captions.product_texts`:
    its captions, else its lower-cased ``product_description``; empty: none), ``()``: not known.
    """

    paths: Sequence[str] = ()
    articles: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    codes: np.ndarray | None = None
    texts: Sequence[tuple[str, ...]] = ()

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue) -> CatalogueMetadata:
        """Packshot paths, article codes, URL metadata and texts of the catalogue's products (in catalogue
        order); a product without an article is an article of its own."""
        products = [str(p) for p in catalogue.products["product_asset_id"]]
        paths = [str(p) for p in catalogue.products["image_path"]]
        texts = product_texts(catalogue)
        known = {
            "timestamps": catalogue.product_timestamps(),
            "codes": code_numbers(catalogue.product_codes()),
            "texts": [tuple(texts.get(product, ())) for product in products],
        }
        if catalogue.articles is None:
            return cls(paths, **known)
        articles = [catalogue.articles.get(product, product) for product in products]
        return cls(paths, np.unique(np.asarray(articles), return_inverse=True)[1].astype(np.int64), **known)


@dataclass(frozen=True)
class RerankContext:
    """What a step may need about ``Q`` queries and the catalogue.

    ``eligibility``: query sections ``(Q,)``, catalogue sections ``(G,)`` and, when queries carry detector
    labels, the categories each query may receive ``(Q, C)`` bool with catalogue category codes ``(G,)``.
    ``labelled``: ``(Q,)`` bool, whether the query's label maps to categories of this catalogue (``None``: no
    query has a label, e.g. whole photos). ``query_paths``: ``Q`` photo paths; ``query_boxes``: ``Q`` pixel
    boxes in them (``None`` entries or ``None``: the whole photo). ``query_bundles``: ``(Q,)`` int, the
    bundle (row of the query set) each query belongs to, for bundle-level priors (``None``: unknown).
    ``query_timestamps``: ``(Q,)`` float64 upload time in ms of each query's bundle photo (NaN where its URL
    has none); ``query_codes``: ``(Q,)`` int64 11-digit code of its bundle URL (``-1`` where absent); both
    from :meth:`~fashion_retrieval.data.catalogue.Catalogue.bundle_timestamps` and ``bundle_codes``.
    ``query_categories``: ``Q`` tuples, the catalogue categories each query's detector label maps to (its
    predicted category; empty: no known label, e.g. whole photos); ``None``: no query has a label.
    """

    eligibility: Eligibility
    query_paths: Sequence[str]
    query_boxes: Sequence[Box | None] | None = None
    labelled: np.ndarray | None = None
    catalogue: CatalogueMetadata = field(default_factory=CatalogueMetadata)
    query_bundles: np.ndarray | None = None
    query_timestamps: np.ndarray | None = None
    query_codes: np.ndarray | None = None
    query_categories: Sequence[tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        count = len(self.eligibility.query_sections)
        for name in (
            "query_paths",
            "query_boxes",
            "labelled",
            "query_bundles",
            "query_timestamps",
            "query_codes",
            "query_categories",
        ):
            value = getattr(self, name)
            if value is not None and len(value) != count:
                raise ValueError(f"RerankContext: {len(value)} {name} for {count} queries")

    def label_known(self) -> np.ndarray:
        """``(Q,)`` bool: which queries have a label that maps to categories."""
        if self.labelled is None:
            return np.zeros(len(self.eligibility.query_sections), dtype=bool)
        return np.asarray(self.labelled, dtype=bool)


class RerankStep(Protocol):
    """One step of the chain (see the module docstring for the contract)."""

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]: ...


def resort(candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, N)`` candidates and their new scores sorted by descending score, ties in their current order,
    padding (``-1``) last with ``PAD_SCORE``; int64 and float32."""
    candidates = np.asarray(candidates, dtype=np.int64)
    scores = np.where(candidates >= 0, scores, PAD_SCORE).astype(np.float32)
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(scores, order, axis=1)


def affinity(scores: np.ndarray) -> np.ndarray:
    """Cosine similarities ``(Q, N)`` in ``[-1, 1]`` mapped to ``[0, 1]`` (monotone), padding kept at
    ``PAD_SCORE``: multiplicative steps need scores that a factor below one can only lower."""
    scores = np.asarray(scores, dtype=np.float32)
    return np.where(scores == PAD_SCORE, PAD_SCORE, (np.clip(scores, -1.0, 1.0) + 1.0) / 2.0).astype(
        np.float32
    )


class RerankChain:
    """Steps applied in order to each query's top-``depth`` candidates; the first ``k`` are kept after them.

    ``steps``: a sequence of steps, or a mapping name -> step where ``None`` switches a step off (so one
    override, ``reranker.steps.colour=null``, measures a step's effect). With no step the chain is the
    identity and the search is exactly the plain one.
    """

    def __init__(self, steps: Sequence[RerankStep] | Mapping[str, RerankStep | None] = (), depth: int = 100):
        named = steps.items() if isinstance(steps, Mapping) else enumerate(steps)
        self.steps: list[RerankStep] = []
        for name, step in named:
            if step is None:
                continue
            if not callable(step):
                raise TypeError(
                    f"reranker step {name!r} is {step!r}, not a step (a mapping with `_target_` naming a "
                    "class of fashion_retrieval.rerank.steps, or null to switch it off)"
                )
            self.steps.append(step)
        if int(depth) < 1:
            raise ValueError(f"reranker.depth must be a positive number of candidates, got {depth}")
        self.depth = int(depth)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __repr__(self) -> str:
        return f"RerankChain(depth={self.depth}, steps={self.steps})"

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank ``(Q, N)`` candidates with their ``(Q, N)`` cosine scores; returns ``(Q, N)`` int64 and
        float32, scores on the steps' scale (non-negative). The identity without steps."""
        if not self.steps:
            return candidates, scores
        scores = affinity(scores)
        for step in self.steps:
            candidates, scores = step(candidates, scores, context)
        return candidates, scores

    def search(
        self,
        index: EmbeddingIndex,
        queries: np.ndarray,
        eligibility: Eligibility,
        k: int,
        context: RerankContext | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~fashion_retrieval.index.eligibility.search_eligible` of ``max(depth, k)`` candidates per
        query ``(Q, D)``, re-ranked, then the first ``k``: ``(Q, k)`` int64 (``-1``-padded) and float32.
        Without steps, exactly ``search_eligible(..., k)`` (``context`` may then be ``None``)."""
        if not self.steps:
            return search_eligible(index, queries, eligibility, k)
        if context is None:
            raise ValueError("a re-ranking chain with steps needs a RerankContext")
        candidates, scores = search_eligible(index, queries, eligibility, max(self.depth, k))
        candidates, scores = self(candidates, scores, context)
        return candidates[:, :k], scores[:, :k]
