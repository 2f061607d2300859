"""``train-text``: a CLIP-style dual encoder, ``model=``'s image tower x ``text=``'s text tower, trained on
(packshot, caption) pairs with symmetric InfoNCE (``loss=``) and validated on text -> product retrieval of
held-out products' texts (docs/text.md).

The texts are ``product_captions.csv`` where the dataset has it, else each product's
``product_description`` (:func:`~fashion_retrieval.data.captions.product_texts`). A tokenizer is fitted on
the training products' texts (or read from ``text.encoder.pretrained``) and written to
``checkpoints/tokenizer.json`` before fitting; the checkpoints hold both towers' configs as plain data, so
:func:`~fashion_retrieval.models.dual_encoder.load_dual_encoder` reloads the run offline, and every stage
that reads an image model (``index``, ``retrieval-eval``, ...) reads its image tower.

``text.features=cache``: the image tower's backbone is frozen, its pooled features of the packshots are
computed once (the feature cache) and only its head learns, beside the text tower: minutes on a CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

from fashion_retrieval.data.caption_pairs import CaptionDataModule
from fashion_retrieval.data.captions import product_texts
from fashion_retrieval.data.text_queries import heldout_mask
from fashion_retrieval.features import feature_cache, image_features
from fashion_retrieval.models.checkpoint import checkpoint_encoder_config
from fashion_retrieval.models.dual_module import DualEncoderModule
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.models.text import pretrained_tokenizer, save_tokenizer, train_tokenizer
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.fitting import fit_and_score, fitting_threads

log = logging.getLogger(__name__)

DUAL_MODULE = "fashion_retrieval.models.dual_module.DualEncoderModule"
CAPTION_DATA = "fashion_retrieval.data.caption_pairs.CaptionDataModule"
CHALLENGE_DATA = "fashion_retrieval.data.datamodule.ChallengeDataModule"
FEATURE_MODES = ("images", "cache")


def train_text(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    if cfg.text.get("encoder") is None:
        raise ValueError(
            "train-text needs a text tower: text=bert_small (conf/text/), or an experiment=text_*"
        )
    if cfg.text.features not in FEATURE_MODES:
        raise ValueError(f"text.features must be one of {FEATURE_MODES}, got {cfg.text.features!r}")
    if cfg.text.features == "cache" and float(cfg.text.bundle_weight) > 0:
        # Bundle photos would go through the backbone in training mode (batch-norm statistics move), so
        # the cached packshot features would no longer be its features.
        raise ValueError("text.bundle_weight > 0 needs text.features=images (bundle photos are not cached)")
    with fitting_threads(cfg):
        return fit_text(cfg, context)


def text_datamodule(cfg: DictConfig) -> CaptionDataModule:
    """``data=`` (the challenge format) as (packshot, text) pairs, its texts and held-out products set."""
    if cfg.data.get("_target_") != CHALLENGE_DATA:
        raise ValueError(
            f"train-text reads the challenge format (data=challenge), not {cfg.data.get('_target_')}"
        )
    settings = cfg.text
    datamodule = instantiate(
        cfg.data,
        _target_=CAPTION_DATA,
        pair_batch_size=int(settings.pair_batch_size),
        bundle_batches=float(settings.bundle_weight) > 0,
        _convert_="all",
    )
    datamodule.setup()
    catalogue = datamodule.cat
    texts = product_texts(catalogue)
    ids = catalogue.product_ids
    # Whole articles are held out (text-eval's split): no colour variant of a validation product trains.
    mask = heldout_mask(ids, catalogue.articles, float(settings.heldout_fraction), int(settings.heldout_seed))
    datamodule.set_texts(texts, {pid for pid, held in zip(ids, mask) if held})
    return datamodule


def text_tokenizer(
    cfg: DictConfig, datamodule: CaptionDataModule, directory: Path
) -> PreTrainedTokenizerFast:
    """The pretrained tower's tokenizer, or one fitted on the training products' texts; written to
    ``directory/tokenizer.json`` either way."""
    pretrained = cfg.text.encoder.get("pretrained")
    if pretrained:
        tokenizer = pretrained_tokenizer(str(pretrained))
    else:
        tokenizer = train_tokenizer(
            datamodule.training_texts(),
            int(cfg.text.tokenizer.vocab_size),
            int(cfg.text.tokenizer.min_frequency),
        )
    path = save_tokenizer(tokenizer, directory)
    log.info("train-text: tokenizer of %d tokens written to %s", len(tokenizer), path)
    return tokenizer


def dual_module(cfg: DictConfig, tokenizer: PreTrainedTokenizerFast) -> DualEncoderModule:
    """``model=`` (its image tower, optimiser, scheduler, backbone rate) with ``text=``'s tower, as a
    :class:`DualEncoderModule`; both towers' configs set for the checkpoints."""
    config = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(config, dict)
    text_encoder = instantiate(cfg.text.encoder, tokenizer=tokenizer, _convert_="all")
    settings = cfg.text
    module = instantiate(
        {**config, "_target_": DUAL_MODULE},
        text_encoder=text_encoder,
        loss=instantiate(cfg.loss, _convert_="all"),
        text_lr=settings.text_lr,
        bundle_weight=float(settings.bundle_weight),
        _convert_="all",
    )
    module.encoder_config = checkpoint_encoder_config(config["encoder"], module.encoder)
    module.text_config = text_encoder.checkpoint_config()
    return module


def packshot_features(cfg: DictConfig, encoder: ImageEncoder, datamodule: CaptionDataModule) -> np.ndarray:
    """``(G, F)`` pooled features of the catalogue's packshots by ``encoder``'s backbone, now frozen
    (through the feature cache when ``features.enabled``: keyed by the backbone alone, not the head)."""
    if not isinstance(encoder, ImageEncoder):
        raise TypeError(
            f"text.features=cache needs an ImageEncoder (one backbone), not {type(encoder).__name__}"
        )
    backbone = encoder.backbone.requires_grad_(False).eval()
    packshots = datamodule.catalogue_dataloader()
    if cfg.features.enabled:
        return image_features(feature_cache(cfg), backbone, packshots.dataset, datamodule.catalogue_ids)  # type: ignore[arg-type]
    loader = DataLoader(packshots.dataset, batch_size=packshots.batch_size, shuffle=False)
    with torch.no_grad():
        return embed_loader(backbone, loader)


def fit_text(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = text_datamodule(cfg)
    tokenizer = text_tokenizer(cfg, datamodule, context.output_dir / "checkpoints")
    module = dual_module(cfg, tokenizer)
    if cfg.text.features == "cache":
        datamodule.set_features(packshot_features(cfg, module.encoder, datamodule))
    metrics = {
        "text/heldout_products": float(len(datamodule.heldout)),
        "text/vocabulary": float(len(tokenizer)),
    }
    metrics.update(fit_and_score(cfg, context, module, datamodule))
    best = context.output_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        context.trained_checkpoint = best
    return metrics
