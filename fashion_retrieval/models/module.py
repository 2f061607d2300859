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

from fashion_retrieval.losses.masks import pair_masks
from fashion_retrieval.losses.memory import CrossBatchMemory, append_negatives
from fashion_retrieval.models.distributed import all_gather_uneven, is_distributed
from fashion_retrieval.models.encoder import ImageEncoder

QUERY_LOADER, GALLERY_LOADER = 0, 1


class RetrievalModule(pl.LightningModule):
    """Trains an :class:`ImageEncoder` on (bundle, product) pairs.

    Args:
        encoder: the shared image tower.
        loss: called as ``loss(query (B, D), gallery (P, D), positive_mask (B, P), negative_mask (B, P))``;
            the masks come from the batch's product ids (:func:`fashion_retrieval.losses.masks.pair_masks`).
        optimizer: a partial optimiser factory (Hydra ``_partial_: true``), called with parameter groups.
        scheduler: optional partial ``(optimizer, total_steps) -> LRScheduler``, stepped every batch.
        backbone_lr: learning rate of the backbone; ``None`` keeps the optimiser's lr for everything.
        memory_size: length of the cross-batch memory of product embeddings used as extra negatives
            (:class:`fashion_retrieval.losses.CrossBatchMemory`); 0 turns it off.

    Under DDP the batch is gathered from every process before the loss (see :meth:`training_step`).

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
        memory_size: int = 0,
    ) -> None:
        super().__init__()
        # Optimiser and scheduler factories are Hydra partials: kept out of the checkpoint's hyperparameters
        # so that checkpoints hold plain data and load with torch.load(weights_only=True) (resume too).
        self.save_hyperparameters(ignore=["encoder", "loss", "optimizer", "scheduler"], logger=False)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.encoder = encoder
        self.loss = loss
        self.memory = CrossBatchMemory(memory_size, encoder.embedding_dim) if memory_size > 0 else None
        self.encoder_config: dict | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["encoder_config"] = self.encoder_config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, batch_size = self.batch_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        temperature = getattr(self.loss, "current_temperature", None)
        if temperature is not None:
            self.log("train/temperature", float(temperature), batch_size=batch_size)
        # Logged here rather than by LearningRateMonitor, which refuses to run without a logger.
        for group in self.optimizers().optimizer.param_groups:
            self.log(f"train/lr_{group['name']}", group["lr"], batch_size=batch_size)
        # Under DDP each process back-propagates only into its own embeddings: scaling by the world size
        # makes the gradient, after DDP averages it, that of one process holding the global batch.
        world_size = torch.distributed.get_world_size() if is_distributed() else 1
        return loss * world_size

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The contrastive loss of a training batch (gathered from every DDP process) and the global
        number of bundles. Batch keys: ``query``, ``gallery``, ``query_products``, ``query_excluded``,
        ``gallery_label`` (see :func:`fashion_retrieval.data.datasets.collate_bundles`)."""
        query = self(batch["query"])
        gallery = self(batch["gallery"])
        query_products, query_excluded = batch["query_products"], batch["query_excluded"]
        gallery_labels = batch["gallery_label"]
        if is_distributed():
            query = all_gather_uneven(query, keep_grad=True)
            gallery = all_gather_uneven(gallery, keep_grad=True)
            query_products = all_gather_uneven(query_products)
            query_excluded = all_gather_uneven(query_excluded)
            gallery_labels = all_gather_uneven(gallery_labels)
        positive, negative = pair_masks(query_products, query_excluded, gallery_labels)
        scored_gallery = gallery
        if self.memory is not None and self.memory.filled:
            remembered, remembered_negative = self.memory.negatives(query_excluded)
            scored_gallery, positive, negative = append_negatives(
                gallery, positive, negative, remembered, remembered_negative
            )
        loss = self.loss(query, scored_gallery, positive, negative)
        if self.memory is not None:
            # Enqueued after use: a product is never its own negative through the memory in this step.
            self.memory.enqueue(gallery.detach(), gallery_labels)
        return loss, query.shape[0]

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict:
        return {"embeddings": self(batch["image"]), "index": batch["index"], "loader": dataloader_idx}

    def configure_optimizers(self) -> dict:
        encoder_groups = self.encoder.parameter_groups()
        grouped = {id(p) for params in encoder_groups.values() for p in params}
        groups: list[dict] = [{"params": encoder_groups["head"], "name": "head"}]
        # Parameters outside the encoder (a learnable loss temperature) learn at the head's rate without
        # weight decay, which would pull the temperature towards 1.
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in grouped]
        if rest:
            groups.append({"params": rest, "name": "loss", "weight_decay": 0.0})
        if encoder_groups["backbone"]:
            group: dict = {"params": encoder_groups["backbone"], "name": "backbone"}
            if self.hparams.backbone_lr is not None:
                group["lr"] = self.hparams.backbone_lr
            groups.append(group)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
