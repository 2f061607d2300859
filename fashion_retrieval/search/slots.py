"""Share a bundle's ``k`` slots among its garments: merge the ranked lists of its crops into one list.

Each crop of a bundle photo is searched on its own; these functions turn the ``C`` per-crop lists into the
bundle's ``k`` products. Crops come in the caller's order (detections by confidence), which breaks ties.

Optional :class:`SlotConstraints` keep the slots diverse: at most ``cap`` products of one category and at
most one product per article (colour variants). Each strategy keeps its own order and skips the products a
constraint rules out; when the admissible products cannot fill the ``k`` slots, the skipped ones fill the
rest in that same order (the caps are soft: a submission still gets ``k`` products).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MergeStrategy = Literal["round_robin", "score", "quota"]
MERGE_STRATEGIES: tuple[str, ...] = ("round_robin", "score", "quota")


@dataclass(frozen=True)
class SlotConstraints:
    """Diversity rules for a bundle's slots.

    ``categories``: ``(G,)`` int category code per catalogue product and ``caps``: ``(C,)`` int the most
    products of each code in the slots (negative: no cap), both ``None`` for no caps; ``articles``: ``(G,)``
    int article code per product (at most one product per article), ``None`` for no article rule.
    """

    categories: np.ndarray | None = None
    caps: np.ndarray | None = None
    articles: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        categories: np.ndarray,
        code_of: Mapping[str, int],
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
        articles: np.ndarray | None = None,
    ) -> SlotConstraints | None:
        """Constraints from per-category ``caps`` (category name -> most products) with ``default_cap`` for
        the other categories (``None``: uncapped), and ``articles`` ``(G,)`` when one product per article
        is wanted; ``None`` when nothing is constrained."""
        caps = dict(caps or {})
        unknown = sorted(set(caps) - set(code_of))
        if unknown:
            raise ValueError(
                f"retrieval.category_caps names categories absent from the catalogue: {unknown}; "
                f"known: {sorted(code_of)}"
            )
        for name, cap in [*caps.items(), ("default", default_cap)]:
            if cap is not None and int(cap) < 1:
                raise ValueError(f"category cap {name!r} must be a positive number of products, got {cap}")
        table = None
        if caps or default_cap is not None:
            table = np.full(len(code_of), -1 if default_cap is None else int(default_cap), dtype=np.int64)
            for name, cap in caps.items():
                table[code_of[name]] = int(cap)
        if table is None and articles is None:
            return None
        return cls(
            None if table is None else np.asarray(categories, dtype=np.int64),
            table,
            None if articles is None else np.asarray(articles, dtype=np.int64),
        )


class _SlotFiller:
    """Takes offered products in order while they are distinct and admissible; :meth:`slots` then fills
    what is left with the inadmissible ones, in the order they were offered."""

    def __init__(self, k: int, constraints: SlotConstraints | None) -> None:
        self.k, self.constraints = k, constraints
        self.chosen: list[int] = []
        self.skipped: list[int] = []
        self._seen: set[int] = set()
        self._per_category: dict[int, int] = {}
        self._articles: set[int] = set()

    @property
    def full(self) -> bool:
        return len(self.chosen) >= self.k

    def offer(self, product: int) -> bool:
        """Take ``product`` if there is room and it is new and admissible; returns whether it was taken."""
        product = int(product)
        if product < 0 or product in self._seen or self.full:
            return False
        self._seen.add(product)
        rules = self.constraints
        if rules is not None:
            category = None if rules.categories is None else int(rules.categories[product])
            article = None if rules.articles is None else int(rules.articles[product])
            capped = (
                category is not None
                and rules.caps is not None
                and 0 <= rules.caps[category] <= self._per_category.get(category, 0)
            )
            if capped or article in self._articles:
                self.skipped.append(product)
                return False
            if category is not None:
                self._per_category[category] = self._per_category.get(category, 0) + 1
            if article is not None:
                self._articles.add(article)
        self.chosen.append(product)
        return True

    def slots(self) -> np.ndarray:
        """``(k,)`` int64: the chosen products, then skipped ones, then ``-1``."""
        kept = (self.chosen + self.skipped)[: self.k]
        return np.array(kept + [-1] * (self.k - len(kept)), dtype=np.int64)


def merge_round_robin(ids: np.ndarray, k: int, constraints: SlotConstraints | None = None) -> np.ndarray:
    """Each crop's best remaining product in turn: rank 1 of every crop, then rank 2, ...

    Args:
        ids: ``(C, K)`` int64 catalogue indices per crop in rank order, ``-1`` padding.
        k: slots.
        constraints: diversity rules (module docstring); a crop whose product they rule out loses that
            turn, as it does when its product is already taken.

    Returns:
        ``(k,)`` int64, distinct, ``-1``-padded when the crops hold fewer distinct products.
    """
    # Column-major order visits rank 1 of every crop, then rank 2...
    return _first_distinct(np.asarray(ids, dtype=np.int64).T.reshape(-1), k, constraints)


def merge_by_score(
    ids: np.ndarray, scores: np.ndarray, k: int, constraints: SlotConstraints | None = None
) -> np.ndarray:
    """The ``k`` products with the highest score over all crops (a product found by several crops counts
    once, at its best score); ties go to the earlier crop, then the better rank. ``constraints``: skip
    what they rule out (module docstring).

    ``ids (C, K)`` int64 with ``-1`` padding, ``scores (C, K)`` float; returns ``(k,)`` int64.
    """
    flat_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    flat_scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-flat_scores, kind="stable")  # row-major flattening: crop order breaks ties
    return _first_distinct(flat_ids[order], k, constraints)


def allocate_quotas(weights: Sequence[float], k: int) -> np.ndarray:
    """Split ``k`` slots in proportion to ``weights (C,)`` (largest remainder; ties to earlier crops).

    Returns ``(C,)`` int64 quotas summing to ``k`` (all zero when every weight is zero).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if (weights < 0).any():
        raise ValueError(f"crop weights must be non-negative, got {weights.tolist()}")
    total = weights.sum()
    if total <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = k * weights / total
    quotas = np.floor(exact).astype(np.int64)
    remainder = exact - quotas
    for crop in np.argsort(-remainder, kind="stable")[: k - int(quotas.sum())]:
        quotas[crop] += 1
    return quotas


def merge_with_quotas(
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    weights: Sequence[float],
    constraints: SlotConstraints | None = None,
) -> np.ndarray:
    """Each crop first fills its quota of ``k`` (:func:`allocate_quotas` of ``weights (C,)``) with its best
    products not taken yet (and admissible under ``constraints``), crop after crop; slots a crop cannot
    fill go to the best remaining scores.

    ``ids (C, K)`` int64 with ``-1`` padding, ``scores (C, K)`` float; returns ``(k,)`` int64.
    """
    ids = np.asarray(ids, dtype=np.int64)
    filler = _SlotFiller(k, constraints)
    for crop, quota in enumerate(allocate_quotas(weights, k)):
        taken = 0
        for product in ids[crop]:
            if taken == quota:
                break
            taken += filler.offer(product)
    # Ruled-out products are offered again here, in score order, so they fill what is left last.
    for product in merge_by_score(ids, scores, ids.size):
        filler.offer(product)
    return filler.slots()


def merge_garment_lists(
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    strategy: MergeStrategy = "round_robin",
    weights: Sequence[float] | None = None,
    constraints: SlotConstraints | None = None,
) -> np.ndarray:
    """One bundle's ``k`` products from its ``C`` crops' lists ``ids``/``scores (C, K)`` with ``strategy``
    (``quota`` uses ``weights (C,)``, default equal) under ``constraints``. A single crop without
    constraints returns its own list."""
    if strategy == "round_robin":
        return merge_round_robin(ids, k, constraints)
    if strategy == "score":
        return merge_by_score(ids, scores, k, constraints)
    if strategy == "quota":
        weights = np.ones(len(ids)) if weights is None else weights
        return merge_with_quotas(ids, scores, k, weights, constraints)
    raise ValueError(f"unknown merge strategy {strategy!r}; choose from {list(MERGE_STRATEGIES)}")


def _best_per_crop(slots: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(k, C)`` float64: each slot product's score in each crop's list, ``-inf`` where absent."""
    slots = np.asarray(slots, dtype=np.int64)
    found = (np.asarray(ids)[None] == slots[:, None, None]) & (slots[:, None, None] >= 0)  # (k, C, K)
    return np.where(found, np.asarray(scores, dtype=np.float64)[None], -np.inf).max(axis=2, initial=-np.inf)


def slot_scores(slots: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each slot product's best score over the crops that found it: ``slots (k,)``, ``ids``/``scores
    (C, K)`` -> ``(k,)`` float32, ``nan`` for padding and products no crop list holds."""
    best = _best_per_crop(slots, ids, scores).max(axis=1, initial=-np.inf)
    return np.where(np.isfinite(best), best, np.nan).astype(np.float32)


def slot_sources(slots: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The crop that found each slot product: ``slots (k,)``, ``ids``/``scores (C, K)`` -> ``(k,)`` int64
    row of ``ids`` whose list gives the product its :func:`slot_scores` score (ties: the first crop), ``-1``
    for padding and products no crop list holds."""
    best = _best_per_crop(slots, ids, scores)
    rows = np.argmax(best, axis=1) if best.shape[1] else np.zeros(len(best), dtype=np.int64)
    return np.where(np.isfinite(best.max(axis=1, initial=-np.inf)), rows, -1).astype(np.int64)


def _first_distinct(candidates: np.ndarray, k: int, constraints: SlotConstraints | None = None) -> np.ndarray:
    """The first ``k`` distinct non-negative values of ``candidates`` in order (admissible under
    ``constraints`` first, see :class:`_SlotFiller`), ``-1``-padded: ``(k,)``."""
    if constraints is not None:
        filler = _SlotFiller(k, constraints)
        for product in candidates:
            filler.offer(product)
        return filler.slots()
    valid = candidates[candidates >= 0]
    _, first = np.unique(valid, return_index=True)
    distinct = valid[np.sort(first)][:k]
    return np.concatenate([distinct, np.full(k - len(distinct), -1, dtype=np.int64)])
