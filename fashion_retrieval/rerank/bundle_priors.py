"""Bundle-level priors learnt from the products of known bundles: section popularity, co-occurrence and
similar bundles (re-ranking steps; the chain's contract is in :mod:`fashion_retrieval.rerank.chain`).

Known bundles are the training bundles (for validation: the training split only, never the validation
bundles' own matches), plus, in self-training (:mod:`fashion_retrieval.search.self_training`), test bundles
with their confident predictions as pseudo pairs. Every prior multiplies a candidate's score by
``1 + weight x bonus`` with ``bonus`` in ``[0, 1]``:

* :class:`SectionPopularity`: ``bonus = log(1 + n) / log(1 + n_max)``, ``n`` the number of training bundles
  of the query's section that list the product, ``n_max`` the largest such count in that section (pseudo
  pairs do not count: popularity is a training statistic);
* :class:`CoOccurrence`: ``bonus(g) = max over h in S, h != g, of C[g, h] / sqrt(C[g, g] C[h, h])`` (the
  Ochiai coefficient), ``C`` the bundle x bundle co-occurrence counts (``C[g, h]``: known bundles listing
  both; ``C[g, g]``: bundles listing ``g``), ``S`` the bundle's strong candidates: the first ``strong`` of
  every crop of the bundle, in the order the previous steps left. A bundle never votes for itself: its own
  pseudo pairs are taken out of ``C`` first (leave one out);
* :class:`SimilarBundles`: ``bonus(g) = sum_j w_j [g in bundle j] / sum_j w_j`` over the ``top_m`` known
  bundles ``j`` whose whole-photo embedding is nearest (cosine) to the query bundle's, ``w_j`` the cosine
  clipped at 0; the query bundle itself is never its own neighbour.

Rows of the chain are queries (crops, or whole photos); ``RerankContext.query_bundles`` says which bundle
each belongs to. The statistics are not config: the pipeline binds them to the steps
(:func:`bind_bundle_priors`) before the search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fashion_retrieval.data.catalogue import Catalogue
from fashion_retrieval.rerank.chain import RerankChain, RerankContext, check_factor, resort

if TYPE_CHECKING:
    # scipy costs about half a second to import: only the functions that build or read the statistics
    # import it, so a chain without bundle priors (and the service that loads it) never pays for it.
    from scipy import sparse


@dataclass(frozen=True)
class BundleStatistics:
    """The known bundles: their products ``(B, G)`` sparse 0/1, sections ``(B,)`` int64, ids ``B``, which
    rows are pseudo pairs ``(B,)`` bool, and (for :class:`SimilarBundles`) whole-photo embeddings ``(B, D)``
    float32, L2-normalised."""

    products: sparse.csr_matrix
    sections: np.ndarray
    bundle_ids: tuple[str, ...]
    pseudo: np.ndarray
    embeddings: np.ndarray | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        count = self.products.shape[0]
        for name, value in (
            ("sections", self.sections),
            ("bundle_ids", self.bundle_ids),
            ("pseudo", self.pseudo),
        ):
            if len(value) != count:
                raise ValueError(f"BundleStatistics: {len(value)} {name} for {count} bundles")
        if self.embeddings is not None and len(self.embeddings) != count:
            raise ValueError(f"BundleStatistics: {len(self.embeddings)} embeddings for {count} bundles")
        self._rows.update({bundle: row for row, bundle in enumerate(self.bundle_ids)})

    @classmethod
    def from_lists(
        cls,
        bundle_ids: Sequence[str],
        products: Sequence[Iterable[int]],
        sections: Sequence[int],
        num_products: int,
        embeddings: np.ndarray | None = None,
        pseudo: bool = False,
    ) -> BundleStatistics:
        """Bundles from their catalogue indices ``products`` (one iterable per bundle, ``-1`` ignored)."""
        from scipy import sparse

        rows, columns = [], []
        for row, listed in enumerate(products):
            for product in dict.fromkeys(int(p) for p in listed if int(p) >= 0):
                rows.append(row)
                columns.append(product)
        matrix = sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, columns)), shape=(len(bundle_ids), num_products)
        )
        return cls(
            matrix,
            np.asarray(sections, dtype=np.int64).reshape(-1),
            tuple(bundle_ids),
            np.full(len(bundle_ids), pseudo, dtype=bool),
            None if embeddings is None else np.asarray(embeddings, dtype=np.float32),
        )

    @classmethod
    def from_catalogue(
        cls, catalogue: Catalogue, bundle_ids: Sequence[str], embeddings: np.ndarray | None = None
    ) -> BundleStatistics:
        """The training matches of ``bundle_ids`` (only those: validation passes its training split)."""
        index = catalogue.product_index()
        products_of = catalogue.products_of(bundle_ids)
        sections = catalogue.bundle_sections()
        return cls.from_lists(
            list(bundle_ids),
            [[index[p] for p in products_of.get(b, ())] for b in bundle_ids],
            [sections[b] for b in bundle_ids],
            len(index),
            embeddings,
        )

    def extended(self, other: BundleStatistics) -> BundleStatistics:
        """These bundles followed by ``other``'s (e.g. pseudo-labelled test bundles); ids must not repeat."""
        repeated = set(self.bundle_ids) & set(other.bundle_ids)
        if repeated:
            raise ValueError(f"BundleStatistics: bundles listed twice: {sorted(repeated)[:5]}")
        if (self.embeddings is None) != (other.embeddings is None):
            raise ValueError("BundleStatistics: cannot mix bundles with and without embeddings")
        from scipy import sparse

        return BundleStatistics(
            sparse.vstack([self.products, other.products]).tocsr(),
            np.concatenate([self.sections, other.sections]),
            self.bundle_ids + other.bundle_ids,
            np.concatenate([self.pseudo, other.pseudo]),
            None if self.embeddings is None else np.concatenate([self.embeddings, other.embeddings]),
        )

    def row_of(self, bundle_id: str) -> int:
        """Row of a bundle, ``-1`` when it is not a known bundle."""
        return self._rows.get(bundle_id, -1)


@dataclass(frozen=True)
class BundlePriorData:
    """What the priors read: the known bundles, and the query set's bundle ids ``Qb`` with their
    whole-photo embeddings ``(Qb, D)`` (``None`` unless :class:`SimilarBundles` is on)."""

    statistics: BundleStatistics
    query_ids: Sequence[str]
    query_embeddings: np.ndarray | None = None


# -- pure functions ---------------------------------------------------------------------------------------
def normalised_log_counts(counts: np.ndarray) -> np.ndarray:
    """``(G,)`` counts -> ``log(1 + n) / log(1 + n_max)`` in ``[0, 1]`` (all zero when every count is 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    top = counts.max(initial=0.0)
    if top <= 0:
        return np.zeros(len(counts), dtype=np.float32)
    return (np.log1p(counts) / math.log1p(top)).astype(np.float32)


def section_counts(statistics: BundleStatistics) -> dict[int, np.ndarray]:
    """Section -> ``(G,)`` number of (non-pseudo) known bundles of that section listing each product."""
    counts: dict[int, np.ndarray] = {}
    for section in np.unique(statistics.sections[~statistics.pseudo]):
        rows = (statistics.sections == section) & ~statistics.pseudo
        counts[int(section)] = np.asarray(statistics.products[np.flatnonzero(rows)].sum(axis=0)).ravel()
    return counts


def cooccurrence_counts(products: sparse.spmatrix) -> sparse.csr_matrix:
    """``(G, G)`` counts from bundles' products ``(B, G)`` 0/1: ``C[g, h]`` bundles listing both,
    ``C[g, g]`` bundles listing ``g``."""
    from scipy import sparse

    products = sparse.csr_matrix(products, dtype=np.float32)
    return (products.T @ products).tocsr()


def cooccurrence_bonus(
    cooccurrence: sparse.spmatrix,
    candidates: np.ndarray,
    strong: np.ndarray,
    own: np.ndarray | None = None,
) -> np.ndarray:
    """Ochiai co-occurrence of each candidate with its bundle's strong candidates (module docstring).

    Args:
        cooccurrence: ``(G, G)`` counts from :func:`cooccurrence_counts`.
        candidates: ``(N,)`` int catalogue indices, ``-1`` padding (bonus 0).
        strong: ``(S,)`` int catalogue indices of the bundle's strong candidates (``-1`` ignored).
        own: catalogue indices the bundle itself contributed to the counts (its pseudo pairs): taken out
            first, so a bundle never votes for itself.

    Returns:
        ``(N,)`` float32 in ``[0, 1]``.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    strong = np.unique(np.asarray(strong, dtype=np.int64))
    strong = strong[strong >= 0]
    bonus = np.zeros(len(candidates), dtype=np.float32)
    valid = np.flatnonzero(candidates >= 0)
    if not len(valid) or not len(strong):
        return bonus
    from scipy import sparse

    rows = candidates[valid]
    matrix = sparse.csr_matrix(cooccurrence)
    pairs = matrix[rows][:, strong].toarray().astype(np.float64)
    diagonal = matrix.diagonal().astype(np.float64)
    row_counts, strong_counts = diagonal[rows], diagonal[strong]
    if own is not None and len(own):
        in_own = np.isin(rows, own)
        strong_own = np.isin(strong, own)
        pairs -= np.outer(in_own, strong_own)
        row_counts = row_counts - in_own
        strong_counts = strong_counts - strong_own
    denominator = np.sqrt(np.outer(row_counts, strong_counts))
    ochiai = np.divide(pairs, denominator, out=np.zeros_like(pairs), where=denominator > 0)
    ochiai[rows[:, None] == strong[None, :]] = 0.0  # a product is no evidence for itself
    bonus[valid] = np.clip(ochiai.max(axis=1), 0.0, 1.0)
    return bonus


def nearest_bundles(
    query_embeddings: np.ndarray,
    embeddings: np.ndarray,
    top_m: int,
    own_rows: np.ndarray | None = None,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_m`` known bundles nearest (cosine) to each query bundle.

    ``query_embeddings (Qb, D)`` and ``embeddings (B, D)`` L2-normalised; ``own_rows (Qb,)``: the row of
    each query bundle among the known ones (``-1``: none), never its own neighbour. Returns ``(Qb, M)``
    int64 rows (``-1`` padded when ``B < top_m``) and float32 similarities, best first; ``M = top_m``.
    """
    query_embeddings = np.asarray(query_embeddings, dtype=np.float32)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    count, top_m = len(query_embeddings), int(top_m)
    rows = np.full((count, top_m), -1, dtype=np.int64)
    similarities = np.zeros((count, top_m), dtype=np.float32)
    kept = min(top_m, len(embeddings))
    for start in range(0, count, chunk):
        block = query_embeddings[start : start + chunk] @ embeddings.T  # (chunk, B), never Qb x B at once
        if own_rows is not None:
            own = np.asarray(own_rows[start : start + chunk])
            mine = np.flatnonzero(own >= 0)
            block[mine, own[mine]] = -np.inf
        if kept == 0:
            continue
        top = np.argpartition(-block, kept - 1, axis=1)[:, :kept]
        values = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
        finite = np.isfinite(values)
        rows[start : start + chunk, :kept] = np.where(finite, top, -1)
        similarities[start : start + chunk, :kept] = np.where(finite, values, 0.0)
    return rows, similarities


def similar_bundle_bonus(
    neighbours: np.ndarray, similarities: np.ndarray, products: sparse.spmatrix, candidates: np.ndarray
) -> np.ndarray:
    """Share of the neighbours' similarity that lists each candidate (module docstring).

    ``neighbours (M,)`` rows of ``products (B, G)`` (``-1`` ignored), ``similarities (M,)`` their cosine
    (clipped at 0 as weights), ``candidates (N,)`` catalogue indices (``-1``: bonus 0). Returns ``(N,)``
    float32 in ``[0, 1]``.
    """
    neighbours = np.asarray(neighbours, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    weights = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    keep = (neighbours >= 0) & (weights > 0)
    bonus = np.zeros(len(candidates), dtype=np.float32)
    valid = np.flatnonzero(candidates >= 0)
    if not keep.any() or not len(valid):
        return bonus
    from scipy import sparse

    listed = sparse.csr_matrix(products)[neighbours[keep]][:, candidates[valid]].toarray()  # (M', N')
    bonus[valid] = np.clip(weights[keep] @ listed / weights[keep].sum(), 0.0, 1.0)
    return bonus


# -- steps ------------------------------------------------------------------------------------------------
class BundlePrior:
    """A step scoring ``score x (1 + weight x bonus)`` from known bundles bound by the pipeline."""

    needs_embeddings = False

    def __init__(self, weight: float) -> None:
        self.weight = check_factor(type(self).__name__, "weight", weight)
        self.data: BundlePriorData | None = None

    def bind(self, data: BundlePriorData) -> None:
        """Use these known bundles (and query bundles) from now on."""
        if self.needs_embeddings and (data.statistics.embeddings is None or data.query_embeddings is None):
            raise ValueError(f"{type(self).__name__} needs whole-photo embeddings of the bundles")
        self.data = data
        self._prepare(data)

    def _prepare(self, data: BundlePriorData) -> None:
        """Precompute what ``bonus`` reads (called by :meth:`bind`)."""

    def _bound(self) -> BundlePriorData:
        if self.data is None:
            raise ValueError(
                f"{type(self).__name__} has no known bundles: the pipeline binds them "
                "(fashion_retrieval.rerank.bundle_priors.bind_bundle_priors) before the search"
            )
        return self.data

    def bonus(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 in ``[0, 1]``."""
        raise NotImplementedError

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, scores * (1 + self.weight * self.bonus(candidates, context)))


def _query_bundles(step: BundlePrior, context: RerankContext) -> np.ndarray:
    if context.query_bundles is None:
        raise ValueError(
            f"{type(step).__name__} needs RerankContext.query_bundles (the bundle of each query)"
        )
    return np.asarray(context.query_bundles, dtype=np.int64)


class SectionPopularity(BundlePrior):
    """Products listed by many training bundles of the query's section go up (module docstring)."""

    def __init__(self, weight: float = 0.1) -> None:
        super().__init__(weight)
        self._tables: dict[int, np.ndarray] = {}

    def _prepare(self, data: BundlePriorData) -> None:
        self._tables = {s: normalised_log_counts(c) for s, c in section_counts(data.statistics).items()}

    def bonus(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        self._bound()
        candidates = np.asarray(candidates, dtype=np.int64)
        bonus = np.zeros(candidates.shape, dtype=np.float32)
        sections = np.asarray(context.eligibility.query_sections)
        for section, table in self._tables.items():
            rows = np.flatnonzero(sections == section)
            picked = candidates[rows]
            bonus[rows] = np.where(picked >= 0, table[np.maximum(picked, 0)], 0.0)
        return bonus

    def __repr__(self) -> str:
        return f"SectionPopularity(weight={self.weight})"


class CoOccurrence(BundlePrior):
    """Products that known bundles list together with the bundle's strong candidates go up."""

    def __init__(self, weight: float = 0.2, strong: int = 3) -> None:
        super().__init__(weight)
        if int(strong) < 1:
            raise ValueError(f"CoOccurrence: strong must be a positive number of candidates, got {strong}")
        self.strong = int(strong)
        self._counts: sparse.csr_matrix | None = None

    def _prepare(self, data: BundlePriorData) -> None:
        self._counts = cooccurrence_counts(data.statistics.products)

    def bonus(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        data = self._bound()
        assert self._counts is not None
        bundles = _query_bundles(self, context)
        candidates = np.asarray(candidates, dtype=np.int64)
        bonus = np.zeros(candidates.shape, dtype=np.float32)
        for bundle in np.unique(bundles):
            rows = np.flatnonzero(bundles == bundle)
            own_row = data.statistics.row_of(data.query_ids[bundle])
            own = data.statistics.products[own_row].indices if own_row >= 0 else None
            block = candidates[rows]
            strong = block[:, : self.strong].ravel()
            bonus[rows] = cooccurrence_bonus(self._counts, block.ravel(), strong, own).reshape(block.shape)
        return bonus

    def __repr__(self) -> str:
        return f"CoOccurrence(weight={self.weight}, strong={self.strong})"


class SimilarBundles(BundlePrior):
    """Products of the known bundles whose photos look most like the query bundle's go up."""

    needs_embeddings = True

    def __init__(self, weight: float = 0.2, top_m: int = 10) -> None:
        super().__init__(weight)
        if int(top_m) < 1:
            raise ValueError(f"SimilarBundles: top_m must be a positive number of bundles, got {top_m}")
        self.top_m = int(top_m)
        self._neighbours = np.zeros((0, self.top_m), dtype=np.int64)
        self._similarities = np.zeros((0, self.top_m), dtype=np.float32)

    def _prepare(self, data: BundlePriorData) -> None:
        statistics = data.statistics
        assert statistics.embeddings is not None and data.query_embeddings is not None
        own = np.array([statistics.row_of(b) for b in data.query_ids], dtype=np.int64)
        self._neighbours, self._similarities = nearest_bundles(
            data.query_embeddings, statistics.embeddings, self.top_m, own
        )

    def bonus(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        data = self._bound()
        bundles = _query_bundles(self, context)
        candidates = np.asarray(candidates, dtype=np.int64)
        bonus = np.zeros(candidates.shape, dtype=np.float32)
        for bundle in np.unique(bundles):
            rows = np.flatnonzero(bundles == bundle)
            block = candidates[rows]
            bonus[rows] = similar_bundle_bonus(
                self._neighbours[bundle], self._similarities[bundle], data.statistics.products, block.ravel()
            ).reshape(block.shape)
        return bonus

    def __repr__(self) -> str:
        return f"SimilarBundles(weight={self.weight}, top_m={self.top_m})"


def bundle_prior_steps(chain: RerankChain) -> list[BundlePrior]:
    """The chain's steps that need known bundles (:func:`bind_bundle_priors`)."""
    return [step for step in chain.steps if isinstance(step, BundlePrior)]


def bind_bundle_priors(chain: RerankChain, data: BundlePriorData) -> None:
    """Hand the known bundles and the query set's bundles to every bundle prior of ``chain``."""
    for step in bundle_prior_steps(chain):
        step.bind(data)


def pseudo_statistics(
    bundle_ids: Sequence[str],
    predictions: Mapping[str, Sequence[int]],
    sections: Sequence[int],
    num_products: int,
    embeddings: np.ndarray | None = None,
) -> BundleStatistics:
    """Pseudo-labelled bundles as known bundles: those of ``bundle_ids`` (with ``sections (Qb,)`` and
    whole-photo ``embeddings (Qb, D)``) that have at least one predicted catalogue index in
    ``predictions``."""
    kept = np.array([len(predictions.get(b, ())) > 0 for b in bundle_ids], dtype=bool)
    ids = [b for b, keep in zip(bundle_ids, kept) if keep]
    return BundleStatistics.from_lists(
        ids,
        [predictions[b] for b in ids],
        np.asarray(sections, dtype=np.int64)[kept],
        num_products,
        None if embeddings is None else np.asarray(embeddings, dtype=np.float32)[kept],
        pseudo=True,
    )
