"""Offline hard-negative mining: for each query, the most similar catalogue items that are not its matches.

Exact search in query chunks (a ``(chunk, G)`` block at a time, never ``Q x G``); no FAISS needed for
catalogue-sized galleries. The results feed the sampler that adds mined packshots to training batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _ids_per_row(name: str, rows: Sequence[Sequence[int]], count: int, limit: int) -> list[np.ndarray]:
    """Validate per-query id lists; negative ids are padding and dropped."""
    if len(rows) != count:
        raise ValueError(f"{name} must hold one list per query ({count}), got {len(rows)}")
    out = []
    for ids in rows:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ids = ids[ids >= 0]
        if ids.size and ids.max() >= limit:
            raise ValueError(
                f"{name} holds catalogue index {int(ids.max())}, but the catalogue has {limit} items"
            )
        out.append(ids)
    return out


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns of each row, by decreasing score, ties to the lowest column: ``(R, k)`` each.

    ``argpartition`` alone picks arbitrary members of a tie at the k-th value; rows with such a tie are
    resolved by column order so the result does not depend on the chunking or the platform.
    """
    rows, width = scores.shape
    if k >= width:
        columns = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return columns, np.take_along_axis(scores, columns, axis=1)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    greater = scores > kth
    tie = scores == kth
    # At least k scores are >= kth, so a row needs all its ties unless more tie than the cut leaves room for.
    selected = greater | tie
    need = k - greater.sum(axis=1)
    ambiguous = np.flatnonzero(tie.sum(axis=1) > need)
    if ambiguous.size:
        # Only rows whose tie straddles the cut pay for a cumulative count (e.g. rows padded with -inf).
        ties = tie[ambiguous]
        first = ties & (np.cumsum(ties, axis=1, dtype=np.int32) <= need[ambiguous, None])
        selected[ambiguous] = greater[ambiguous] | first
    columns = np.nonzero(selected)[1].reshape(rows, k)  # ascending columns within each row
    values = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)


def mine_hard_negatives(
    query_embeddings: np.ndarray,
    catalogue_embeddings: np.ndarray,
    positives: Sequence[Sequence[int]],
    num_negatives: int,
    query_sections: np.ndarray | None = None,
    catalogue_sections: np.ndarray | None = None,
    exclude: Sequence[Sequence[int]] | None = None,
    skip_top: int = 0,
    chunk_size: int = 1024,
) -> np.ndarray:
    """The ``num_negatives`` most similar catalogue items of each query, neither positive nor excluded.

    Args:
        query_embeddings: ``(Q, D)`` float32, L2-normalised (similarity is the dot product).
        catalogue_embeddings: ``(G, D)`` float32, L2-normalised.
        positives: per query, the catalogue indices of its true matches (never returned; -1 is padding).
        num_negatives: how many negatives per query.
        query_sections: ``(Q,)`` int, e.g. the category of the query; with ``catalogue_sections``, a query
            only gets negatives of its own section. -1 (unknown) on either side matches every section.
        catalogue_sections: ``(G,)`` int, the section of each catalogue item.
        exclude: per query, more catalogue indices never to return (other colours of the same article...).
        skip_top: drop the ``skip_top`` most similar remaining items before taking negatives. The very top
            "negatives" are often true matches that the annotations miss (an unlabelled product of the
            bundle, a near-duplicate packshot); training against them teaches the model to push real
            matches away. Skipping a few ranks trades a little hardness for much cleaner negatives
            (RocketQA, Qu et al. 2021; NV-Retriever, Moreira et al. 2024).
        chunk_size: queries per block; memory is ``chunk_size x G`` float32.

    Returns:
        ``(Q, num_negatives)`` int64 catalogue indices, most similar first, ties to the lowest index, padded
        with -1 when a query has fewer candidates.
    """
    query = np.asarray(query_embeddings, dtype=np.float32)
    catalogue = np.asarray(catalogue_embeddings, dtype=np.float32)
    if query.ndim != 2 or catalogue.ndim != 2 or query.shape[1] != catalogue.shape[1]:
        raise ValueError(
            f"embeddings must be (Q, D) and (G, D) with one D; got {query.shape}, {catalogue.shape}"
        )
    if num_negatives < 0 or skip_top < 0 or chunk_size < 1:
        raise ValueError(
            f"need num_negatives >= 0, skip_top >= 0, chunk_size >= 1; got {num_negatives}, {skip_top}, "
            f"{chunk_size}"
        )
    if not (np.isfinite(query).all() and np.isfinite(catalogue).all()):
        raise ValueError("embeddings hold NaN or inf")
    (num_queries, _), (num_catalogue, _) = query.shape, catalogue.shape
    positive_ids = _ids_per_row("positives", positives, num_queries, num_catalogue)
    excluded_ids = (
        _ids_per_row("exclude", exclude, num_queries, num_catalogue) if exclude is not None else None
    )
    if (query_sections is None) != (catalogue_sections is None):
        raise ValueError("give both query_sections and catalogue_sections, or neither")
    if query_sections is not None:
        query_sections = np.asarray(query_sections).reshape(-1)
        catalogue_sections = np.asarray(catalogue_sections).reshape(-1)
        if query_sections.shape != (num_queries,) or catalogue_sections.shape != (num_catalogue,):
            raise ValueError(
                f"sections must be ({num_queries},) and ({num_catalogue},); got {query_sections.shape}, "
                f"{catalogue_sections.shape}"
            )

    result = np.full((num_queries, num_negatives), -1, dtype=np.int64)
    k = min(skip_top + num_negatives, num_catalogue)
    if num_negatives == 0 or k <= skip_top:
        return result
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        scores = query[start:stop] @ catalogue.T
        banned = [positive_ids[start:stop]] + ([excluded_ids[start:stop]] if excluded_ids is not None else [])
        for lists in banned:
            rows = np.repeat(np.arange(stop - start), [len(ids) for ids in lists])
            columns = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
            scores[rows, columns] = -np.inf
        if query_sections is not None:
            own = query_sections[start:stop, None]
            other = (catalogue_sections[None, :] != own) & (catalogue_sections[None, :] != -1) & (own != -1)
            scores[other] = -np.inf
        columns, values = _top_k_rows(scores, k)
        columns, values = columns[:, skip_top:], values[:, skip_top:]
        result[start:stop, : columns.shape[1]] = np.where(np.isfinite(values), columns, -1)
    return result
