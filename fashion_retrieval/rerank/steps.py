"""Re-ranking steps (the contract is in :mod:`fashion_retrieval.rerank.chain`); ``conf/reranker/`` builds
them. Multiplicative steps rely on the chain's non-negative scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashion_retrieval.detection.types import Box
from fashion_retrieval.index.eligibility import Eligibility, keep_allowed
from fashion_retrieval.rerank.chain import RerankContext, check_factor, resort
from fashion_retrieval.rerank.colour import colour_similarity, image_hsv, stripe_histograms


def gate_passes(candidates: np.ndarray, context: RerankContext) -> np.ndarray:
    """``(Q, N)`` bool: the candidate's category is allowed for its query's label, or the label is unknown
    (only a known label can rule a category out)."""
    return ~context.label_known()[:, None] | context.eligibility.category_allowed(candidates)


class SectionFilter:
    """Drops candidates of another section than their query's (unknown sections pass): the hard rule of
    :class:`~fashion_retrieval.index.eligibility.Eligibility`, applied to candidates. The pipeline's search
    already enforces it, so there it only matters for candidates that come from elsewhere."""

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        sections = Eligibility(context.eligibility.query_sections, context.eligibility.catalogue_sections)
        return keep_allowed(candidates, scores, sections.allowed(candidates), np.shape(candidates)[1])

    def __repr__(self) -> str:
        return "SectionFilter()"


class CategoryGate:
    """Soft category gate (the original system's): score x ``match`` when the candidate's category is one
    its query's detector label maps to, x ``mismatch`` when not, x ``unknown`` when the query has no known
    label (whole photos, labels absent from ``label_categories``)."""

    def __init__(self, match: float = 1.0, mismatch: float = 0.05, unknown: float = 0.5) -> None:
        self.match = check_factor("CategoryGate", "match", match)
        self.mismatch = check_factor("CategoryGate", "mismatch", mismatch)
        self.unknown = check_factor("CategoryGate", "unknown", unknown)
        if self.mismatch > self.match:
            raise ValueError(
                f"CategoryGate: mismatch ({self.mismatch}) above match ({self.match}) would promote the "
                "wrong categories"
            )

    def factors(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 gate of each candidate."""
        allowed = context.eligibility.category_allowed(candidates)
        known = context.label_known()[:, None]
        return np.where(known, np.where(allowed, self.match, self.mismatch), self.unknown).astype(np.float32)

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, scores * self.factors(candidates, context))

    def __repr__(self) -> str:
        return f"CategoryGate(match={self.match}, mismatch={self.mismatch}, unknown={self.unknown})"


class ColourBonus:
    """Score x ``(1 + weight x bonus)``, ``bonus`` the stripe-averaged Bhattacharyya coefficient of the HSV
    histograms (:func:`~fashion_retrieval.rerank.colour.stripe_histograms`) of the query crop and the
    packshot, in ``[0, 1]``.

    With ``gated`` the bonus is computed only where the category gate passes (:func:`gate_passes`): reading
    images for candidates a gate pushes down is wasted time. Packshot histograms are cached in memory by
    path for the life of the step (one run).
    """

    # It reads the query photos from their files: the search refuses photos given as bytes or arrays.
    reads_query_photos = True

    def __init__(
        self,
        weight: float = 0.25,
        stripes: int = 3,
        bins: Sequence[int] = (12, 8, 4),
        image_size: int = 64,
        gated: bool = True,
    ) -> None:
        self.weight = check_factor("ColourBonus", "weight", weight)
        if int(stripes) < 1 or int(image_size) < 1:
            raise ValueError(
                f"ColourBonus: stripes ({stripes}) and image_size ({image_size}) must be positive"
            )
        bins = tuple(int(b) for b in bins)
        if len(bins) != 3 or min(bins) < 1:
            raise ValueError(f"ColourBonus: bins must be three positive counts (hue, sat, value), got {bins}")
        self.stripes, self.bins, self.image_size, self.gated = (
            int(stripes),
            bins,
            int(image_size),
            bool(gated),
        )
        self._catalogue: dict[str, np.ndarray] = {}

    def histograms(self, path: str, box: Box | None = None) -> np.ndarray:
        """``(stripes, prod(bins))`` histograms of an image (its pixel ``box`` region when given)."""
        return stripe_histograms(image_hsv(path, box, self.image_size), self.stripes, self.bins)

    def _packshot(self, path: str) -> np.ndarray:
        if path not in self._catalogue:
            self._catalogue[path] = self.histograms(path)
        return self._catalogue[path]

    def bonus(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 colour similarity, 0 where not computed (padding, failed gate)."""
        if not context.catalogue.paths:
            raise ValueError("ColourBonus needs the packshot paths (RerankContext.catalogue.paths)")
        todo = candidates >= 0
        if self.gated:
            todo &= gate_passes(candidates, context)
        bonus = np.zeros(np.shape(candidates), dtype=np.float32)
        boxes = context.query_boxes
        for row in np.flatnonzero(todo.any(axis=1)):
            query = self.histograms(context.query_paths[row], None if boxes is None else boxes[row])
            columns = np.flatnonzero(todo[row])
            packshots = np.stack(
                [self._packshot(context.catalogue.paths[g]) for g in candidates[row, columns]]
            )
            bonus[row, columns] = colour_similarity(query, packshots)
        return bonus

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, scores * (1 + self.weight * self.bonus(candidates, context)))

    def __repr__(self) -> str:
        return (
            f"ColourBonus(weight={self.weight}, stripes={self.stripes}, bins={self.bins}, "
            f"image_size={self.image_size}, gated={self.gated})"
        )


class MetadataPrior:
    """Colour variants of one article compete for one slot: a candidate whose article already appears
    higher in its query's list is scored x ``repeat``. Needs product articles (``product_articles.csv``,
    synthetic data only); off by default."""

    def __init__(self, repeat: float = 0.5) -> None:
        self.repeat = check_factor("MetadataPrior", "repeat", repeat)

    def repeated(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` bool: candidates whose article a better-ranked candidate of the same row shares."""
        articles = context.catalogue.articles
        if articles is None:
            raise ValueError(
                "MetadataPrior needs product articles (product_articles.csv), which this catalogue lacks; "
                "switch it off (reranker.steps.metadata=null)"
            )
        candidates = np.asarray(candidates)
        valid = candidates >= 0
        codes = np.asarray(articles)[np.where(valid, candidates, 0)]
        repeated = np.zeros(candidates.shape, dtype=bool)
        for row in range(len(candidates)):
            columns = np.flatnonzero(valid[row])
            # np.unique's return_index is the first (best-ranked) occurrence of each article.
            first = columns[np.unique(codes[row, columns], return_index=True)[1]]
            repeated[row, columns] = True
            repeated[row, first] = False
        return repeated

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        factors = np.where(self.repeated(candidates, context), self.repeat, 1.0)
        return resort(candidates, scores * factors)

    def __repr__(self) -> str:
        return f"MetadataPrior(repeat={self.repeat})"
