"""``infer``: search the catalogue for the test bundles (whole photos or garment crops, within their section),
write submission.csv."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from fashion_retrieval.evaluation.submission import write_test_submission
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.retriever import Retriever

log = logging.getLogger(__name__)


def infer(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    retriever = Retriever.from_config(cfg, context.checkpoint(cfg))
    catalogue = retriever.catalogue
    if not catalogue.test_bundle_ids:
        raise ValueError(
            f"{retriever.datamodule.data_dir}: no test bundles in bundles_product_match_test.csv"
        )
    found = retriever.search_split("test")
    k = cfg.retrieval.k
    # Every training match tells a product's section here (no validation split to protect at test time).
    written = write_test_submission(
        cfg.infer.submission_path,
        catalogue,
        retriever.product_ids,
        found.queries.bundle_ids,
        found.ranked,
        retriever.known_sections,
        k,
    )
    log.info("infer: wrote %s (%d bundles x %d products)", cfg.infer.submission_path, written, k)
    return {"infer/num_bundles": float(written)}
