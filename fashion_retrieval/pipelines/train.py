"""``train``: fit, validate every epoch on Recall@15, keep the best checkpoint, export embeddings + index;
then the best checkpoint's real-photo scores (``real/val/...``, ``evaluation/real_photos.py``),
logged to the loggers too."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.callbacks import RetrievalEvaluator, use_atomic_checkpoints
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.machine import AUTO, torch_threads
from fashion_retrieval.models.checkpoint import checkpoint_encoder_config, load_checkpoint, load_encoder
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    return [
        instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c
    ]


def instantiate_loggers(cfg: DictConfig) -> list:
    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]


def train(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    # Torch's threads beside the loader's workers (fashion_retrieval/machine.py), restored afterwards.
    devices = cfg.trainer.get("devices", 1)
    with torch_threads(cfg.get("threads", AUTO), int(cfg.data.num_workers), devices):
        return fit(cfg, context)


def fit(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    # Plain lists and dicts (not OmegaConf containers) end up in the checkpoint's hyperparameters, so a
    # resume can load it with torch.load(weights_only=True).
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, loss=instantiate(cfg.loss, _convert_="all"), _convert_="all")
    encoder_cfg = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    model.encoder_config = checkpoint_encoder_config(encoder_cfg, model.encoder)
    callbacks = instantiate_callbacks(cfg)
    loggers = instantiate_loggers(cfg)
    trainer = use_atomic_checkpoints(instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False))
    for lightning_logger in loggers:
        lightning_logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    resume = cfg.get("ckpt_path")
    if resume:  # a message naming a bad file before Lightning's own load; both read data only
        load_checkpoint(resume)
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)

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
