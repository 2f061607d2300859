"""Text as a re-ranking step: a dual encoder's (``train-text``) text tower scores each candidate's product
text against the query, and ``weight`` times that similarity is added to the candidate's score.

Two modes (``mode``), the same product side: each product's texts
(:attr:`~fashion_retrieval.rerank.chain.CatalogueMetadata.texts`: its captions, else its lower-cased
``product_description``) embedded by the text tower, averaged over its phrasings and L2-normalised, once per
catalogue and kept in memory for the life of the step:

* ``category``: the query side is the text of the crop's predicted category, i.e. each catalogue category
  its detector label maps to (``RerankContext.query_categories``), lower-cased as the real data's
  descriptions; a label mapping to several categories takes the best of them. A query without a known
  label (whole photos, ``detector=none``) keeps its scores.
* ``image``: the query side is the crop itself through the dual encoder's image tower (CLIP-style zero-shot
  scoring of the crop against the product text); needs no label, reads the query photos from files.

The similarity (cosine, in ``[-1, 1]``) is mapped to ``[0, 1]`` as the chain maps the search's
(``(s + 1) / 2``), so the bonus keeps scores non-negative and, as the first step, ranks by
``cosine(image) + weight x cosine(text)``. docs/reranking.md says how it differs from the category mask.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from fashion_retrieval.data.datasets import region
from fashion_retrieval.data.transforms import apply, eval_transform, load_rgb
from fashion_retrieval.detection.types import Box
from fashion_retrieval.index.faiss_index import PAD_SCORE
from fashion_retrieval.models.dual_encoder import DualEncoder, load_dual_encoder, resolve_checkpoint
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankContext, check_factor, resort

log = logging.getLogger(__name__)

TextMode = Literal["category", "image"]
TEXT_MODES: tuple[str, ...] = ("category", "image")


def mean_text_embeddings(embeddings: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """``(T, D)`` L2-normalised text embeddings, each owned by item ``owners (T,)`` in ``[0, count)`` ->
    ``(count, D)`` float32: each item's mean embedding, L2-normalised; ``nan`` rows for items owning none."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    sums = np.zeros((count, embeddings.shape[1]))
    np.add.at(sums, np.asarray(owners, dtype=np.int64), embeddings)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(norms > 0, sums / norms, np.nan)
    return means.astype(np.float32)


def candidate_text_similarity(
    queries: Sequence[np.ndarray], products: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """``(Q, N)`` float32 cosine of each candidate's product text and its query.

    ``queries``: ``Q`` arrays ``(K_i, D)``, L2-normalised embeddings of query ``i``'s texts or image (the
    best of the ``K_i`` counts; ``K_i = 0``: nothing to compare); ``products``: ``(G, D)`` L2-normalised
    product text embeddings (``nan`` rows: no text); ``candidates``: ``(Q, N)`` catalogue indices, ``-1``
    padding. ``nan`` where there is no query text, no product text, or padding.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    products = np.asarray(products, dtype=np.float32)
    if len(queries) != len(candidates):
        raise ValueError(f"{len(queries)} query embeddings for {len(candidates)} candidate rows")
    similarity = np.full(candidates.shape, np.nan, dtype=np.float32)
    for row, query in enumerate(queries):
        columns = np.flatnonzero(candidates[row] >= 0)
        if len(query) == 0 or len(columns) == 0:
            continue
        cosines = np.asarray(query, dtype=np.float32) @ products[candidates[row, columns]].T  # (K_i, n)
        similarity[row, columns] = cosines.max(axis=0)
    return similarity


def add_text_bonus(scores: np.ndarray, similarity: np.ndarray, weight: float) -> np.ndarray:
    """``(Q, N)`` non-negative scores plus ``weight x (similarity + 1) / 2`` (cosine ``(Q, N)`` mapped to
    ``[0, 1]``); unchanged where the similarity is ``nan`` (no text on either side) and on padding."""
    scores = np.asarray(scores, dtype=np.float32)
    bonus = weight * (np.clip(similarity, -1.0, 1.0) + 1.0) / 2.0
    keep = ~np.isfinite(similarity) | (scores == PAD_SCORE)
    return np.where(keep, scores, scores + bonus).astype(np.float32)


class TextBonus:
    """Score + ``weight x (cos + 1) / 2``, ``cos`` the dual encoder's similarity of the candidate's product
    text and the query's category text (``mode=category``) or crop image (``mode=image``); module
    docstring. ``run_dir``: a ``train-text`` run directory (or its checkpoint), loaded on first use.
    ``max_pixels``: the largest query photo read in image mode (default PIL's limit)."""

    def __init__(
        self,
        run_dir: str | Path | None = None,
        mode: TextMode = "category",
        weight: float = 0.1,
        batch_size: int = 64,
        max_pixels: int | None = None,
    ) -> None:
        if not run_dir:
            raise ValueError(
                "TextBonus needs a train-text run: reranker.steps.text.run_dir=<run directory> (docs/text.md)"
            )
        if mode not in TEXT_MODES:
            raise ValueError(f"TextBonus: mode must be one of {TEXT_MODES}, got {mode!r}")
        self.checkpoint = resolve_checkpoint(run_dir)
        if not self.checkpoint.is_file():
            raise FileNotFoundError(
                f"TextBonus: {self.checkpoint}: no such checkpoint (reranker.steps.text.run_dir)"
            )
        self.mode = mode
        self.weight = check_factor("TextBonus", "weight", weight)
        if int(batch_size) < 1:
            raise ValueError(f"TextBonus: batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        self.max_pixels = max_pixels
        self._dual: DualEncoder | None = None
        self._products: tuple[CatalogueMetadata, np.ndarray] | None = None
        self._categories: dict[str, np.ndarray] = {}
        self._warned = False

    @property
    def reads_query_photos(self) -> bool:
        """Whether the step reads the query photos from their files (image mode)."""
        return self.mode == "image"

    @property
    def dual(self) -> DualEncoder:
        if self._dual is None:
            self._dual = load_dual_encoder(self.checkpoint)
        return self._dual

    def product_embeddings(self, catalogue: CatalogueMetadata) -> np.ndarray:
        """``(G, D)`` float32 text embedding of each product (``nan`` rows: no text), once per catalogue."""
        if self._products is not None and self._products[0] is catalogue:
            return self._products[1]
        if not catalogue.texts:
            raise ValueError("TextBonus needs the products' texts (RerankContext.catalogue.texts)")
        unique = list(dict.fromkeys(text for texts in catalogue.texts for text in texts))
        row_of = {text: row for row, text in enumerate(unique)}
        owners = [product for product, texts in enumerate(catalogue.texts) for _ in texts]
        rows = [row_of[text] for texts in catalogue.texts for text in texts]
        embedded = self.dual.embed_texts(unique, self.batch_size)
        products = mean_text_embeddings(embedded[rows], np.asarray(owners), len(catalogue.texts))
        textless = sum(1 for texts in catalogue.texts if not texts)
        if textless:
            log.warning("TextBonus: %d of %d products have no text and get no bonus", textless, len(products))
        self._products = (catalogue, products)
        return products

    def query_embeddings(self, context: RerankContext, rows: np.ndarray) -> list[np.ndarray]:
        """``Q`` arrays ``(K_i, D)``: the embeddings each query is compared with (only ``rows`` filled)."""
        dim = self.dual.text_encoder.embedding_dim
        queries = [np.zeros((0, dim), dtype=np.float32) for _ in context.query_paths]
        if self.mode == "image":
            boxes = context.query_boxes or [None] * len(context.query_paths)
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                images = self.crops([context.query_paths[r] for r in batch], [boxes[r] for r in batch])
                for row, embedding in zip(batch, self.dual.embed_images(images)):
                    queries[row] = embedding[None]
            return queries
        categories = context.query_categories or [()] * len(context.query_paths)
        missing = list(dict.fromkeys(c for r in rows for c in categories[r] if c not in self._categories))
        if missing:
            embedded = self.dual.embed_texts([c.strip().lower() for c in missing], self.batch_size)
            self._categories.update(zip(missing, embedded))
        for row in rows:
            if categories[row]:
                queries[row] = np.stack([self._categories[c] for c in categories[row]])
        return queries

    def crops(self, paths: Sequence[str], boxes: Sequence[Box | None]) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 query crops at the dual encoder's image size (each photo read once)."""
        transform = eval_transform(self.dual.image_size)
        photos = {path: load_rgb(path, self.max_pixels) for path in dict.fromkeys(paths)}
        return torch.stack([apply(transform, region(photos[p], box)) for p, box in zip(paths, boxes)])

    def similarity(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 cosine of candidate texts and queries (``nan``: not scored)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        rows = np.flatnonzero((candidates >= 0).any(axis=1))
        if self.mode == "category":
            categories = context.query_categories or [()] * len(candidates)
            unknown = sum(1 for row in rows if not categories[row])
            if unknown and not self._warned:
                log.warning(
                    "TextBonus(mode=category): %d of %d queries have no predicted category (no detector "
                    "label that maps to this catalogue's categories, e.g. whole photos) and keep their "
                    "scores; mode=image needs no label",
                    unknown,
                    len(rows),
                )
                self._warned = True
            rows = np.array([row for row in rows if categories[row]], dtype=np.int64)
        if len(rows) == 0:
            return np.full(candidates.shape, np.nan, dtype=np.float32)
        products = self.product_embeddings(context.catalogue)
        return candidate_text_similarity(self.query_embeddings(context, rows), products, candidates)

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, add_text_bonus(scores, self.similarity(candidates, context), self.weight))

    def __repr__(self) -> str:
        return f"TextBonus(run_dir={str(self.checkpoint)!r}, mode={self.mode!r}, weight={self.weight})"
