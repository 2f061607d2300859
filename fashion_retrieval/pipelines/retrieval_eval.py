"""``retrieval-eval``: retrieval on another dataset (``dataset=clothing_small|deepfashion_inshop|...``).

Embeds the reader's queries and gallery (``fashion_retrieval/data/readers/``) with ``ckpt_path`` (the
trained embedding), or without a checkpoint with the pretrained backbone of ``model=`` (its pooled
features, no projection head: the "before fine-tuning" view), searches the gallery (``index=``, flat by
default) leaving out each query's own gallery row, and scores the ranking: ``precision@k``,
``hit_rate@k`` (CMC@k), ``recall@k`` (challenge convention) and ``map@R`` overall, ``precision@k`` and
``map@R`` per query class. Keys: ``retrieval_eval/<name>/precision@10``,
``retrieval_eval/<name>/class/<class>/map@R`` (definitions in ``docs/metrics.md``); a Markdown table goes
to ``retrieval_eval_<name>.md`` in the run directory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.readers import ImageList, RetrievalSet
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.evaluation.metrics import (
    GroundTruth,
    average_precision_at_r,
    hit_matrix,
    metrics_by_group,
    metrics_from_hits,
)
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

Encode = Callable[[torch.Tensor], torch.Tensor]
OVERALL_METRICS = ("precision", "hit_rate", "recall")


def drop_own(found: np.ndarray, query_in_gallery: np.ndarray, k: int) -> np.ndarray:
    """``(Q, k)`` gallery indices: each row of ``found`` ``(Q, K >= k)`` without the query's own gallery
    row ``query_in_gallery[q]`` (``-1``: none), order kept; rows are cut to their first ``k`` others."""
    if found.shape[1] < k:
        raise ValueError(f"need at least k={k} columns to keep, got {found.shape[1]}")
    own = (found == query_in_gallery[:, None]) & (query_in_gallery[:, None] >= 0)
    # A stable sort on "is own" moves that one column to the end and keeps the others in rank order.
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def search_set(
    query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, k: int, data: RetrievalSet, spec: IndexSpec
) -> np.ndarray:
    """``(Q, min(k, G'))`` ranked gallery indices; ``G'`` is the gallery less the query's own row."""
    index = EmbeddingIndex(gallery_embeddings, [str(j) for j in range(len(gallery_embeddings))], spec=spec)
    if data.query_in_gallery is None:
        return index.search(query_embeddings, min(k, len(index)))[1]
    k = min(k, len(index) - 1)
    _, found = index.search(query_embeddings, k + 1)
    return drop_own(found, data.query_in_gallery, k)


def search_depth(data: RetrievalSet, ks: Sequence[int], with_map_at_r: bool) -> int:
    """How many items to retrieve per query: the largest ``k``, and every query's ``R`` for MAP@R."""
    depth = max(ks)
    if with_map_at_r:
        depth = max(depth, max(len(found) for found in data.positives))
    return depth


def set_metrics(
    ranked: np.ndarray, data: RetrievalSet, ks: Sequence[int], with_map_at_r: bool
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall metrics and ``{class: {precision@k, map@R}}`` per query class (``data.queries.categories``)."""
    truth = GroundTruth.from_lists(data.positives)
    hits = hit_matrix(ranked, truth)
    scores = metrics_from_hits(hits, truth.num_relevant, ks)
    overall = {f"{name}@{k}": scores[f"{name}@{k}"] for name in OVERALL_METRICS for k in ks}
    classes = np.asarray(data.queries.categories)
    grouped = metrics_by_group(ranked, truth, query_groups=classes, ks=ks)
    per_class = {
        str(label): {f"precision@{k}": values[f"precision@{k}"] for k in ks}
        for label, values in grouped.items()
    }
    if with_map_at_r:
        per_query = average_precision_at_r(hits, truth.num_relevant)
        overall["map@R"] = float(np.mean(per_query))
        for label in per_class:
            per_class[label]["map@R"] = float(np.mean(per_query[classes == label]))
    overall["num_queries"] = float(len(data.queries))
    overall["num_gallery"] = float(len(data.gallery))
    return overall, per_class


def image_loader(images: ImageList, size: Sequence[int], batch_size: int, num_workers: int) -> DataLoader:
    """The images (their boxes when the reader gives them) resized to ``size = (H, W)``, in order."""
    boxes = None if images.boxes is None else [tuple(float(v) for v in row) for row in images.boxes]
    dataset = ImageDataset([str(p) for p in images.paths], eval_transform(size), boxes=boxes)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def retrieval_encoder(cfg: DictConfig, context: RunContext) -> tuple[Encode, str, tuple[int, int]]:
    """The trained encoder (this run's ``train`` or ``ckpt_path``), else the pretrained backbone (``model=``),
    with the ``(H, W)`` its backbone's pretrained weights were made for.

    ``retrieval_eval.features``: ``auto`` (a checkpoint's embedding; without one, the backbone's pooled
    features, since an untrained head is random) or ``backbone`` (pooled features, bypassing the head).
    """
    features = cfg.retrieval_eval.features
    if features not in ("auto", "backbone"):
        raise ValueError(f"retrieval_eval.features must be auto or backbone, got {features!r}")
    checkpoint = context.trained_checkpoint or (Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None)
    if checkpoint is None:
        encoder = instantiate(cfg.model.encoder).eval()
        source = "pretrained backbone of model= (no checkpoint), pooled features"
        return encoder.backbone_features, source, encoder.native_input_size
    encoder = load_encoder(checkpoint)
    if features == "backbone":
        source = f"checkpoint {checkpoint}, backbone pooled features (no head)"
        return encoder.backbone_features, source, encoder.native_input_size
    return encoder, f"checkpoint {checkpoint}, embedding", encoder.native_input_size


def results_table(name: str, source: str, overall: Mapping[str, float], per_class: Mapping) -> str:
    """Markdown: one row per class and an overall row."""
    columns = [c for c in next(iter(per_class.values()))] if per_class else []
    lines = [f"# retrieval-eval: {name}", "", f"Model: {source}.", ""]
    lines += ["| class | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, values in per_class.items():
        lines.append(f"| {label} | " + " | ".join(_cell(values[c]) for c in columns) + " |")
    lines.append("| **all** | " + " | ".join(_cell(overall.get(c, math.nan)) for c in columns) + " |")
    rest = {k: v for k, v in overall.items() if k not in columns}
    lines += ["", ", ".join(f"{k} {_cell(v)}" for k, v in rest.items()), ""]
    return "\n".join(lines)


def _cell(value: float) -> str:
    return f"{value:.4f}" if not float(value).is_integer() else str(int(value))


def retrieval_eval(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    if cfg.get("dataset") is None:
        raise ValueError(
            "retrieval-eval needs a dataset: dataset=clothing_small|deepfashion_inshop|deepfashion2|"
            "generic_csv (conf/dataset/, docs/dataset.md 'Other datasets')"
        )
    settings = cfg.retrieval_eval
    data: RetrievalSet = instantiate(cfg.dataset)
    name = settings.name or data.name.split("/")[0]
    ks = [int(k) for k in settings.ks]
    encode, source, native_size = retrieval_encoder(cfg, context)
    size = list(native_size if settings.image_size is None else settings.image_size)
    log.info("retrieval-eval %s with %s at %s x %s: %s", data.name, source, *size, data.summary())
    loader = {"size": size, "batch_size": cfg.data.eval_batch_size}
    loader["num_workers"] = cfg.data.num_workers
    torch.manual_seed(cfg.seed)
    gallery_embeddings = embed_loader(encode, image_loader(data.gallery, **loader))
    if data.query_in_gallery is not None and bool(np.all(data.query_in_gallery >= 0)):
        # Queries drawn from the gallery: reuse their gallery rows rather than embed them twice.
        query_embeddings = gallery_embeddings[data.query_in_gallery]
    else:
        query_embeddings = embed_loader(encode, image_loader(data.queries, **loader))
    depth = search_depth(data, ks, settings.map_at_r)
    ranked = search_set(query_embeddings, gallery_embeddings, depth, data, instantiate(cfg.index.spec))
    overall, per_class = set_metrics(ranked, data, [k for k in ks if k <= ranked.shape[1]], settings.map_at_r)
    prefix = f"retrieval_eval/{name}"
    metrics = {f"{prefix}/{key}": value for key, value in overall.items()}
    for label, values in per_class.items():
        metrics.update({f"{prefix}/class/{label}/{key}": value for key, value in values.items()})
    table = results_table(data.name, source, overall, per_class)
    with atomic_open(context.output_dir / f"retrieval_eval_{name}.md", "w") as handle:
        handle.write(table)
    log.info("retrieval-eval:\n%s", table)
    return metrics
