"""``validate``: score the validation bundles with ``ckpt_path`` through the configured detector and slot
merging (``detector=none|zones|yolo|truth``, ``retrieval.merge=...``), without training.

Besides the overall metrics, ``recall@k`` and ``map@k`` (``k = retrieval.k``) per query section and per
product category: ``val_<name>/section/<section>/recall@15``, ``val_<name>/category/<category>/map@15``
(definitions in ``docs/metrics.md``), and the checkpoint's real-photo scores ``real/val_<name>/...``
(whole photos, :mod:`fashion_retrieval.evaluation.real_photos`)."""

from __future__ import annotations

import logging

import numpy as np
from omegaconf import DictConfig

from fashion_retrieval.data.datamodule import ChallengeDataModule, QuerySet
from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    flatten_groups,
    metrics_by_group,
    retrieval_metrics,
)
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.pipelines.bundle_search import search_bundles
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.index import datamodule_for
from fashion_retrieval.pipelines.infer import load_or_build_index

log = logging.getLogger(__name__)


def validate(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    checkpoint = context.checkpoint(cfg)
    encoder = load_encoder(checkpoint)
    datamodule = datamodule_for(cfg, encoder)
    index = load_or_build_index(cfg, encoder, datamodule, checkpoint)
    # Only the training split tells product sections here: validation must not read its own matches.
    queries, ranked = search_bundles(
        cfg, encoder, datamodule, index, "val", datamodule.gallery_section_array()
    )
    metrics = validation_metrics(cfg, datamodule, queries, ranked)
    row = f"val_{cfg.validate.name}"
    return {
        **metrics,
        **real_photo_scores(real_photo_settings(cfg), PhotoEncoder(encoder), row, context.output_dir),
    }


def validation_metrics(
    cfg: DictConfig, datamodule: ChallengeDataModule, queries: QuerySet, ranked: np.ndarray
) -> dict[str, float]:
    """``val_<validate.name>/...`` metrics of the validation bundles ``queries`` ranked as ``ranked (Q, k)``
    gallery indices: overall, per query section and per product category."""
    assert queries.truth is not None
    truth = GroundTruth.from_lists(queries.truth)
    metrics = retrieval_metrics(ranked, truth, list(cfg.retrieval.ks))
    name = cfg.validate.name
    result = {
        f"val_{name}/{metric}": float(value)
        for metric, value in metrics.items()
        if not metric.startswith("per_query_")
    }
    log.info("validate (%s): %s", name, {key: round(value, 4) for key, value in result.items()})
    k = int(cfg.retrieval.k)
    categories = np.asarray(datamodule.cat.products["product_description"])
    for breakdown, groups in (
        ("section", {"query_groups": np.asarray(queries.sections)}),
        ("category", {"item_groups": categories}),
    ):
        grouped = metrics_by_group(ranked, truth, ks=[k], **groups)
        result.update(flatten_groups(grouped, f"val_{name}/{breakdown}", [f"recall@{k}", f"map@{k}"]))
    return result
