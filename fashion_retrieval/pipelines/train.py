"""``train``: fit, validate every epoch on Recall@15, keep the best checkpoint, export embeddings + index;
then the best checkpoint's real-photo scores (``real/val/...``, ``evaluation/real_photos.py``),
logged to the loggers too (:func:`~fashion_retrieval.pipelines.fitting.fit_and_score`)."""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.models.checkpoint import checkpoint_encoder_config
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.fitting import fit_and_score, fitting_threads


def train(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    with fitting_threads(cfg):
        return fit(cfg, context)


def fit(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    # Plain lists and dicts (not OmegaConf containers) end up in the checkpoint's hyperparameters, so a
    # resume can load it with torch.load(weights_only=True).
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, loss=instantiate(cfg.loss, _convert_="all"), _convert_="all")
    encoder_cfg = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    model.encoder_config = checkpoint_encoder_config(encoder_cfg, model.encoder)
    return fit_and_score(cfg, context, model, datamodule)
