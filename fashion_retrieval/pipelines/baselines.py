"""``baselines``: what the fine-tuned model must beat, on the same validation bundles and gallery.

- ``random``: a random ranking (random unit vectors through the same section-aware search);
- ``colour_histogram``: global HSV histograms, Bhattacharyya similarity;
- ``pretrained``: the backbone's pooled features before any fine-tuning (no projection head).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.baselines.colour_histogram import histogram_embeddings
from fashion_retrieval.callbacks.evaluator import evaluate_embeddings
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.rerank.section import gallery_section_array

log = logging.getLogger(__name__)


def baseline_embeddings(
    name: str, cfg: DictConfig, datamodule: ChallengeDataModule
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, D)`` query and ``(G, D)`` gallery embeddings of one baseline."""
    queries = datamodule.query_set("val")
    gallery_paths = [str(p) for p in datamodule.cat.products["image_path"]]
    if name == "random":
        rng = np.random.default_rng(cfg.seed)
        vectors = rng.standard_normal((len(queries.bundle_ids) + len(gallery_paths), 64)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors[: len(queries.bundle_ids)], vectors[len(queries.bundle_ids) :]
    if name == "colour_histogram":
        query_crop = datamodule.hparams.query_crop  # the region the trained model sees, for a fair comparison
        return histogram_embeddings(queries.image_paths, crop=query_crop), histogram_embeddings(gallery_paths)
    if name == "pretrained":
        encoder: ImageEncoder = instantiate(cfg.model.encoder).eval()
        torch.manual_seed(cfg.seed)
        return (
            embed_loader(encoder.backbone_features, datamodule.query_dataloader("val")),
            embed_loader(encoder.backbone_features, datamodule.gallery_dataloader()),
        )
    raise ValueError(f"unknown baseline {name!r}; choose from random, colour_histogram, pretrained")


def baselines(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    datamodule: ChallengeDataModule = instantiate(cfg.data)
    datamodule.setup()
    queries = datamodule.query_set("val")
    gallery_sections = gallery_section_array(datamodule.gallery_ids, datamodule.gallery_sections())
    metrics: dict[str, float] = {}
    for name in cfg.baselines.names:
        query_embeddings, gallery_embeddings = baseline_embeddings(name, cfg, datamodule)
        scores = evaluate_embeddings(
            query_embeddings,
            gallery_embeddings,
            datamodule.gallery_ids,
            np.asarray(queries.sections),
            gallery_sections,
            queries.truth,
            cfg.retrieval.ks,
        )
        log.info("baseline %s: %s", name, {k: round(v, 4) for k, v in scores.items()})
        metrics.update({f"baseline/{name}/{k}": v for k, v in scores.items()})
    return metrics
