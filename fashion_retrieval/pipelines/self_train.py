"""``self-train``: search the test bundles, feed their confident predictions back into the bundle priors as
pseudo pairs, search again; write the last search's submission and a log of each pass.

Confidence: a slot's re-ranked score, the best over the bundle's crops that found the product, on the
chain's scale (``(cosine + 1) / 2`` times the steps' factors; ``rank_bundles_sourced``). A slot at or above
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
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.evaluation.metrics import GroundTruth, retrieval_metrics
from fashion_retrieval.evaluation.submission import write_test_submission
from fashion_retrieval.io import write_json
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    CoOccurrence,
    SimilarBundles,
    bundle_prior_steps,
)
from fashion_retrieval.search.bundles import bundle_prior_data
from fashion_retrieval.search.retriever import Retriever
from fashion_retrieval.search.self_training import configured_passes, pseudo_precision

log = logging.getLogger(__name__)


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
    retriever = Retriever.from_config(cfg, context.checkpoint(cfg))
    datamodule = retriever.datamodule
    queries = datamodule.query_set(split)
    needs_embeddings = any(prior.needs_embeddings for prior in priors)
    base = bundle_prior_data(cfg, retriever.encoder, datamodule, split, needs_embeddings)

    def search(data: BundlePriorData) -> tuple[np.ndarray, np.ndarray]:
        found = retriever.search_split(split, data)
        return found.ranked, found.scores

    ranked, _, pseudo, rows = configured_passes(
        settings, search, base, queries.sections, len(datamodule.catalogue_ids)
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
            settings.submission_path,
            datamodule.cat,
            retriever.product_ids,
            queries.bundle_ids,
            ranked,
            retriever.known_sections,
            k,
        )
        log.info("self-train: wrote %s", settings.submission_path)
    write_json(Path(settings.log_path), {"split": split, "passes": rows, "metrics": metrics})
    return metrics
