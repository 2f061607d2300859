"""Self-training on a bundle search: confident predictions fed back into the bundle priors as pseudo
pairs, pass after pass (the loop of the ``self-train`` stage and of ``train-adapter``'s
``adapter.self_train``; docs/reranking.md).

Confidence: a slot's re-ranked score, the best over the bundle's crops that found the product, on the
chain's scale (``(cosine + 1) / 2`` times the steps' factors;
:func:`~fashion_retrieval.search.garments.rank_bundles_sourced`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from omegaconf import DictConfig

from fashion_retrieval.rerank.bundle_priors import BundlePriorData, pseudo_statistics

log = logging.getLogger(__name__)

Search = Callable[[BundlePriorData], tuple[np.ndarray, np.ndarray]]


def confident_pairs(
    ranked: np.ndarray, scores: np.ndarray, confidence: float, max_per_bundle: int
) -> list[list[int]]:
    """Each bundle's confident predictions: slots of ``ranked (Q, k)`` whose ``scores (Q, k)`` reach
    ``confidence`` (``nan`` never does), best score first (ties: better slot), at most ``max_per_bundle``.
    Returns ``Q`` lists of catalogue indices."""
    ranked = np.asarray(ranked, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    kept: list[list[int]] = []
    for ids, values in zip(ranked, scores):
        passing = np.flatnonzero((ids >= 0) & (np.nan_to_num(values, nan=-np.inf) >= confidence))
        order = passing[np.argsort(-values[passing], kind="stable")]
        kept.append([int(p) for p in ids[order[:max_per_bundle]]])
    return kept


def self_training_passes(
    search: Search,
    base: BundlePriorData,
    sections: Sequence[int],
    num_products: int,
    confidence: float,
    max_per_bundle: int,
    passes: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]], list[dict[str, float]]]:
    """``passes`` searches that each add pseudo pairs, then the final search.

    ``search(prior_data) -> (ranked (Q, k), scores (Q, k))`` over the query bundles ``base.query_ids``
    (sections ``(Q,)``); ``base``: the known (training) bundles. Returns the final ``ranked``, ``scores``,
    the pseudo pairs (bundle id -> catalogue indices) and one log row per pass.
    """
    pseudo: dict[str, list[int]] = {}
    rows: list[dict[str, float]] = []
    data = base
    for number in range(1, passes + 1):
        ranked, scores = search(data)
        added = 0
        for bundle, products in zip(
            base.query_ids, confident_pairs(ranked, scores, confidence, max_per_bundle)
        ):
            known = pseudo.setdefault(bundle, [])
            new = [p for p in products if p not in known]
            known += new
            added += len(new)
        total = sum(len(products) for products in pseudo.values())
        bundles = sum(bool(products) for products in pseudo.values())
        rows.append({"pass": number, "added": added, "pseudo_pairs": total, "pseudo_bundles": bundles})
        log.info("self-train pass %d: %d pseudo pairs added, %d in %d bundles", number, added, total, bundles)
        extra = pseudo_statistics(base.query_ids, pseudo, sections, num_products, base.query_embeddings)
        data = replace(base, statistics=base.statistics.extended(extra))
    ranked, scores = search(data)
    return ranked, scores, pseudo, rows


def configured_passes(
    settings: DictConfig, search: Search, base: BundlePriorData, sections: Sequence[int], num_products: int
) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]], list[dict[str, float]]]:
    """:func:`self_training_passes` with the confidence, cap and passes of ``settings`` (``self_train:``)."""
    return self_training_passes(
        search,
        base,
        sections,
        num_products,
        float(settings.confidence),
        int(settings.max_per_bundle),
        int(settings.passes),
    )


def pseudo_precision(
    pseudo: dict[str, list[int]], bundle_ids: Sequence[str], truth: Sequence[Sequence[int]]
) -> float:
    """Share of pseudo pairs that are true (validation only; ``nan`` without pseudo pairs)."""
    truth_of = dict(zip(bundle_ids, truth))
    pairs = [(b, p) for b, products in pseudo.items() for p in products]
    if not pairs:
        return float("nan")
    return sum(p in truth_of[b] for b, p in pairs) / len(pairs)
