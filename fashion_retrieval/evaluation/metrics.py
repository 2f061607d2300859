"""Batched retrieval metrics over top-k index arrays.

Everything works on a ``(Q, K)`` array of retrieved gallery indices and a CSR ground truth, so memory is
``O(Q * K + P)`` and never a query x gallery matrix. Definitions and conventions: ``docs/metrics.md``.

For a query ``q`` with ``R_q`` relevant items, ``rel_q(i)`` is 1 when rank ``i`` (1-based column) holds a
relevant item for the first time in the row (``-1`` padding never counts, a repeated index counts once, at
its first rank) and ``h_q(k) = sum_{i <= k} rel_q(i)``:

* ``recall@k`` -- the challenge metric, micro-averaged: ``sum_q h_q(k) / sum_q R_q``.
* ``per_query_recall@k`` -- macro: ``mean_q h_q(k) / R_q`` (not divided by ``min(k, R_q)``, so it is
  below 1 whenever ``R_q > k``; the same definition as ``torchmetrics`` ``retrieval_recall``).
* ``hit_rate@k`` -- CMC@k (this is the only CMC we report): share of queries with ``h_q(k) >= 1``.
* ``precision@k`` -- ``mean_q h_q(k) / k`` (padding and duplicates count as misses).
* ``map@k`` -- ``mean_q (1 / min(k, R_q)) * sum_{i <= k} rel_q(i) * h_q(i) / i``.
* ``ndcg@k`` -- binary gains: ``mean_q DCG_q(k) / IDCG_q(k)`` with ``DCG_q(k) = sum_{i <= k} rel_q(i) /
  log2(i + 1)`` and the ideal ``IDCG_q(k) = sum_{i <= min(k, R_q)} 1 / log2(i + 1)`` (all of the first
  ``min(k, R_q)`` ranks relevant), so a query is 1 exactly when its first ``min(k, R_q)`` ranks all hit.
* ``map@R`` -- Musgrave et al.'s MAP@R (``average_precision_at_r``): ``map@k`` with ``k = R_q`` per query,
  ``mean_q (1 / R_q) * sum_{i <= R_q} rel_q(i) * h_q(i) / i``; needs ``K >= max R_q`` retrieved columns.

Macro metrics average only over queries with ``R_q > 0``; those without truth are counted in
``num_queries_without_truth``. A metric with nothing to average is ``nan``.

Breakdowns (``metrics_by_group``): by a label per query (e.g. section), each group is the metrics of its
queries; by a label per gallery item (e.g. product category), group ``c`` keeps only the (query, item)
pairs whose item is in ``c`` -- as if every other item were irrelevant -- and the queries with at least
one such pair, so ``recall@k`` of ``c`` is hits on ``c``'s pairs over ``c``'s pairs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "GroundTruth",
    "average_precision_at_r",
    "flatten_groups",
    "grouped_retrieval_metrics",
    "hit_matrix",
    "map_at_r",
    "metrics_by_group",
    "metrics_from_hits",
    "retrieval_metrics",
]

DEFAULT_KS: tuple[int, ...] = (1, 5, 15)
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Relevant gallery indices per query in CSR form.

    ``offsets``: ``(Q + 1,) int64``, non-decreasing, ``offsets[0] == 0``, ``offsets[-1] == P``.
    ``items``: ``(P,) int64`` gallery indices ``>= 0``; query ``q`` owns ``items[offsets[q]:offsets[q + 1]]``,
    without repeats.
    """

    offsets: np.ndarray
    items: np.ndarray

    def __post_init__(self) -> None:
        offsets = _as_int64(self.offsets, "GroundTruth.offsets")
        items = _as_int64(self.items, "GroundTruth.items")
        if offsets.ndim != 1 or offsets.size == 0:
            raise ValueError(f"GroundTruth.offsets must be a non-empty 1-D array, got shape {offsets.shape}")
        if items.ndim != 1:
            raise ValueError(f"GroundTruth.items must be 1-D, got shape {items.shape}")
        if offsets[0] != 0 or offsets[-1] != items.size:
            raise ValueError(
                f"GroundTruth.offsets must start at 0 and end at len(items)={items.size}, "
                f"got {offsets[0]} .. {offsets[-1]}"
            )
        if np.any(np.diff(offsets) < 0):
            bad = int(np.flatnonzero(np.diff(offsets) < 0)[0])
            raise ValueError(f"GroundTruth.offsets must be non-decreasing (decreases after query {bad})")
        if items.size and items.min() < 0:
            bad = int(np.flatnonzero(items < 0)[0])
            raise ValueError(f"GroundTruth.items must be >= 0, got {items[bad]} at position {bad}")
        num_queries = offsets.size - 1
        keys = _pair_keys(_query_of_item(offsets), items, num_queries, _max_or(items, -1) + 1)
        keys.sort()
        repeated = np.flatnonzero(keys[1:] == keys[:-1])
        if repeated.size:
            width = _max_or(items, -1) + 1
            query, item = divmod(int(keys[repeated[0]]), width)
            raise ValueError(
                f"GroundTruth lists item {item} more than once for query {query} "
                f"({repeated.size} repeated pair(s) in total)"
            )
        offsets.setflags(write=False)
        items.setflags(write=False)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "items", items)

    @classmethod
    def from_lists(cls, relevant: Sequence[Sequence[int]]) -> GroundTruth:
        """Build from ``Q`` lists of relevant gallery indices, one per query; a repeat is a ValueError."""
        lengths = np.fromiter((len(row) for row in relevant), dtype=np.int64, count=len(relevant))
        offsets = np.zeros(len(relevant) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [int(item) for row in relevant for item in row]
        return cls(offsets=offsets, items=np.asarray(flat, dtype=np.int64))

    @classmethod
    def from_pairs(cls, queries: npt.ArrayLike, items: npt.ArrayLike, num_queries: int) -> GroundTruth:
        """Build from ``(P,)`` query indices in ``[0, num_queries)`` and ``(P,)`` gallery indices."""
        q = _as_int64(queries, "queries")
        it = _as_int64(items, "items")
        if q.ndim != 1 or it.ndim != 1 or q.shape != it.shape:
            raise ValueError(f"queries and items must be 1-D of equal length, got {q.shape} and {it.shape}")
        if q.size and (q.min() < 0 or q.max() >= num_queries):
            raise ValueError(f"query indices must lie in [0, {num_queries}), got {q.min()} .. {q.max()}")
        order = np.argsort(q, kind="stable")
        offsets = np.zeros(num_queries + 1, dtype=np.int64)
        np.cumsum(np.bincount(q, minlength=num_queries), out=offsets[1:])
        return cls(offsets=offsets, items=it[order])

    @property
    def num_queries(self) -> int:
        """``Q``."""
        return self.offsets.size - 1

    @property
    def num_relevant(self) -> np.ndarray:
        """``(Q,) int64`` number of relevant items per query."""
        return np.diff(self.offsets)

    def select(self, rows: npt.ArrayLike) -> GroundTruth:
        """Ground truth of ``rows``: ``(Q',) int`` query indices (in that order) or a ``(Q,) bool`` mask."""
        idx = np.arange(self.num_queries)[np.asarray(rows)]
        counts = self.num_relevant[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # Gather every selected segment at once: position = segment start + rank within the segment.
        starts = np.repeat(self.offsets[idx], counts)
        within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], counts)
        return GroundTruth(offsets=offsets, items=self.items[starts + within])


def hit_matrix(topk: npt.ArrayLike, gt: GroundTruth) -> np.ndarray:
    """``(Q, K) bool``: ``topk[q, j]`` is relevant to query ``q`` and is its first occurrence in row ``q``.

    ``topk``: ``(Q, K)`` integer gallery indices, ``-1`` for padding (never a hit).
    """
    retrieved = _check_topk(topk, gt)
    num_queries = retrieved.shape[0]
    valid = retrieved >= 0
    if retrieved.size == 0 or gt.items.size == 0:
        return np.zeros(retrieved.shape, dtype=bool)

    key_width = max(_max_or(gt.items, -1), _max_or(retrieved, -1)) + 1
    truth_keys = np.sort(_pair_keys(_query_of_item(gt.offsets), gt.items, num_queries, key_width))
    query = np.broadcast_to(np.arange(num_queries, dtype=np.int64)[:, None], retrieved.shape)
    # Padding gets key -1, below every real key, so it can never match.
    keys = np.where(valid, query * key_width + retrieved, -1)
    pos = np.minimum(np.searchsorted(truth_keys, keys), truth_keys.size - 1)
    relevant = valid & (truth_keys[pos] == keys)
    return relevant & _first_occurrence(retrieved)


def metrics_from_hits(
    hits: npt.ArrayLike, num_relevant: npt.ArrayLike, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    """Metrics (see module docstring) from a ``(Q, K) bool`` hit matrix and ``(Q,) int`` relevant counts."""
    hit, relevant = _check_hits(hits, num_relevant)
    ks = _check_ks(ks, hit.shape[1])

    has_truth = relevant > 0
    num_eval = int(has_truth.sum())
    total_relevant = int(relevant.sum())
    cum_hits = np.cumsum(hit, axis=1, dtype=np.int64)
    hit_eval, cum_eval, rel_eval = hit[has_truth], cum_hits[has_truth], relevant[has_truth]
    # Rank i (1-based) is discounted by 1 / log2(i + 1); cumulative sums give DCG and ideal DCG at every k.
    discount = 1.0 / np.log2(np.arange(2, hit.shape[1] + 2, dtype=np.float64))
    cum_dcg = np.cumsum(hit_eval * discount, axis=1)
    cum_ideal = np.cumsum(discount)

    out: dict[str, float] = {}
    for k in ks:
        found = cum_hits[:, k - 1]
        out[f"recall@{k}"] = _ratio(int(found.sum()), total_relevant)
        found_eval = cum_eval[:, k - 1]
        precision_at_rank = cum_eval[:, :k] / np.arange(1, k + 1, dtype=np.float64)
        average_precision = (precision_at_rank * hit_eval[:, :k]).sum(axis=1) / np.minimum(k, rel_eval)
        out[f"per_query_recall@{k}"] = _mean(found_eval / np.maximum(rel_eval, 1))
        out[f"hit_rate@{k}"] = _mean(found_eval > 0)
        out[f"precision@{k}"] = _mean(found_eval / k)
        out[f"map@{k}"] = _mean(average_precision)
        out[f"ndcg@{k}"] = _mean(cum_dcg[:, k - 1] / cum_ideal[np.minimum(k, rel_eval) - 1])
    out["num_queries"] = float(hit.shape[0])
    out["num_queries_without_truth"] = float(hit.shape[0] - num_eval)
    return out


def average_precision_at_r(hits: npt.ArrayLike, num_relevant: npt.ArrayLike) -> np.ndarray:
    """``(Q,) float64`` AP@R of each query (``nan`` for a query without truth) from a ``(Q, K) bool`` hit
    matrix (:func:`hit_matrix`) and ``(Q,) int`` relevant counts ``R_q``.

    Raises ``ValueError`` when some query has ``R_q > K``: its first ``R_q`` ranks are unknown, and
    truncating them would silently change the metric's cut-off.
    """
    hit, relevant = _check_hits(hits, num_relevant)
    if relevant.size and relevant.max() > hit.shape[1]:
        short = int(np.count_nonzero(relevant > hit.shape[1]))
        raise ValueError(
            f"map@R needs each query's first R ranks: {short} query(ies) have up to R={relevant.max()} "
            f"relevant items but only K={hit.shape[1]} columns were retrieved"
        )
    ranks = np.arange(1, hit.shape[1] + 1, dtype=np.int64)
    counted = hit & (ranks[None, :] <= relevant[:, None])  # only the first R_q ranks of each row
    cum_hits = np.cumsum(counted, axis=1, dtype=np.int64)
    precision_sum = (cum_hits / ranks * counted).sum(axis=1)
    out = np.full(hit.shape[0], np.nan)
    has_truth = relevant > 0
    out[has_truth] = precision_sum[has_truth] / relevant[has_truth]
    return out


def map_at_r(topk: npt.ArrayLike, gt: GroundTruth) -> float:
    """MAP@R of ``(Q, K)`` retrieved indices against ``gt``: the mean AP@R over queries with truth (``nan``
    if none). ``K`` must reach every query's ``R``: search ``max(gt.num_relevant)`` items."""
    return _mean(_finite(average_precision_at_r(hit_matrix(topk, gt), gt.num_relevant)))


def retrieval_metrics(
    topk: npt.ArrayLike, gt: GroundTruth, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    """Metrics of ``(Q, K)`` retrieved indices against ``gt`` (definitions in the module docstring).

    Keys: ``recall@k``, ``per_query_recall@k``, ``hit_rate@k``, ``precision@k``, ``map@k``, ``ndcg@k`` for
    each ``k``, then ``num_queries`` and ``num_queries_without_truth``. Raises ``ValueError`` if some ``k``
    exceeds ``K``.
    """
    return metrics_from_hits(hit_matrix(topk, gt), gt.num_relevant, ks)


def metrics_by_group(
    topk: npt.ArrayLike,
    gt: GroundTruth,
    *,
    query_groups: npt.ArrayLike | None = None,
    item_groups: npt.ArrayLike | None = None,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[Hashable, dict[str, float]]:
    """``retrieval_metrics`` per group, ``{label: {metric: value}}`` with labels in sorted order.

    Give exactly one of:

    * ``query_groups``: ``(Q,)`` sortable label per query (e.g. section); a group is the metrics of its
      queries, queries without truth included in ``num_queries_without_truth``.
    * ``item_groups``: ``(G,)`` sortable label per gallery item (e.g. product category), ``G`` above every
      index in ``gt``; a pair belongs to its item's group. Group ``c`` scores only ``c``'s pairs (items
      outside ``c`` count as irrelevant) over the queries with at least one of them, so its ``recall@k`` is
      hits on ``c``'s pairs / ``c``'s pairs. Labels without a pair are left out.

    ``topk``: ``(Q, K)`` integer gallery indices, ``-1`` for padding.
    """
    if (query_groups is None) == (item_groups is None):
        raise ValueError("metrics_by_group needs exactly one of query_groups and item_groups")
    hits = hit_matrix(topk, gt)
    ks = _check_ks(ks, hits.shape[1])
    if query_groups is not None:
        labels = np.asarray(query_groups)
        if labels.shape != (hits.shape[0],):
            raise ValueError(f"query_groups must have shape ({hits.shape[0]},), got {labels.shape}")
        unique, codes = np.unique(labels, return_inverse=True)
        num_relevant = gt.num_relevant
        by_query: dict[Hashable, dict[str, float]] = {}
        for code, label in enumerate(unique):
            rows = codes == code
            by_query[_plain(label)] = metrics_from_hits(hits[rows], num_relevant[rows], ks)
        return by_query

    labels = np.asarray(item_groups)
    if labels.ndim != 1 or labels.size <= _max_or(gt.items, -1):
        raise ValueError(
            f"item_groups must be 1-D with an entry for every gallery index in the truth "
            f"(> {_max_or(gt.items, -1)}), got shape {labels.shape}"
        )
    unique, codes = np.unique(labels, return_inverse=True)
    pair_code = codes[gt.items]
    query_of_pair = _query_of_item(gt.offsets)
    # A hit is a relevant item, so its group is its pair's group; -1 marks the columns that are not hits.
    hit_code = np.full(hits.shape, -1, dtype=np.int64)
    hit_code[hits] = codes[np.asarray(topk, dtype=np.int64)[hits]]
    result: dict[Hashable, dict[str, float]] = {}
    for code in np.unique(pair_code):
        relevant = np.bincount(query_of_pair[pair_code == code], minlength=gt.num_queries)
        rows = relevant > 0
        result[_plain(unique[code])] = metrics_from_hits(hit_code[rows] == code, relevant[rows], ks)
    return result


def grouped_retrieval_metrics(
    topk: npt.ArrayLike, gt: GroundTruth, groups: npt.ArrayLike, ks: Iterable[int] = DEFAULT_KS
) -> dict[Hashable, dict[str, float]]:
    """``retrieval_metrics`` per query label: ``metrics_by_group(topk, gt, query_groups=groups, ks=ks)``."""
    return metrics_by_group(topk, gt, query_groups=groups, ks=ks)


def flatten_groups(
    grouped: Mapping[Hashable, Mapping[str, float]], prefix: str, metrics: Iterable[str]
) -> dict[str, float]:
    """``{f"{prefix}/{label}/{metric}": value}`` for the chosen ``metrics`` of each group, e.g.
    ``val_none/category/TROUSERS/recall@15``: the flat keys of ``metrics.json`` and the loggers."""
    names = list(metrics)
    return {
        f"{prefix}/{label}/{name}": float(values[name]) for label, values in grouped.items() for name in names
    }


def _check_topk(topk: npt.ArrayLike, gt: GroundTruth) -> np.ndarray:
    retrieved = np.asarray(topk)
    if retrieved.ndim != 2:
        raise ValueError(f"topk must be 2-D (Q, K), got shape {retrieved.shape}")
    if retrieved.size and not np.issubdtype(retrieved.dtype, np.integer):
        raise ValueError(f"topk must hold integer gallery indices, got dtype {retrieved.dtype}")
    retrieved = retrieved.astype(np.int64, copy=False)
    if retrieved.shape[0] != gt.num_queries:
        raise ValueError(
            f"topk has {retrieved.shape[0]} rows but the ground truth has {gt.num_queries} queries"
        )
    if retrieved.size and retrieved.min() < -1:
        row, col = np.argwhere(retrieved < -1)[0]
        raise ValueError(f"topk entries must be >= -1 (padding), got {retrieved[row, col]} at [{row}, {col}]")
    return retrieved


def _check_hits(hits: npt.ArrayLike, num_relevant: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    hit = np.asarray(hits, dtype=bool)
    relevant = _as_int64(num_relevant, "num_relevant")
    if hit.ndim != 2:
        raise ValueError(f"hits must be 2-D (Q, K), got shape {hit.shape}")
    if relevant.shape != (hit.shape[0],):
        raise ValueError(f"num_relevant must have shape ({hit.shape[0]},), got {relevant.shape}")
    return hit, relevant


def _check_ks(ks: Iterable[int], width: int) -> list[int]:
    checked: list[int] = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(f"k must be an int, got {k!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if k > width:
            raise ValueError(f"k={k} exceeds the number of retrieved columns K={width}")
        if int(k) not in checked:
            checked.append(int(k))
    if not checked:
        raise ValueError("ks must contain at least one k")
    return checked


def _first_occurrence(retrieved: np.ndarray) -> np.ndarray:
    # A stable sort keeps equal indices in column order, so the first of each run is the earliest column.
    order = np.argsort(retrieved, axis=1, kind="stable")
    ordered = np.take_along_axis(retrieved, order, axis=1)
    repeat_sorted = np.zeros(retrieved.shape, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return ~repeat


def _pair_keys(query: np.ndarray, item: np.ndarray, num_queries: int, width: int) -> np.ndarray:
    if num_queries * max(width, 1) > _INT64_MAX:
        raise ValueError(f"{num_queries} queries x {width} gallery items overflow int64 pair keys")
    return query * width + item


def _query_of_item(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(offsets.size - 1, dtype=np.int64), np.diff(offsets))


def _as_int64(values: npt.ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer, got dtype {array.dtype}")
    return array.astype(np.int64, copy=True)


def _max_or(values: np.ndarray, default: int) -> int:
    return int(values.max()) if values.size else default


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else float("nan")


def _plain(label: object) -> Hashable:
    # numpy scalars become Python ones, so keys compare, print and serialise like the caller's labels.
    return label.item() if isinstance(label, np.generic) else label


def _finite(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")
