"""``validate``: score the validation bundles with ``ckpt_path`` through the configured detector and slot
merging (``detector=none|zones|yolo|truth``, ``retrieval.merge=...``), without training.

Besides the overall metrics, ``recall@k`` and ``map@k`` (``k = retrieval.k``) per query section and per
product category: ``val_<name>/section/<section>/recall@15``, ``val_<name>/category/<category>/map@15``
(definitions in ``docs/metrics.md``), and the checkpoint's real-photo scores ``real/val_<name>/...``
(whole photos, :mod:`fashion_retrieval.evaluation.real_photos`)."""

from __future__ import annotations

from omegaconf import DictConfig

from fashion_retrieval.evaluation.bundle_metrics import validation_metrics
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.retriever import Retriever


def validate(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    retriever = Retriever.from_config(cfg, context.checkpoint(cfg))
    # Only the training split tells product sections here: validation must not read its own matches.
    found = retriever.search_split("val")
    metrics = validation_metrics(cfg, retriever.datamodule, found.queries, found.ranked)
    row = f"val_{cfg.validate.name}"
    photo_encoder = PhotoEncoder(retriever.encoder)
    return {**metrics, **real_photo_scores(real_photo_settings(cfg), photo_encoder, row, context.output_dir)}
