"""``distill``: a small student encoder trained to reproduce a teacher's embeddings (docs/distill.md).

The teacher is a finished run directory (``distill.teacher_dir``: its ``checkpoints/best.ckpt``, embeddings
as it searches) or a model config used frozen (``distill.teacher_model``, e.g.
``+model@distill.teacher_model=efficientnet_lite2``: pooled backbone features, no head). It embeds the
training bundle photos and every catalogue packshot once, through the feature cache (keyed by its weights,
so a second student reuses them); no labels are read. The student is ``model=`` with a linear head to the
teacher's dimension, trained with
:class:`~fashion_retrieval.losses.embedding_distill.EmbeddingDistillationLoss` and validated on
Recall@15 like ``train``. It re-embeds the catalogue itself: the run directory is an ordinary one
(checkpoints, index) that ``index``, ``validate``, ``infer``, ``export-onnx`` and
``retrieval-eval`` load; later stages of a ``run`` use its best checkpoint.

Besides the student's ``val/...`` and ``real/val/...`` scores, the teacher's are recorded under
``distill/teacher/...`` (same validation bundles and catalogue, same evaluator; real photos when
``distill.score_teacher``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.data.distill import DISTILL_SETS, DistillDataModule
from fashion_retrieval.evaluation.ranking import evaluate_embeddings
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.features import FeatureCache, feature_cache, image_features
from fashion_retrieval.losses.embedding_distill import EmbeddingDistillationLoss
from fashion_retrieval.models.checkpoint import checkpoint_encoder_config, load_encoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.fitting import fit_and_score, fitting_threads

log = logging.getLogger(__name__)

STUDENT_MODULE = "fashion_retrieval.models.distill_module.DistillationModule"
DISTILL_DATA = "fashion_retrieval.data.distill.DistillDataModule"
CHALLENGE_DATA = "fashion_retrieval.data.datamodule.ChallengeDataModule"
TEACHER_CHECKPOINT = Path("checkpoints") / "best.ckpt"


class Teacher:
    """A teacher: ``encoder``'s ``method`` (``forward`` | ``backbone_features``) gives its ``(N, D)``
    L2-normalised embeddings; ``name`` says where it came from."""

    def __init__(self, encoder: nn.Module, method: str, name: str) -> None:
        self.encoder, self.method, self.name = encoder, method, name

    def embed(self, dataset: Dataset, ids: list[str], cache: FeatureCache | None) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``dataset`` (items ``image``, ``index``; item ``i``: ``ids[i]``);
        through ``cache`` when given."""
        if cache is not None:
            return image_features(cache, self.encoder, dataset, ids, self.method)  # type: ignore[arg-type]
        loader = DataLoader(dataset, batch_size=64, shuffle=False)
        with torch.no_grad():
            return embed_loader(getattr(self.encoder, self.method), loader)


def teacher_checkpoint(run_dir: Path) -> Path:
    """``run_dir``'s best checkpoint; a clear error when ``run_dir`` is no finished run directory."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"distill.teacher_dir={run_dir}: no such run directory")
    checkpoint = run_dir / TEACHER_CHECKPOINT
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"distill.teacher_dir={run_dir}: no {TEACHER_CHECKPOINT}; a teacher is the run directory of a "
            "finished `train` (or `distill`)"
        )
    return checkpoint


def load_teacher(cfg: DictConfig) -> Teacher:
    """The teacher of ``distill.teacher_dir`` or ``distill.teacher_model`` (exactly one must be set)."""
    settings = cfg.distill
    teacher_dir, model = settings.get("teacher_dir"), settings.get("teacher_model")
    if bool(teacher_dir) == (model is not None):
        raise ValueError(
            "distill needs one teacher: distill.teacher_dir=<run directory> or a frozen model config, "
            "e.g. +model@distill.teacher_model=efficientnet_lite2"
            + (" (both are set)" if teacher_dir else "")
        )
    if teacher_dir:
        checkpoint = teacher_checkpoint(Path(teacher_dir))
        return Teacher(load_encoder(checkpoint), "forward", str(checkpoint))
    torch.manual_seed(cfg.seed)  # a backbone without pretrained weights (tests): the same draw every run
    encoder = instantiate(model.encoder).eval()
    name = OmegaConf.select(model, "encoder.backbone.model_name", default=model.encoder.get("_target_"))
    return Teacher(encoder, "backbone_features", f"frozen {name}")


def student_module(cfg: DictConfig, teacher_dim: int) -> pl.LightningModule:
    """``model=`` as a :class:`~fashion_retrieval.models.distill_module.DistillationModule` whose head
    outputs ``teacher_dim`` when the cosine term is on (it compares embeddings coordinate by coordinate)."""
    config = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(config, dict)
    unused = [key for key in ("memory_size", "l2_sp", "distill") if config.get(key)]
    if unused:
        raise ValueError(f"distill: model.{unused} have no effect on a distilled student; set them to 0")
    encoder = config["encoder"]
    settings = cfg.distill
    # The similarity term alone compares any two dimensions: the student's head is then model='s own.
    if float(settings.cosine_weight) > 0 and encoder.get("embedding_dim") != teacher_dim:
        log.info(
            "distill: student head %s -> %d, the teacher's dimension",
            encoder.get("embedding_dim"),
            teacher_dim,
        )
        encoder["embedding_dim"] = teacher_dim
    loss = EmbeddingDistillationLoss(float(settings.cosine_weight), float(settings.similarity_weight))
    module = instantiate({**config, "_target_": STUDENT_MODULE}, loss=loss, _convert_="all")
    module.encoder_config = checkpoint_encoder_config(encoder, module.encoder)
    return module


def distill_datamodule(cfg: DictConfig) -> DistillDataModule:
    """``data=`` (the challenge format) with distillation batches."""
    if cfg.data.get("_target_") != CHALLENGE_DATA:
        raise ValueError(
            f"distill reads the challenge format (data=challenge), not {cfg.data.get('_target_')}"
        )
    datamodule = instantiate(
        cfg.data,
        _target_=DISTILL_DATA,
        packshot_batch_size=int(cfg.distill.packshot_batch_size),
        _convert_="all",
    )
    datamodule.setup()
    return datamodule


def teacher_scores(
    teacher: Teacher,
    datamodule: DistillDataModule,
    packshots: np.ndarray,
    cache: FeatureCache | None,
    cfg: DictConfig,
) -> dict[str, float]:
    """The teacher's validation scores (``distill/teacher/recall@15`` ...) on the student's validation
    bundles against ``packshots (G, D)``, its catalogue embeddings, with the training evaluator's search."""
    queries = datamodule.validation_queries()
    loader = datamodule.query_set_dataloader(queries)
    query_ids = [f"val/{i}/{b}" for i, b in enumerate(queries.bundle_ids)]
    embeddings = teacher.embed(loader.dataset, query_ids, cache)
    assert queries.truth is not None
    sections = datamodule.catalogue_section_array()
    scores = evaluate_embeddings(
        embeddings,
        packshots,
        datamodule.catalogue_ids,
        np.asarray(queries.sections),
        sections,
        queries.truth,
        list(cfg.retrieval.ks),
    )
    return {f"distill/teacher/{key}": value for key, value in scores.items()}


def distill(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    teacher = load_teacher(cfg)
    with fitting_threads(cfg):
        return distill_from(teacher, cfg, context)


def distill_from(teacher: Teacher, cfg: DictConfig, context: RunContext) -> dict[str, float]:
    """The stage once its teacher is loaded: teacher embeddings, teacher scores, the student's fit."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = distill_datamodule(cfg)
    cache = feature_cache(cfg) if cfg.features.enabled else None
    images, ids = datamodule.distill_images(), datamodule.distill_ids()
    log.info(
        "distill: teacher %s embeds %s", teacher.name, {name: len(images[name]) for name in DISTILL_SETS}
    )
    targets = {name: teacher.embed(images[name], ids[name], cache) for name in DISTILL_SETS}
    datamodule.set_teacher_targets(targets)
    teacher_dim = int(targets["packshots"].shape[1])
    metrics: dict[str, float] = {"distill/teacher_dim": float(teacher_dim)}
    metrics.update(teacher_scores(teacher, datamodule, targets["packshots"], cache, cfg))
    if cfg.distill.score_teacher:
        photo_encoder = PhotoEncoder(teacher.encoder, teacher.method)
        metrics.update(
            real_photo_scores(real_photo_settings(cfg), photo_encoder, "distill/teacher", context.output_dir)
        )
    model = student_module(cfg, teacher_dim)
    metrics.update(fit_and_score(cfg, context, model, datamodule))
    best = context.output_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        context.trained_checkpoint = best
    return metrics
