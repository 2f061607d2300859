"""``infer``: search the catalogue for the test bundles (whole photos or garment crops, within their section),
write submission.csv."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.catalogue import Catalogue
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.evaluation.submission import write_submission
from fashion_retrieval.index.faiss_index import META_FILE, EmbeddingIndex, IndexMismatchError
from fashion_retrieval.io import contents_digest, file_digest
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.onnx_encoder import load_search_encoder
from fashion_retrieval.pipelines.bundle_search import search_bundles
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.index import build_index, datamodule_for
from fashion_retrieval.rerank.section import gallery_section_array, popular_within_section

log = logging.getLogger(__name__)


def load_or_build_index(
    cfg: DictConfig, encoder: ImageEncoder, datamodule: ChallengeDataModule, checkpoint: Path
) -> EmbeddingIndex:
    """Reuse ``index.dir`` when it holds the configured index type built from this very checkpoint and the
    catalogue images as they are now (their content digest), else build it."""
    index_dir = Path(cfg.index.dir)
    spec = instantiate(cfg.index.spec)
    if (index_dir / META_FILE).is_file():
        try:
            index = EmbeddingIndex.load(
                index_dir,
                expected_checkpoint_sha256=file_digest(checkpoint),
                spec=spec,
                expected_catalogue_sha256=contents_digest(datamodule.gallery_paths),
            )
        except IndexMismatchError as error:
            log.info("infer: %s; rebuilding", error)
        else:
            log.info("infer: reusing index %s", index_dir)
            return index
    return build_index(encoder, datamodule, checkpoint, index_dir, spec)


def load_for_search(
    cfg: DictConfig, context: RunContext
) -> tuple[ImageEncoder, ChallengeDataModule, EmbeddingIndex]:
    """The run's model (``encoder.backend``: PyTorch or its ONNX export), its data module and the
    catalogue index (checked to hold this catalogue)."""
    checkpoint = context.checkpoint(cfg)
    encoder = load_search_encoder(cfg, checkpoint)
    datamodule = datamodule_for(cfg, encoder)
    index = load_or_build_index(cfg, encoder, datamodule, checkpoint)
    if list(index.ids) != datamodule.gallery_ids:
        raise ValueError(
            f"index {cfg.index.dir} does not hold this catalogue's products; delete it to rebuild"
        )
    return encoder, datamodule, index


def write_test_submission(
    path: str | Path,
    catalogue: Catalogue,
    index: EmbeddingIndex,
    bundle_ids: Sequence[str],
    ranked: np.ndarray,
    gallery_sections: np.ndarray,
    k: int,
) -> int:
    """Write the submission of every test bundle of ``catalogue``: the searched ``bundle_ids`` with their
    ``(Q, k)`` gallery indices ``ranked``, and each test bundle without a photo with its section's most
    popular products (:func:`~fashion_retrieval.rerank.section.popular_within_section`), in the test file's
    order. Returns the number of bundles written."""
    if (ranked < 0).any():
        raise ValueError(f"fewer than {k} products are eligible for some bundle; the catalogue is too small")
    rows = dict(zip(bundle_ids, np.asarray(ranked)))
    popularity = catalogue.product_match_counts()
    sections = catalogue.bundle_sections()
    for bundle in catalogue.test_bundle_ids:
        if bundle not in rows:
            rows[bundle] = popular_within_section(popularity, gallery_sections, sections[bundle], k)
            if (rows[bundle] < 0).any():
                raise ValueError(f"{bundle}: fewer than {k} products of its section {sections[bundle]}")
    filled = len(catalogue.test_bundle_ids) - len(bundle_ids)
    if filled:
        log.warning(
            "submission: %d test bundle(s) without a photo got their section's %d most popular products",
            filled,
            k,
        )
    ids = np.asarray(index.ids)
    order = list(catalogue.test_bundle_ids)
    write_submission(path, order, [ids[rows[b]].tolist() for b in order], k=k)
    return len(order)


def infer(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    encoder, datamodule, index = load_for_search(cfg, context)
    # Every training match tells a product's section here (no validation split to protect at test time).
    gallery_sections = gallery_section_array(datamodule.gallery_ids, datamodule.cat.product_sections())
    if not datamodule.cat.test_bundle_ids:
        raise ValueError(f"{datamodule.data_dir}: no test bundles in bundles_product_match_test.csv")
    queries, topk = search_bundles(cfg, encoder, datamodule, index, "test", gallery_sections)
    k = cfg.retrieval.k
    written = write_test_submission(
        cfg.infer.submission_path, datamodule.cat, index, queries.bundle_ids, topk, gallery_sections, k
    )
    log.info("infer: wrote %s (%d bundles x %d products)", cfg.infer.submission_path, written, k)
    return {"infer/num_bundles": float(written)}
