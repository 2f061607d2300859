"""The ``pretrain`` stage's LightningModules: self-supervised learning of a backbone on unlabelled images
through lightly's heads, losses and multi-view transforms (DINO, SimCLR, MAE; docs/pretraining.md).

Each module trains a :class:`~fashion_retrieval.models.backbones.TimmBackbone` (the backbone of ``model=``)
and says which transform makes its views (:meth:`SelfSupervisedModule.view_transform`, without
normalisation: the backbone normalises its own uint8 input) and which backbone the stage exports
(:meth:`SelfSupervisedModule.exported_backbone`): its timm state dict loads back by name with
``model.encoder.backbone.weights=<file>``. Checkpoints hold plain data (the optimiser and scheduler
factories are kept out of the hyperparameters), so resuming reads them with ``weights_only=True``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from lightly.loss import DINOLoss, NTXentLoss
from lightly.models import utils as lightly_utils
from lightly.models.modules import (
    DINOProjectionHead,
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
    SimCLRProjectionHead,
)
from lightly.transforms import DINOTransform, MAETransform, SimCLRTransform
from lightly.utils.scheduler import cosine_schedule
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.optim import Optimizer

from fashion_retrieval.data.pretrain import ViewTransform
from fashion_retrieval.models.backbones import TimmBackbone


class SelfSupervisedModule(pl.LightningModule):
    """Shared glue: the backbone, the optimiser over every trainable parameter, the step's logging.

    Args:
        backbone: the backbone to pre-train (the ``model=`` config's ``encoder.backbone``).
        optimizer: a partial optimiser factory (Hydra ``_partial_: true``), called with parameter groups.
        scheduler: optional partial ``(optimizer, total_steps) -> LRScheduler``, stepped every batch.
        keep_batchnorm_statistics: the backbone's batch-norm running statistics stay those it came with
            (momentum 0; training still normalises each batch by its own statistics) instead of becoming
            those of the augmented crops, which the exported file would carry (experiments/pretrain/).

    Subclasses define :meth:`views_loss` and :meth:`view_transform`. ``backbone_config``, when set, is the
    backbone's resolved config, stored in every checkpoint (provenance of the exported weights).
    """

    def __init__(
        self,
        backbone: TimmBackbone,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        keep_batchnorm_statistics: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, TimmBackbone):
            raise TypeError(
                f"pretrain trains a timm backbone (TimmBackbone), not a {type(backbone).__name__}: "
                "pick a timm model (model=efficientnet_lite0, ...)"
            )
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.backbone_config: dict | None = None
        if keep_batchnorm_statistics:  # before a subclass copies the backbone (DINO's teacher)
            for module in backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = 0.0

    def view_transform(self) -> ViewTransform:
        """A PIL image -> its views, ``(3, h, w)`` float in 0..1 each (lightly's transform, unnormalised)."""
        raise NotImplementedError

    def views_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The method's loss on a batch of views, ``views[v] (B, 3, h, w)`` uint8."""
        raise NotImplementedError

    def exported_backbone(self) -> TimmBackbone:
        """The backbone whose weights the stage exports."""
        return self.backbone

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["backbone_config"] = self.backbone_config

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        views = batch["views"]
        loss = self.views_loss(views)
        size = int(views[0].shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for group in self.optimizers().optimizer.param_groups:
            self.log(f"train/lr_{group['name']}", group["lr"], batch_size=size)
        return loss

    def configure_optimizers(self) -> dict:
        backbone = {id(p) for p in self.backbone.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if id(p) in backbone], "name": "backbone"},
            {"params": [p for p in trainable if id(p) not in backbone], "name": "head"},
        ]
        optimizer = self.optimizer_factory([group for group in groups if group["params"]])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class DINOModule(SelfSupervisedModule):
    """DINO (Caron et al. 2021): a student (backbone + projection head) matches, on every view, the
    centred and sharpened output of a teacher, its exponential moving average, on the global views.

    ``global_crop_size``/``local_crop_size``: sides of the 2 global and ``n_local_views`` local crops;
    ``momentum_start``: the teacher's EMA momentum, raised to 1 on a cosine over training;
    ``freeze_last_layer``: epochs during which the head's last layer is not trained (DINO's stabiliser);
    ``warmup_teacher_temp_epochs``: epochs the teacher's temperature warms up from
    ``warmup_teacher_temp`` to ``teacher_temp``. The exported backbone is the teacher's, as in DINO's own
    evaluations.
    """

    def __init__(
        self,
        backbone: TimmBackbone,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        global_crop_size: int = 224,
        local_crop_size: int = 96,
        n_local_views: int = 6,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 65536,
        momentum_start: float = 0.996,
        freeze_last_layer: int = 1,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        student_temp: float = 0.1,
        keep_batchnorm_statistics: bool = False,
    ) -> None:
        super().__init__(backbone, optimizer, scheduler, keep_batchnorm_statistics)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"], logger=False)
        sizes = (int(backbone.num_features), hidden_dim, bottleneck_dim, output_dim)
        self.head = DINOProjectionHead(*sizes, freeze_last_layer=freeze_last_layer)
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        # Built and loaded rather than deep-copied: the head's weight-normed layer refuses deepcopy.
        self.teacher_head = DINOProjectionHead(*sizes)
        self.teacher_head.load_state_dict(self.head.state_dict())
        self.teacher_head.requires_grad_(False)
        self.criterion = DINOLoss(
            output_dim=output_dim,
            warmup_teacher_temp=warmup_teacher_temp,
            teacher_temp=teacher_temp,
            # lightly's linspace needs at least one step; 1 epoch of warm-up is the constant temperature.
            warmup_teacher_temp_epochs=max(1, warmup_teacher_temp_epochs),
            student_temp=student_temp,
        )

    def view_transform(self) -> ViewTransform:
        hp = self.hparams
        return DINOTransform(
            global_crop_size=hp.global_crop_size,
            local_crop_size=hp.local_crop_size,
            n_local_views=hp.n_local_views,
            normalize=None,
        )

    def exported_backbone(self) -> TimmBackbone:
        return self.teacher_backbone

    def views_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        momentum = cosine_schedule(
            self.global_step,
            max(1, int(self.trainer.estimated_stepping_batches)),
            self.hparams.momentum_start,
            1,
        )
        lightly_utils.update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        lightly_utils.update_momentum(self.head, self.teacher_head, m=momentum)
        global_views = views[:2]
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_backbone(view)) for view in global_views]
        student = [self.head(self.backbone(view)) for view in views]
        return self.criterion(teacher, student, epoch=self.current_epoch)

    def on_after_backward(self) -> None:
        self.head.cancel_last_layer_gradients(current_epoch=self.current_epoch)


class SimCLRModule(SelfSupervisedModule):
    """SimCLR (Chen et al. 2020): two views of each image are positives, every other image of the batch
    (of every DDP process: the loss gathers them) a negative, through a projection head and NT-Xent."""

    def __init__(
        self,
        backbone: TimmBackbone,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        crop_size: int = 224,
        min_scale: float = 0.08,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        temperature: float = 0.5,
        keep_batchnorm_statistics: bool = False,
    ) -> None:
        super().__init__(backbone, optimizer, scheduler, keep_batchnorm_statistics)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"], logger=False)
        self.head = SimCLRProjectionHead(int(backbone.num_features), hidden_dim, output_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def view_transform(self) -> ViewTransform:
        return SimCLRTransform(
            input_size=self.hparams.crop_size, min_scale=self.hparams.min_scale, normalize=None
        )

    def views_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        first, second = (self.head(self.backbone(view)) for view in views[:2])
        return self.criterion(first, second)


def vision_transformer(backbone: TimmBackbone) -> VisionTransformer:
    """The backbone's timm ViT; ``TypeError`` saying what to pick for any other architecture."""
    model = backbone.model
    if not isinstance(model, VisionTransformer):
        raise TypeError(
            f"pretrain method=mae needs a ViT backbone (a timm VisionTransformer, e.g. "
            f"model.encoder.backbone.model_name=vit_small_patch16_224); {backbone.model_name} is a "
            f"{type(model).__name__}: use method=dino or method=simclr"
        )
    if model.num_prefix_tokens != 1:
        raise ValueError(
            f"pretrain method=mae: {backbone.model_name} has {model.num_prefix_tokens} prefix tokens; "
            "the masking keeps exactly one (the class token)"
        )
    return model


class MAEModule(SelfSupervisedModule):
    """Masked autoencoder (He et al. 2022), for ViT backbones only: the ViT encodes a random
    ``1 - mask_ratio`` of the patches, a light decoder reconstructs the others' (normalised) pixels, and
    the loss is their mean squared error. Views are the ViT's own input size."""

    def __init__(
        self,
        backbone: TimmBackbone,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        mask_ratio: float = 0.75,
        min_scale: float = 0.2,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        keep_batchnorm_statistics: bool = False,
    ) -> None:
        super().__init__(backbone, optimizer, scheduler, keep_batchnorm_statistics)
        vit = vision_transformer(backbone)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"], logger=False)
        # "skip": the ViT keeps the weights the backbone was built with (pretrained or timm's own init).
        self.masked_encoder = MaskedVisionTransformerTIMM(
            vit=vit, weight_initialization="skip", pos_embed_initialization="skip"
        )
        # Its mask token serves masking by replacement, which MAE does not use (it drops tokens): a
        # parameter without a gradient would stop DDP at its first step.
        self.masked_encoder.mask_token.requires_grad_(False)
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches,
            embed_dim=decoder_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            num_prefix_tokens=vit.num_prefix_tokens,
        )
        self.prediction = nn.Linear(decoder_dim, self.patch_size**2 * 3)

    def view_transform(self) -> ViewTransform:
        size = tuple(self.masked_encoder.vit.patch_embed.img_size)
        return MAETransform(input_size=size, min_scale=self.hparams.min_scale, normalize=None)

    def views_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        images = self.backbone.normalize(views[0])
        batch = images.shape[0]
        length = self.masked_encoder.sequence_length
        keep, masked = lightly_utils.random_token_mask(
            size=(batch, length), mask_ratio=self.hparams.mask_ratio, device=images.device
        )
        encoded = self.masked_encoder.encode(images, idx_keep=keep)
        tokens = lightly_utils.repeat_token(self.decoder.mask_token, (batch, length))
        tokens = lightly_utils.set_at_index(tokens, keep, self.decoder_embed(encoded).to(tokens.dtype))
        predicted = self.prediction(lightly_utils.get_at_index(self.decoder(tokens), masked))
        patches = lightly_utils.patchify(images, self.patch_size)
        # Token 0 is the class token: patch p is token p + 1.
        target = lightly_utils.get_at_index(patches, masked - 1)
        return nn.functional.mse_loss(predicted, target)
