"""``self-train``: search the test bundles, feed their confident predictions back into the bundle priors as
pseudo pairs, search again; write the last search's submission and a log of each pass.

Confidence: a slot's re-ranked score, the best over the bundle's crops that found the product, on the
chain's scale (``(cosine + 1) / 2`` times the steps' factors; ``rank_bundles_scored``). A slot at or above
``self_train.confidence`` is a pseudo pair (at most ``max_per_bundle`` per bundle and pass, best scores
first). Pseudo pairs only grow: each pass adds the confident predictions not kept yet, and a bundle's own
pseudo pairs never vote for it (the priors leave it out). Only the co-occurrence and similar-bundle priors
read pseudo pairs (section popularity stays a training statistic).

It reads the test bundles from ``bundles_product_match_test.csv`` and never the test truth file.
``self_train.split=val`` runs the same loop on the validation bundles (priors from the training split
only) and scores each pass against their truth: the way to measure it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.evaluation.metrics import GroundTruth, retrieval_metrics
from fashion_retrieval.io import write_json
from fashion_retrieval.pipelines.bundle_search import bundle_prior_data, search_bundles_scored
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.infer import load_for_search, write_test_submission
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    CoOccurrence,
    SimilarBundles,
    bundle_prior_steps,
    pseudo_statistics,
)
from fashion_retrieval.rerank.section import gallery_section_array

log = logging.getLogger(__name__)

Search = Callable[[BundlePriorData], tuple[np.ndarray, np.ndarray]]


def confident_pairs(
    ranked: np.ndarray, scores: np.ndarray, confidence: float, max_per_bundle: int
) -> list[list[int]]:
    """Each bundle's confident predictions: slots of ``ranked (Q, k)`` whose ``scores (Q, k)`` reach
    ``confidence`` (``nan`` never does), best score first (ties: better slot), at most ``max_per_bundle``.
    Returns ``Q`` lists of gallery indices."""
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
    the pseudo pairs (bundle id -> gallery indices) and one log row per pass.
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


def self_train(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.self_train
    passes, split = int(settings.passes), str(settings.get("split", "test"))
    if passes < 1:
        raise ValueError(f"self_train.passes must be at least 1, got {passes}")
    if split not in ("test", "val"):
        raise ValueError(f"self_train.split must be 'test' or 'val', got {split!r}")
    priors = bundle_prior_steps(instantiate(cfg.reranker))
    if not any(isinstance(prior, (CoOccurrence, SimilarBundles)) for prior in priors):
        raise ValueError(
            "self-train feeds pseudo pairs to the co-occurrence and similar-bundle priors, and this reranker "
            "has neither: use reranker=bundle_priors (or add their steps)"
        )
    encoder, datamodule, index = load_for_search(cfg, context)
    if split == "test":
        gallery_sections = gallery_section_array(datamodule.gallery_ids, datamodule.cat.product_sections())
    else:
        gallery_sections = datamodule.gallery_section_array()
    queries = datamodule.query_set(split)
    base = bundle_prior_data(cfg, encoder, datamodule, split, any(prior.needs_embeddings for prior in priors))

    def search(data: BundlePriorData) -> tuple[np.ndarray, np.ndarray]:
        _, ranked, scores = search_bundles_scored(
            cfg, encoder, datamodule, index, split, gallery_sections, data
        )
        return ranked, scores

    ranked, _, pseudo, rows = configured_passes(
        settings, search, base, queries.sections, len(datamodule.gallery_ids)
    )
    metrics: dict[str, float] = {
        "self_train/pseudo_pairs": float(sum(len(p) for p in pseudo.values())),
        **{f"self_train/pass{row['pass']}/added": float(row["added"]) for row in rows},
    }
    if split == "val":
        assert queries.truth is not None
        truth = GroundTruth.from_lists(queries.truth)
        scored = retrieval_metrics(ranked, truth, list(cfg.retrieval.ks))
        metrics.update(
            {
                f"self_train_val/{m}": float(v)
                for m, v in scored.items()
                if "@" in m and not m.startswith("per_query_")
            }
        )
        precision = pseudo_precision(pseudo, queries.bundle_ids, queries.truth)
        metrics["self_train_val/pseudo_precision"] = precision
    else:
        k = int(cfg.retrieval.k)
        write_test_submission(
            settings.submission_path, datamodule.cat, index, queries.bundle_ids, ranked, gallery_sections, k
        )
        log.info("self-train: wrote %s", settings.submission_path)
    write_json(Path(settings.log_path), {"split": split, "passes": rows, "metrics": metrics})
    return metrics


def pseudo_precision(
    pseudo: dict[str, list[int]], bundle_ids: Sequence[str], truth: Sequence[Sequence[int]]
) -> float:
    """Share of pseudo pairs that are true (validation only; ``nan`` without pseudo pairs)."""
    truth_of = dict(zip(bundle_ids, truth))
    pairs = [(b, p) for b, products in pseudo.items() for p in products]
    if not pairs:
        return float("nan")
    return sum(p in truth_of[b] for b, p in pairs) / len(pairs)
