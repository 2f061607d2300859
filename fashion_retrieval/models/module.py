"""The LightningModule: thin glue between an encoder, a loss and an optimiser.

Retrieval metrics are computed by :class:`fashion_retrieval.callbacks.RetrievalEvaluator`, not here:
``validation_step`` only returns embeddings with their dataset indices.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer

from fashion_retrieval.losses.anchor import DistillKind, feature_distillation, l2_sp_penalty
from fashion_retrieval.losses.memory import CrossBatchMemory, append_negatives
from fashion_retrieval.miners.masks import label_pair_masks, pair_masks
from fashion_retrieval.models.distributed import all_gather_uneven, is_distributed
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.layer_decay import layerwise_parameter_groups

QUERY_LOADER, GALLERY_LOADER = 0, 1


def image_keys(batch: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """The keys of a training batch's images, in the order :meth:`RetrievalModule.batch_loss` embeds them."""
    return ("image",) if "label" in batch else ("query", "catalogue")


class Pairs(NamedTuple):
    """A training batch as anchors against candidates: ``query (B, D)`` and ``gallery (P, D)`` embeddings,
    ``gallery_labels (P,)`` ids (what the memory stores), ``excluded (B, L)`` ids never negatives of each
    anchor (-1 padded), ``positive`` and ``negative`` ``(B, P)`` bool masks."""

    query: torch.Tensor
    gallery: torch.Tensor
    gallery_labels: torch.Tensor
    excluded: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


class RetrievalModule(pl.LightningModule):
    """Trains an :class:`ImageEncoder` on (bundle, product) pairs, or on labelled images (``data=reader``).

    Args:
        encoder: the shared image tower.
        loss: called as ``loss(query (B, D), gallery (P, D), positive_mask (B, P), negative_mask (B, P))``;
            the masks come from the batch's product ids (:func:`fashion_retrieval.miners.masks.pair_masks`)
            or labels (:func:`fashion_retrieval.miners.masks.label_pair_masks`).
        optimizer: a partial optimiser factory (Hydra ``_partial_: true``), called with parameter groups.
        scheduler: optional partial ``(optimizer, total_steps) -> LRScheduler``, stepped every batch.
        backbone_lr: learning rate of the backbone; ``None`` keeps the optimiser's lr for everything.
        memory_size: length of the cross-batch memory of product embeddings used as extra negatives
            (:class:`fashion_retrieval.losses.CrossBatchMemory`); 0 turns it off.
        layer_decay: layer-wise learning-rate decay of the backbone (one group per block, the top one at
            ``backbone_lr``, each block below ``layer_decay`` times slower; layer_decay.py); ``None``: off.
        l2_sp: weight of the L2-SP penalty ``sum ||w - w_pretrained||^2`` over the trainable backbone
            weights, which then get no weight decay (it would pull them towards zero instead); 0: off.
        distill: weight of the feature distillation of the backbone's pooled features of the training
            images towards those of the frozen pretrained backbone (``distill_kind``: cosine | mse); 0: off.

    L2-SP and distillation keep a frozen copy of the pretrained backbone (``pretrained_backbone``, saved in
    training checkpoints so that resuming keeps the anchor; :func:`~.checkpoint.load_encoder` ignores it).

    Under DDP the batch is gathered from every process before the loss (see :meth:`training_step`).

    ``encoder_config``, when set, is the encoder's resolved Hydra config; it is stored in every checkpoint
    so that ``index`` and ``infer`` rebuild the encoder from the checkpoint alone
    (:func:`fashion_retrieval.models.checkpoint.load_encoder`).
    """

    # Arguments that are objects, not hyperparameters (a subclass adds its own: Lightning collects the
    # arguments of every __init__ of the class hierarchy).
    object_arguments: tuple[str, ...] = ("encoder", "loss", "optimizer", "scheduler")

    def __init__(
        self,
        encoder: ImageEncoder,
        loss: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        backbone_lr: float | None = None,
        memory_size: int = 0,
        layer_decay: float | None = None,
        l2_sp: float = 0.0,
        distill: float = 0.0,
        distill_kind: DistillKind = "cosine",
    ) -> None:
        super().__init__()
        # Optimiser and scheduler factories are Hydra partials: kept out of the checkpoint's hyperparameters
        # so that checkpoints hold plain data and load with torch.load(weights_only=True) (resume too).
        self.save_hyperparameters(ignore=list(self.object_arguments), logger=False)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.encoder = encoder
        self.loss = loss
        self.memory = CrossBatchMemory(memory_size, encoder.embedding_dim) if memory_size > 0 else None
        self.encoder_config: dict | None = None
        self.pretrained_backbone: nn.Module | None = None
        if l2_sp > 0 or distill > 0:
            backbone = getattr(encoder, "backbone", None)
            if not isinstance(backbone, nn.Module):
                raise ValueError(
                    "model.l2_sp and model.distill need an encoder with one backbone (ImageEncoder)"
                )
            self.pretrained_backbone = copy.deepcopy(backbone).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> RetrievalModule:
        super().train(mode)
        if self.pretrained_backbone is not None:
            self.pretrained_backbone.eval()  # the teacher's batch-norm statistics stay the pretrained ones
        return self

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["encoder_config"] = self.encoder_config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, batch_size, features = self.batch_loss(batch)
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
        # The regularisers are each process's own (distillation of its images, L2-SP of the shared
        # weights): DDP's averaging then gives their mean, so they are not scaled by the world size.
        return loss * world_size + self.regularisation(batch, features, batch_size)

    def regularisation(
        self, batch: dict[str, torch.Tensor], features: list[torch.Tensor], batch_size: int
    ) -> torch.Tensor | float:
        """``distill * distillation + l2_sp * L2-SP`` (0 when both are off); ``features`` are the
        backbone's pooled features of the batch's images (:func:`image_keys`)."""
        hp = self.hparams
        total: torch.Tensor | float = 0.0
        if hp.distill > 0:
            assert self.pretrained_backbone is not None
            with torch.no_grad():
                teacher = [self.pretrained_backbone(batch[key]) for key in image_keys(batch)]
            distill = feature_distillation(torch.cat(features), torch.cat(teacher), hp.distill_kind)
            self.log("train/distill", distill, batch_size=batch_size)
            total = total + hp.distill * distill
        if hp.l2_sp > 0:
            assert self.pretrained_backbone is not None
            anchors = dict(self.pretrained_backbone.named_parameters())
            trainable = [
                (p, anchors[n]) for n, p in self.encoder.backbone.named_parameters() if p.requires_grad
            ]
            penalty = l2_sp_penalty([p for p, _ in trainable], [a for _, a in trainable])
            self.log("train/l2_sp", penalty, batch_size=batch_size)
            total = total + hp.l2_sp * penalty
        return total

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, list[torch.Tensor]]:
        """The contrastive loss of a training batch (gathered from every DDP process), the global
        number of anchors and, when distilling, this process's pooled backbone features of the batch's
        images (:func:`image_keys`; else an empty list).

        Two kinds of batch: bundle batches (keys ``query``, ``catalogue``, ``query_products``,
        ``query_excluded``, ``catalogue_label``: :func:`fashion_retrieval.data.datasets.collate_bundles`) and
        labelled batches (``image``, ``label``:
        :class:`fashion_retrieval.data.datasets.LabelledImageDataset`), whose images are scored against each
        other (:meth:`labelled_pairs`). Both end as an anchor x candidate batch with masks, which every
        loss, the in-batch miners and the memory take alike.
        """
        features: list[torch.Tensor] = []
        pairs = (
            self.labelled_pairs(batch, features) if "label" in batch else self.bundle_pairs(batch, features)
        )
        gallery, positive, negative = pairs.gallery, pairs.positive, pairs.negative
        if self.memory is not None and self.memory.filled:
            remembered, remembered_negative = self.memory.negatives(pairs.excluded)
            gallery, positive, negative = append_negatives(
                gallery, positive, negative, remembered, remembered_negative
            )
        loss = self.loss(pairs.query, gallery, positive, negative)
        if self.memory is not None:
            # Enqueued after use: a product is never its own negative through the memory in this step.
            self.memory.enqueue(pairs.gallery.detach(), pairs.gallery_labels)
        return loss, pairs.query.shape[0], features

    def embed(self, images: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """``(N, D)`` embeddings of ``images``; when distilling, their pooled backbone features are appended
        to ``features``."""
        if self.hparams.distill > 0:
            pooled, embeddings = self.encoder.encode(images)
            features.append(pooled)
            return embeddings
        return self(images)

    def bundle_pairs(self, batch: dict[str, torch.Tensor], features: list[torch.Tensor]) -> Pairs:
        """Bundles against the batch's packshots; masks from product ids (:func:`pair_masks`)."""
        query = self.embed(batch["query"], features)
        gallery = self.embed(batch["catalogue"], features)
        query_products, query_excluded = batch["query_products"], batch["query_excluded"]
        gallery_labels = batch["catalogue_label"]
        if is_distributed():
            query = all_gather_uneven(query, keep_grad=True)
            gallery = all_gather_uneven(gallery, keep_grad=True)
            query_products = all_gather_uneven(query_products)
            query_excluded = all_gather_uneven(query_excluded)
            gallery_labels = all_gather_uneven(gallery_labels)
        positive, negative = pair_masks(query_products, query_excluded, gallery_labels)
        return Pairs(query, gallery, gallery_labels, query_excluded, positive, negative)

    def labelled_pairs(self, batch: dict[str, torch.Tensor], features: list[torch.Tensor]) -> Pairs:
        """Every image against every image of the batch (OML-style): positives are the other images of its
        label, negatives the images of other labels (:func:`label_pair_masks`). Images without another of
        their label in the batch are candidates (negatives of the others) but not anchors."""
        embeddings = self.embed(batch["image"], features)
        labels = batch["label"]
        if is_distributed():
            embeddings = all_gather_uneven(embeddings, keep_grad=True)
            labels = all_gather_uneven(labels)
        positive, negative = label_pair_masks(labels)
        anchors = positive.any(dim=1)
        if not anchors.any():
            raise ValueError(
                f"no label has two images in this batch of {labels.numel()}: a labelled training set needs "
                "batches with positives (sampler=label_balanced)"
            )
        return Pairs(
            embeddings[anchors],
            embeddings,
            labels,
            labels[anchors].unsqueeze(1),
            positive[anchors],
            negative[anchors],
        )

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict:
        return {"embeddings": self(batch["image"]), "index": batch["index"], "loader": dataloader_idx}

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def parameter_groups(self) -> list[dict]:
        """The optimiser's named groups: ``head``, ``loss`` (the rest of the module: a learnable temperature),
        then the backbone's (:meth:`_backbone_groups`)."""
        encoder_groups = self.encoder.parameter_groups()
        grouped = {id(p) for params in encoder_groups.values() for p in params}
        groups: list[dict] = [{"params": encoder_groups["head"], "name": "head"}]
        # Parameters outside the encoder (a learnable loss temperature) learn at the head's rate without
        # weight decay, which would pull the temperature towards 1.
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in grouped]
        if rest:
            groups.append({"params": rest, "name": "loss", "weight_decay": 0.0})
        groups.extend(self._backbone_groups(encoder_groups["backbone"]))
        return groups

    def _backbone_groups(self, parameters: list[nn.Parameter]) -> list[dict]:
        """The backbone's optimiser group(s): one at ``backbone_lr``, or one per block with layer decay."""
        hp = self.hparams
        if not parameters:
            return []
        if hp.layer_decay is None:
            groups: list[dict] = [{"params": parameters, "name": "backbone"}]
            if hp.backbone_lr is not None:
                groups[0]["lr"] = hp.backbone_lr
        else:
            if hp.backbone_lr is None or not isinstance(getattr(self.encoder, "backbone", None), nn.Module):
                raise ValueError("model.layer_decay needs model.backbone_lr and an encoder with one backbone")
            groups = layerwise_parameter_groups(
                self.encoder.backbone, parameters, hp.backbone_lr, hp.layer_decay
            )
        if hp.l2_sp > 0:
            for group in groups:
                group["weight_decay"] = 0.0
        return groups
