"""Fitting shared by the stages that train a model (``train``, ``distill``; ``pretrain`` uses
:func:`fit_model` alone): fit with the configured callbacks and loggers, validate every epoch on
Recall@15, keep the best checkpoint, export embeddings + index, then score the best checkpoint on real
photos (``real/val/...``), logged to the loggers too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.callbacks import RetrievalEvaluator, use_atomic_checkpoints
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.machine import AUTO, torch_threads
from fashion_retrieval.models.checkpoint import load_checkpoint, load_encoder
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    return [
        instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c
    ]


def instantiate_loggers(cfg: DictConfig) -> list:
    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]


@contextmanager
def fitting_threads(cfg: DictConfig) -> Iterator[int]:
    """Torch's threads beside the loader's workers (fashion_retrieval/machine.py) for a fitting stage,
    restored afterwards; yields the count in force."""
    devices = cfg.trainer.get("devices", 1)
    with torch_threads(cfg.get("threads", AUTO), int(cfg.data.num_workers), devices) as threads:
        yield threads


def fit_model(
    cfg: DictConfig,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    callbacks: list[pl.Callback],
) -> tuple[pl.Trainer, list]:
    """Fit ``model`` on ``datamodule`` with the ``trainer:`` config, ``callbacks`` and the configured
    loggers (the whole config logged as their hyperparameters), checkpoints written atomically, resuming
    from ``ckpt_path`` when set; returns the trainer and its loggers."""
    loggers = instantiate_loggers(cfg)
    trainer = use_atomic_checkpoints(instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False))
    for lightning_logger in loggers:
        lightning_logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    resume = cfg.get("ckpt_path")
    if resume:  # a message naming a bad file before Lightning's own load; both read data only
        load_checkpoint(resume)
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    return trainer, loggers


def fit_and_score(
    cfg: DictConfig, context: RunContext, model: pl.LightningModule, datamodule: pl.LightningDataModule
) -> dict[str, float]:
    """Fit ``model`` on ``datamodule`` (resuming from ``ckpt_path`` when set); the validation metrics of the
    best epoch (``val/...``), the epochs run and the best checkpoint's real-photo scores."""
    callbacks = instantiate_callbacks(cfg)
    trainer, loggers = fit_model(cfg, model, datamodule, callbacks)

    # The evaluator's history covers the epochs before a resume too (it is saved in the checkpoints).
    evaluator = next((c for c in callbacks if isinstance(c, RetrievalEvaluator)), None)
    metrics: dict[str, float] = {"train/epochs": float(trainer.current_epoch)}
    checkpoint = trainer.checkpoint_callback
    if evaluator and evaluator.history:
        best = evaluator.best(checkpoint.monitor if checkpoint is not None else None)
        metrics.update({f"val/{k}": v for k, v in best.items() if k != "epoch"})
        metrics["val/best_epoch"] = float(best["epoch"])
    if checkpoint is not None and checkpoint.best_model_path:
        log.info("train: best checkpoint %s (%s)", checkpoint.best_model_path, checkpoint.best_model_score)
        if trainer.is_global_zero:  # one process scores; the others have nothing left to do
            best_path = Path(checkpoint.best_model_path)
            encoder = lambda: PhotoEncoder(load_encoder(best_path))  # noqa: E731 - built only when scored
            real = real_photo_scores(real_photo_settings(cfg), encoder, "val", context.output_dir)
            for lightning_logger in loggers:
                lightning_logger.log_metrics(real, step=trainer.global_step)
                lightning_logger.save()
            metrics.update(real)
    return metrics
