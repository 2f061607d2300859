"""The LightningModule: thin glue between an encoder, a loss and an optimiser.

Retrieval metrics are computed by :class:`fashion_retrieval.callbacks.RetrievalEvaluator`, not here:
``validation_step`` only returns embeddings with their dataset indices.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer

from fashion_retrieval.models.encoder import ImageEncoder

QUERY_LOADER, GALLERY_LOADER = 0, 1


class RetrievalModule(pl.LightningModule):
    """Trains an :class:`ImageEncoder` on (bundle, product) pairs.

    Args:
        encoder: the shared image tower.
        loss: called as ``loss(query (B, D), gallery (B, D), positive_mask (B, B))``.
        optimizer: a partial optimiser factory (Hydra ``_partial_: true``), called with parameter groups.
        scheduler: optional partial ``(optimizer, total_steps) -> LRScheduler``, stepped every batch.
        backbone_lr: learning rate of the backbone; ``None`` keeps the optimiser's lr for everything.

    ``encoder_config``, when set, is the encoder's resolved Hydra config; it is stored in every checkpoint
    so that ``index`` and ``infer`` rebuild the encoder from the checkpoint alone
    (:func:`fashion_retrieval.models.checkpoint.load_encoder`).
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        loss: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        backbone_lr: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "loss"], logger=False)
        self.encoder = encoder
        self.loss = loss
        self.encoder_config: dict | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["encoder_config"] = self.encoder_config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        query = self(batch["query"])
        gallery = self(batch["gallery"])
        loss = self.loss(query, gallery, batch["positive_mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=query.shape[0])
        # Logged here rather than by LearningRateMonitor, which refuses to run without a logger.
        for group in self.optimizers().optimizer.param_groups:
            self.log(f"train/lr_{group['name']}", group["lr"], batch_size=query.shape[0])
        return loss

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict:
        return {"embeddings": self(batch["image"]), "index": batch["index"], "loader": dataloader_idx}

    def configure_optimizers(self) -> dict:
        backbone = [p for p in self.encoder.backbone.parameters() if p.requires_grad]
        rest = [
            p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("encoder.backbone.")
        ]
        groups: list[dict] = [{"params": rest, "name": "head"}]
        if backbone:
            group: dict = {"params": backbone, "name": "backbone"}
            if self.hparams.backbone_lr is not None:
                group["lr"] = self.hparams.backbone_lr
            groups.append(group)
        optimizer = self.hparams.optimizer(groups)
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.hparams.scheduler(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
