"""Metrics of a searched set of challenge bundles with truth (the validation bundles): overall, per query
section and per product category, under the ``val_<validate.name>/`` prefix (definitions: docs/metrics.md)."""

from __future__ import annotations

import logging

import numpy as np
from omegaconf import DictConfig

from fashion_retrieval.data.catalogue import QuerySet
from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    flatten_groups,
    metrics_by_group,
    retrieval_metrics,
)

log = logging.getLogger(__name__)


def validation_metrics(
    cfg: DictConfig, datamodule: CatalogueData, queries: QuerySet, ranked: np.ndarray
) -> dict[str, float]:
    """``val_<validate.name>/...`` metrics of the validation bundles ``queries`` ranked as ``ranked (Q, k)``
    catalogue indices: overall, per query section and per product category."""
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
    categories = np.asarray(datamodule.cat.product_categories)
    for breakdown, groups in (
        ("section", {"query_groups": np.asarray(queries.sections)}),
        ("category", {"item_groups": categories}),
    ):
        grouped = metrics_by_group(ranked, truth, ks=[k], **groups)
        result.update(flatten_groups(grouped, f"val_{name}/{breakdown}", [f"recall@{k}", f"map@{k}"]))
    return result
