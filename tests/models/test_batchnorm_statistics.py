"""Batch-norm statistics that must not move while fitting: those of frozen blocks, and all of them with
``frozen_batchnorm_statistics``. Checked through a real Lightning fit, which never calls ``train()`` before
its first step (it restores each module's own mode after validation)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, TensorDataset

from fashion_retrieval.models.backbones import TimmBackbone


class PooledFeatureNorm(pl.LightningModule):
    """The smallest module that fits a backbone: minimise its pooled features' squared norm."""

    def __init__(self, backbone: TimmBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.backbone(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.backbone(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.01)


def fit(backbone: TimmBackbone) -> dict[str, int]:
    """Two training steps (after Lightning's sanity validation); the batches each norm tracked, by name."""
    images = TensorDataset(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    loader = DataLoader(images, batch_size=4)
    trainer.fit(PooledFeatureNorm(backbone), loader, loader)
    return {
        name: int(module.num_batches_tracked)
        for name, module in backbone.model.named_modules()
        if isinstance(module, _BatchNorm)
    }


@pytest.mark.parametrize("call_train_first", [False, True])
def test_frozen_blocks_keep_their_statistics_through_a_fit(call_train_first: bool) -> None:
    frozen_prefixes = ["conv_stem", "bn1", "blocks.0"]
    backbone = TimmBackbone("test_efficientnet", weights="random", frozen_prefixes=frozen_prefixes)
    if call_train_first:
        backbone.train()
    tracked = fit(backbone)
    frozen = {name: n for name, n in tracked.items() if name.startswith(("bn1", "blocks.0"))}
    trainable = {name: n for name, n in tracked.items() if name not in frozen}
    assert frozen and all(n == 0 for n in frozen.values()), frozen
    assert trainable and all(n == 2 for n in trainable.values()), trainable


def test_frozen_batchnorm_statistics_keeps_every_norm_while_its_weights_train() -> None:
    backbone = TimmBackbone("test_efficientnet", weights="random", frozen_batchnorm_statistics=True)
    before = {name: p.detach().clone() for name, p in backbone.named_parameters() if "bn" in name}
    tracked = fit(backbone)
    assert tracked and all(n == 0 for n in tracked.values()), tracked
    after = dict(backbone.named_parameters())
    assert any(not torch.equal(value, after[name]) for name, value in before.items())
