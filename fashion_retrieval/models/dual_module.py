"""The ``train-text`` stage's LightningModule: a CLIP-style dual encoder, image tower x text tower.

Everything about the image tower is :class:`~fashion_retrieval.models.module.RetrievalModule`'s (its optimiser
groups, the encoder config stored in checkpoints, the bundle -> product loss), so a dual encoder's
checkpoint loads as an image model everywhere (``index``, ``retrieval-eval``, ... through
:func:`~fashion_retrieval.models.checkpoint.load_encoder`), and as a dual encoder through
:func:`~fashion_retrieval.models.dual_encoder.load_dual_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim import Optimizer

from fashion_retrieval.models.distributed import all_gather_uneven, is_distributed
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.module import RetrievalModule
from fashion_retrieval.models.text import TextEncoder

PAIRS, BUNDLES = "pairs", "bundles"


def same_key_mask(keys: torch.Tensor) -> torch.Tensor:
    """``(B,)`` int ids -> ``(B, B)`` bool, True where two items share their id (a caption's text: two
    products with the same caption are each other's positives, never negatives)."""
    return keys.unsqueeze(1) == keys.unsqueeze(0)


class DualEncoderModule(RetrievalModule):
    """Trains an image tower and a text tower into one space on (packshot, caption) pairs.

    A pair batch (:class:`~fashion_retrieval.data.caption_pairs.CaptionDataModule`) holds ``caption`` (B
    strings), ``caption_key (B,)`` int64 (one id per distinct text) and either ``image (B, 3, H, W)``
    packshots or ``features (B, F)``, a frozen backbone's cached pooled features, which only the image
    tower's head then sees. Its loss is ``loss(texts (B, D), images (B, D), same caption, None)``: symmetric
    InfoNCE with :class:`~fashion_retrieval.losses.InfoNCELoss` (fixed or learnable temperature).

    ``bundle_weight > 0`` adds ``bundle_weight`` times the bundle -> product loss of the parent class on a
    bundle batch: the batch is then ``{"pairs": ..., "bundles": ...}``.

    Validation: the query loader holds texts (``caption``), the gallery loader packshots or features; the
    :class:`~fashion_retrieval.callbacks.RetrievalEvaluator` scores text -> product retrieval.

    Args (besides the parent's ``encoder``, ``loss``, ``optimizer``, ``scheduler``, ``backbone_lr``,
    ``layer_decay``):
        text_encoder: the text tower; its ``embedding_dim`` must be the image tower's.
        text_lr: learning rate of the text tower (``None``: the optimiser's).
        bundle_weight: weight of the bundle -> product loss; 0: pairs only.
        memory_size, l2_sp, distill, distill_kind: accepted so that any ``model=`` config builds one; a
            non-zero ``memory_size``, ``l2_sp`` or ``distill`` is refused (not used by text training).
    """

    object_arguments = (*RetrievalModule.object_arguments, "text_encoder")

    def __init__(
        self,
        encoder: ImageEncoder,
        text_encoder: TextEncoder,
        loss: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        backbone_lr: float | None = None,
        text_lr: float | None = None,
        bundle_weight: float = 0.0,
        memory_size: int = 0,
        layer_decay: float | None = None,
        l2_sp: float = 0.0,
        distill: float = 0.0,
        distill_kind: str = "cosine",
    ) -> None:
        unused = [
            name
            for name, value in (("memory_size", memory_size), ("l2_sp", l2_sp), ("distill", distill))
            if value
        ]
        if unused:
            raise ValueError(f"model.{unused} are not used by the dual encoder; set them to 0")
        if bundle_weight < 0:
            raise ValueError(f"bundle_weight must be >= 0, got {bundle_weight}")
        if text_encoder.embedding_dim != encoder.embedding_dim:
            raise ValueError(
                f"the text tower embeds in {text_encoder.embedding_dim} dimensions, the image tower in "
                f"{encoder.embedding_dim}: set the text tower's embedding_dim to the image tower's"
            )
        super().__init__(encoder, loss, optimizer, scheduler, backbone_lr, layer_decay=layer_decay)
        self.text_encoder = text_encoder
        self.text_config: dict | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["text_config"] = self.text_config

    def embed_packshots(self, batch: dict) -> torch.Tensor:
        """``(B, D)`` embeddings of a batch's ``features`` (head only) or ``image`` (whole tower)."""
        if "features" in batch:
            return self.encoder.embed_features(batch["features"])
        return self(batch["image"])

    def pair_loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        """The symmetric text x image loss of a pair batch (gathered from every DDP process) and its size."""
        texts = self.text_encoder.encode_text(batch["caption"])
        images = self.embed_packshots(batch)
        keys = batch["caption_key"]
        if is_distributed():
            texts = all_gather_uneven(texts, keep_grad=True)
            images = all_gather_uneven(images, keep_grad=True)
            keys = all_gather_uneven(keys)
        return self.loss(texts, images, same_key_mask(keys), None), texts.shape[0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pairs = batch.get(PAIRS, batch)
        loss, size = self.pair_loss(pairs)
        self.log("train/text_loss", loss, batch_size=size)
        if self.hparams.bundle_weight > 0:
            bundle_loss = self.batch_loss(batch[BUNDLES])[0]
            self.log("train/bundle_loss", bundle_loss, batch_size=size)
            loss = loss + self.hparams.bundle_weight * bundle_loss
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        temperature = getattr(self.loss, "current_temperature", None)
        if temperature is not None:
            self.log("train/temperature", float(temperature), batch_size=size)
        for group in self.optimizers().optimizer.param_groups:
            self.log(f"train/lr_{group['name']}", group["lr"], batch_size=size)
        # As in the parent: each process back-propagates into its own embeddings only.
        world_size = torch.distributed.get_world_size() if is_distributed() else 1
        return loss * world_size

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        if "caption" in batch:
            embeddings = self.text_encoder.encode_text(batch["caption"])
        else:
            embeddings = self.embed_packshots(batch)
        return {"embeddings": embeddings, "index": batch["index"], "loader": dataloader_idx}

    def parameter_groups(self) -> list[dict]:
        """The parent's groups without the text tower, then a ``text`` group (at ``text_lr`` when set)."""
        text = [p for p in self.text_encoder.parameters() if p.requires_grad]
        text_ids = {id(p) for p in text}
        groups = []
        for group in super().parameter_groups():
            kept = [p for p in group["params"] if id(p) not in text_ids]
            if kept:
                groups.append({**group, "params": kept})
        text_group: dict = {"params": text, "name": "text"}
        if self.hparams.text_lr is not None:
            text_group["lr"] = self.hparams.text_lr
        return [*groups, text_group]
