"""``retrieval-eval``: retrieval on another dataset (``reader=clothing_small|deepfashion_inshop|...``).

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
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.readers import RetrievalSet
from fashion_retrieval.evaluation.real_photos import (
    PRECISION_K,
    PhotoEncoder,
    real_photo_scores,
    real_photo_settings,
    single_device_cache,
)
from fashion_retrieval.evaluation.retrieval_sets import score_set
from fashion_retrieval.evaluation.text_retrieval import class_text_scores
from fashion_retrieval.features import FeatureCache
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.adapter_module import FeatureAdapterModule, load_head
from fashion_retrieval.models.checkpoint import load_checkpoint, load_encoder
from fashion_retrieval.models.dual_encoder import load_text_encoder
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

FEATURE_MODES = ("auto", "backbone", "head")


def retrieval_encoder(cfg: DictConfig, context: RunContext) -> tuple[PhotoEncoder, str]:
    """The trained encoder (this run's ``train`` or ``ckpt_path``), else the pretrained backbone (``model=``),
    with the ``(H, W)`` its backbone's pretrained weights were made for (``native_size``).

    ``retrieval_eval.features``: ``auto`` (a checkpoint's embedding; without one, the backbone's pooled
    features, since an untrained head is random), ``backbone`` (pooled features, bypassing the head) or
    ``head`` (a checkpoint's embedding computed as its backbone's pooled features, kept in the feature cache
    keyed by the backbone alone, then its head: heads trained on one frozen backbone share one embedding of
    the photos).
    ``retrieval_eval.head_path`` (a ``train-adapter`` run's ``head.pt``): that encoder's backbone features
    through ``adapter=``'s heads, loaded from the file (:func:`adapter_heads`).
    """
    features = cfg.retrieval_eval.features
    if features not in FEATURE_MODES:
        raise ValueError(f"retrieval_eval.features must be one of {FEATURE_MODES}, got {features!r}")
    checkpoint = checkpoint_path(cfg, context)
    encoder = instantiate(cfg.model.encoder).eval() if checkpoint is None else load_encoder(checkpoint)
    head_path = cfg.retrieval_eval.get("head_path")
    if head_path:
        backbone = f"backbone of checkpoint {checkpoint}" if checkpoint else "pretrained backbone of model="
        module = adapter_heads(cfg, Path(head_path), encoder.backbone_dim)
        return PhotoEncoder.with_adapter(encoder, module), f"{backbone}, pooled features through {head_path}"
    if checkpoint is None:
        source = "pretrained backbone of model= (no checkpoint), pooled features"
        return PhotoEncoder(encoder, "backbone_features"), source
    if features == "backbone":
        source = f"checkpoint {checkpoint}, backbone pooled features (no head)"
        return PhotoEncoder(encoder, "backbone_features"), source
    if features == "head":
        if not isinstance(encoder, ImageEncoder):
            raise ValueError(
                f"retrieval_eval.features=head needs one backbone and a head (an ImageEncoder); checkpoint "
                f"{checkpoint} holds a {type(encoder).__name__}"
            )
        source = f"checkpoint {checkpoint}, embedding (cached backbone features through its head)"
        return PhotoEncoder.with_own_head(encoder), source
    return PhotoEncoder(encoder), f"checkpoint {checkpoint}, embedding"


def checkpoint_path(cfg: DictConfig, context: RunContext) -> Path | None:
    """This run's trained checkpoint, else ``ckpt_path``, else ``None`` (the pretrained backbone)."""
    return context.trained_checkpoint or (Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None)


def class_text_metrics(
    cfg: DictConfig,
    checkpoint: Path | None,
    data: RetrievalSet,
    photos: np.ndarray,
    name: str,
    output_dir: Path,
) -> dict[str, float]:
    """Zero-shot text -> photo retrieval when ``checkpoint`` is a dual encoder's (``train-text``): each query
    class as a text (``retrieval_eval.class_texts``, else its name) searched among the ``(Q, D)`` query
    photos' embeddings ``photos`` (:func:`class_text_scores`), keys ``retrieval_eval/<name>/text/...``;
    the table goes to ``retrieval_eval_<name>_text.md``. ``retrieval_eval.text_queries``: ``auto`` (when
    the checkpoint has a text tower), ``true`` (fail without one) or ``false``."""
    mode = str(cfg.retrieval_eval.text_queries).lower()
    if mode not in ("auto", "true", "false"):
        raise ValueError(f"retrieval_eval.text_queries must be auto, true or false, got {mode!r}")
    contents = load_checkpoint(checkpoint) if checkpoint is not None and mode != "false" else {}
    if contents.get("text_config") is None:
        if mode == "true":
            raise ValueError(
                "retrieval_eval.text_queries=true needs a train-text checkpoint (ckpt_path=); "
                f"{checkpoint} has no text tower"
            )
        return {}
    assert checkpoint is not None
    mapping = dict(cfg.retrieval_eval.get("class_texts") or {})
    labels = list(data.queries.categories)
    classes = sorted(set(labels))
    texts = [str(mapping.get(label, label)) for label in classes]
    with torch.no_grad():
        embeddings = load_text_encoder(checkpoint, contents).encode_text(texts).float().numpy()
    per_class = class_text_scores(embeddings, photos, labels, PRECISION_K)
    prefix = f"retrieval_eval/{name}/text"
    metrics: dict[str, float] = {}
    for label, values in per_class.items():
        metrics.update({f"{prefix}/class/{label}/{key}": value for key, value in values.items()})
    for key in next(iter(per_class.values())):
        if key != "num_relevant":
            metrics[f"{prefix}/{key}"] = float(np.mean([values[key] for values in per_class.values()]))
    lines = [
        f"# retrieval-eval: {data.name}, text -> photo (zero-shot)",
        "",
        f"Checkpoint {checkpoint}: each class's text against the {len(labels)} query photos.",
        "",
        f"| class | text | photos | precision@{PRECISION_K} | map@R | chance precision@{PRECISION_K} | "
        "chance map@R |",
        "|---|---|---|---|---|---|---|",
    ]
    columns = [f"precision@{PRECISION_K}", "map@R", f"chance/precision@{PRECISION_K}", "chance/map@R"]
    for label, text in zip(classes, texts):
        values = per_class[label]
        cells = " | ".join(f"{values[c]:.3f}" for c in columns)
        lines.append(f"| {label} | {text} | {values['num_relevant']:.0f} | {cells} |")
    mean = " | ".join(f"{metrics[f'{prefix}/{c}']:.3f}" for c in columns)
    lines.append(f"| **mean** | | | {mean} |")
    with atomic_open(output_dir / f"retrieval_eval_{name}_text.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log.info("retrieval-eval text -> photo:\n%s", "\n".join(lines))
    return metrics


def adapter_heads(cfg: DictConfig, path: Path, feature_dim: int) -> FeatureAdapterModule:
    """``adapter=``'s module for ``feature_dim``-wide backbone features, with the heads ``train-adapter``
    saved to ``path`` (``<run dir>/adapter/head.pt``, read as data only), in eval mode."""
    if cfg.get("adapter") is None or cfg.adapter.get("module") is None:
        raise ValueError(
            f"retrieval_eval.head_path={path} needs the head's architecture: adapter=residual_adapter|"
            "projection, as in the train-adapter run that saved it"
        )
    module: FeatureAdapterModule = instantiate(cfg.adapter.module, feature_dim=feature_dim)
    load_head(module, path)
    return module.eval()


def photo_feature_cache(cfg: DictConfig) -> FeatureCache:
    """``features.cache_dir`` on one device at fp32, as the real-photo scores use it (the same entries)."""
    return single_device_cache(cfg.features.cache_dir, int(cfg.features.batch_size), cfg.trainer.accelerator)


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
    if cfg.get("reader") is None:
        raise ValueError(
            "retrieval-eval needs a dataset: reader=clothing_small|deepfashion_inshop|deepfashion2|"
            "generic_csv (conf/reader/, docs/dataset.md 'Other datasets')"
        )
    settings = cfg.retrieval_eval
    data: RetrievalSet = instantiate(cfg.reader)
    name = settings.name or data.name.split("/")[0]
    ks = [int(k) for k in settings.ks]
    photo_encoder, source = retrieval_encoder(cfg, context)
    size = list(photo_encoder.native_size if settings.image_size is None else settings.image_size)
    log.info("retrieval-eval %s with %s at %s x %s: %s", data.name, source, *size, data.summary())
    loader = {"batch_size": int(cfg.data.eval_batch_size), "num_workers": int(cfg.data.num_workers)}
    cache = photo_feature_cache(cfg) if photo_encoder.method == "pooled_features" else None
    torch.manual_seed(cfg.seed)
    gallery_features = photo_encoder.features(data.gallery, size, cache, **loader)
    if data.query_in_gallery is not None and bool(np.all(data.query_in_gallery >= 0)):
        # Queries drawn from the gallery: reuse their gallery rows rather than embed them twice.
        query_features = gallery_features[data.query_in_gallery]
    else:
        query_features = photo_encoder.features(data.queries, size, cache, **loader)
    gallery_embeddings = photo_encoder.apply_head(gallery_features, "gallery")
    query_embeddings = photo_encoder.apply_head(query_features, "query")
    spec = instantiate(cfg.index.spec)
    overall, per_class = score_set(query_embeddings, gallery_embeddings, data, ks, settings.map_at_r, spec)
    prefix = f"retrieval_eval/{name}"
    metrics = {f"{prefix}/{key}": value for key, value in overall.items()}
    for label, values in per_class.items():
        metrics.update({f"{prefix}/class/{label}/{key}": value for key, value in values.items()})
    table = results_table(data.name, source, overall, per_class)
    with atomic_open(context.output_dir / f"retrieval_eval_{name}.md", "w") as handle:
        handle.write(table)
    log.info("retrieval-eval:\n%s", table)
    # The query photos as the documents of text queries: through the gallery side's head.
    photos = photo_encoder.apply_head(query_features, "gallery")
    checkpoint = checkpoint_path(cfg, context)
    metrics.update(class_text_metrics(cfg, checkpoint, data, photos, name, context.output_dir))
    real = real_photo_scores(real_photo_settings(cfg), photo_encoder, "retrieval_eval", context.output_dir)
    return {**metrics, **real}
