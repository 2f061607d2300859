"""``infer``: search the catalogue for the test bundles (whole photos or garment crops, within their section),
write submission.csv."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from fashion_retrieval.evaluation.submission import write_test_submission
from fashion_retrieval.index.eligibility import gallery_section_array
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.bundles import search_bundles
from fashion_retrieval.search.loading import load_for_search

log = logging.getLogger(__name__)


def infer(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    encoder, datamodule, index = load_for_search(cfg, context.checkpoint(cfg))
    # Every training match tells a product's section here (no validation split to protect at test time).
    gallery_sections = gallery_section_array(datamodule.gallery_ids, datamodule.cat.product_sections())
    if not datamodule.cat.test_bundle_ids:
        raise ValueError(f"{datamodule.data_dir}: no test bundles in bundles_product_match_test.csv")
    queries, topk = search_bundles(cfg, encoder, datamodule, index, "test", gallery_sections)
    k = cfg.retrieval.k
    written = write_test_submission(
        cfg.infer.submission_path, datamodule.cat, index.ids, queries.bundle_ids, topk, gallery_sections, k
    )
    log.info("infer: wrote %s (%d bundles x %d products)", cfg.infer.submission_path, written, k)
    return {"infer/num_bundles": float(written)}
