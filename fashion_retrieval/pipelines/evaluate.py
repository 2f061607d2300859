"""``evaluate``: check a submission file against the challenge rules and score it against a truth file."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.evaluation.submission import score_submission, validate_submission
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    submission = Path(cfg.evaluate.submission_path)
    truth = Path(cfg.evaluate.truth_path)
    if not submission.is_file():
        raise FileNotFoundError(
            f"submission not found: {submission} (run infer, or pass evaluate.submission_path=)"
        )
    if not truth.is_file():
        raise FileNotFoundError(f"truth file not found: {truth} (pass evaluate.truth_path=)")
    catalogue = load_catalogue(cfg.paths.data_dir, image_check="none")
    validate_submission(
        submission,
        test_bundle_ids=catalogue.test_bundle_ids,
        catalogue_ids=set(catalogue.products["product_asset_id"]),
        k=cfg.retrieval.k,
        product_section=catalogue.product_sections(),
        bundle_section=catalogue.bundle_sections(),
    )
    scores = score_submission(submission, truth, k=cfg.retrieval.k)
    log.info("evaluate: %s: %s", submission, scores)
    return {f"test/{name}": value for name, value in scores.items()}
