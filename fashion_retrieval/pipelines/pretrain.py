"""``pretrain``: self-supervised pre-training of ``model=``'s backbone on unlabelled images
(docs/pretraining.md).

``method=dino|simclr|mae`` picks the LightningModule (:mod:`fashion_retrieval.models.self_supervised`:
lightly's heads, losses and multi-view transforms); ``pretrain.images`` the images, no label read: the
challenge's catalogue packshots and training bundle photos (``data=``'s split: the validation bundles stay
unseen) and a reader's training split (``reader=clothing_small reader.train_splits=[train]``). Trainer,
loggers, atomic checkpoints and resume (``ckpt_path=<run>/checkpoints/last.ckpt``) are ``train``'s
(:func:`~fashion_retrieval.pipelines.fitting.fit_model`); the callbacks are those of ``callbacks:`` named in
``pretrain.callbacks`` (nothing validates). At the end, the backbone's timm weights go to
``<run>/backbone.safetensors``, which ``model.encoder.backbone.weights=<run>/backbone.safetensors`` loads
in ``train``, ``train-adapter``, ``retrieval-eval`` and every stage that builds ``model=``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save as safetensors_bytes

from fashion_retrieval.data.boxes import Box
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.data.pretrain import PretrainDataModule
from fashion_retrieval.data.readers import RetrievalSet
from fashion_retrieval.data.training_sets import reject_extra_training_sets
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.self_supervised import SelfSupervisedModule
from fashion_retrieval.models.weights import RANDOM
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.fitting import fit_model, fitting_threads

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.safetensors"
# The image sets `pretrain.images` may list: the challenge's (data=challenge) and a reader's training split.
IMAGE_SETS = ("packshots", "bundles", "reader")


def challenge_images(cfg: DictConfig, sets: list[str]) -> dict[str, list[str]]:
    """The catalogue's packshots and the training bundles' photos (``data=``'s split), as asked."""
    if cfg.data.get("_target_") != f"{ChallengeDataModule.__module__}.{ChallengeDataModule.__name__}":
        raise ValueError(
            f"pretrain.images={sets}: packshots and bundles come from the challenge format (data=challenge), "
            f"not {cfg.data.get('_target_')}; a reader's images are pretrain.images=[reader]"
        )
    datamodule: ChallengeDataModule = instantiate(cfg.data, _convert_="all")
    reject_extra_training_sets(datamodule.extra_sets, f"pretrain.images={sets}")
    datamodule.setup()
    images: dict[str, list[str]] = {}
    if "packshots" in sets:
        images["packshots"] = datamodule.catalogue_paths
    if "bundles" in sets:
        photos = datamodule.cat.bundle_paths()
        images["bundles"] = [photos[bundle] for bundle in datamodule.train_bundle_ids]
    return images


def reader_images(cfg: DictConfig) -> tuple[list[str], list[Box | None]]:
    """The images (and boxes) of ``reader=``'s training split; a clear error without one."""
    if cfg.get("reader") is None:
        raise ValueError(
            "pretrain.images lists reader: pick one, e.g. reader=clothing_small reader.train_splits=[train]"
        )
    dataset: RetrievalSet = instantiate(cfg.reader)
    if dataset.train is None:
        raise ValueError(
            f"pretrain.images lists reader, but {dataset.name} has no training split: set "
            "reader.train_splits (e.g. reader.train_splits=[train]); its queries and gallery are never "
            "pre-trained on"
        )
    images = dataset.train.images
    boxes = images.box_list()
    return [str(p) for p in images.paths], boxes if boxes is not None else [None] * len(images)


def pretrain_images(cfg: DictConfig) -> tuple[list[str], list[Box | None]]:
    """Every image of the sets ``pretrain.images`` lists, in that order, with its box (``None``: whole)."""
    sets = [str(name) for name in cfg.pretrain.images]
    unknown = [name for name in sets if name not in IMAGE_SETS]
    if unknown or not sets:
        raise ValueError(f"pretrain.images: choose from {list(IMAGE_SETS)}, got {sets}")
    challenge = challenge_images(cfg, sets) if {"packshots", "bundles"} & set(sets) else {}
    paths: list[str] = []
    boxes: list[Box | None] = []
    counts: dict[str, int] = {}
    for name in sets:
        if name == "reader":
            set_paths, set_boxes = reader_images(cfg)
        else:
            set_paths = challenge[name]
            set_boxes = [None] * len(set_paths)
        paths += set_paths
        boxes += set_boxes
        counts[name] = len(set_paths)
    log.info("pretrain: %d images %s", len(paths), counts)
    return paths, boxes


def keeps_batchnorm_statistics(setting: bool | str, weights: str | None) -> bool:
    """``pretrain.method.keep_batchnorm_statistics`` for a backbone built from ``weights``: ``auto`` keeps
    pretrained statistics (the crops' would replace them: experiments/pretrain/) and not random ones."""
    if setting == "auto":
        return weights != RANDOM
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"pretrain.method.keep_batchnorm_statistics={setting!r}: true, false or auto")


def pretrain_module(cfg: DictConfig) -> SelfSupervisedModule:
    """``method=``'s module around ``model=``'s backbone, with ``pretrain.optimizer`` and
    ``pretrain.scheduler``."""
    backbone_cfg = cfg.model.get("encoder", {}).get("backbone")
    if backbone_cfg is None:
        raise ValueError(
            "pretrain trains one backbone: model=... must have encoder.backbone (not an ensemble)"
        )
    backbone = instantiate(backbone_cfg)
    scheduler = cfg.pretrain.get("scheduler")
    module = instantiate(
        cfg.pretrain.method,
        backbone=backbone,
        optimizer=instantiate(cfg.pretrain.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        keep_batchnorm_statistics=keeps_batchnorm_statistics(
            cfg.pretrain.method.get("keep_batchnorm_statistics", False), backbone_cfg.get("weights")
        ),
        _convert_="all",
    )
    module.backbone_config = OmegaConf.to_container(backbone_cfg, resolve=True)
    return module


def export_backbone(backbone: TimmBackbone, path: Path) -> None:
    """Write ``backbone``'s timm state dict (the names ``TimmBackbone`` loads by) as safetensors,
    atomically."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in backbone.model.state_dict().items()}
    with atomic_open(path, "wb") as handle:
        handle.write(safetensors_bytes(state))


def pretrain(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    with fitting_threads(cfg):
        pl.seed_everything(cfg.seed, workers=True)
        paths, boxes = pretrain_images(cfg)
        module = pretrain_module(cfg)
        datamodule = PretrainDataModule(
            paths,
            module.view_transform(),
            batch_size=int(cfg.pretrain.batch_size),
            num_workers=int(cfg.data.num_workers),
            seed=int(cfg.seed),
            boxes=boxes if any(box is not None for box in boxes) else None,
        )
        missing = [name for name in cfg.pretrain.callbacks if name not in (cfg.get("callbacks") or {})]
        if missing:
            raise ValueError(f"pretrain.callbacks names {missing}, which callbacks= does not define")
        callbacks = [instantiate(cfg.callbacks[name]) for name in cfg.pretrain.callbacks]
        trainer, _ = fit_model(cfg, module, datamodule, callbacks)
    metrics = {
        "pretrain/images": float(len(paths)),
        "pretrain/epochs": float(trainer.current_epoch),
        "pretrain/steps": float(trainer.global_step),
    }
    loss = trainer.callback_metrics.get("train/loss")
    if loss is not None:
        metrics["pretrain/loss"] = float(loss)
    if trainer.is_global_zero:
        path = context.output_dir / BACKBONE_FILE
        export_backbone(module.exported_backbone(), path)
        log.info("pretrain: backbone weights in %s (model.encoder.backbone.weights=%s)", path, path)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # the other processes' later stages read the file
    return metrics
