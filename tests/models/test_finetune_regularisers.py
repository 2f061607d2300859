"""RetrievalModule's fine-tuning options: layer-wise decay groups, L2-SP and distillation towards the
frozen pretrained backbone."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_models import uint8_images
from torch import nn

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.layer_decay import parameter_depths
from fashion_retrieval.models.module import RetrievalModule

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


def module(**options) -> RetrievalModule:
    torch.manual_seed(0)
    backbone = TimmBackbone(
        "test_efficientnet", weights="random", frozen_prefixes=["conv_stem", "bn1", "blocks.0"]
    )
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=1e-4)
    return RetrievalModule(ImageEncoder(backbone, embedding_dim=8), nn.Identity(), optimizer, **options)


def shift_backbone(model: RetrievalModule, amount: float) -> None:
    with torch.no_grad():
        for parameter in model.encoder.backbone.parameters():
            if parameter.requires_grad:
                parameter.add_(amount)


def test_layer_decay_gives_one_group_per_depth():
    model = module(backbone_lr=1e-3, layer_decay=0.5)
    groups = model.configure_optimizers()["optimizer"].param_groups
    backbone = [g for g in groups if g["name"].startswith("backbone_")]
    assert len(backbone) > 2 and all(g["weight_decay"] == 1e-4 for g in backbone)
    top = max(parameter_depths([n for n, _ in model.encoder.backbone.named_parameters()]))
    for group in backbone:
        depth = int(group["name"].split("_")[1])
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (top - depth))
    trainable = {id(p) for p in model.encoder.backbone.parameters() if p.requires_grad}
    assert {id(p) for g in backbone for p in g["params"]} == trainable
    with pytest.raises(ValueError, match="backbone_lr"):
        module(layer_decay=0.5).configure_optimizers()


def test_l2_sp_pulls_towards_the_frozen_pretrained_copy():
    model = module(backbone_lr=1e-3, l2_sp=0.1)
    anchor = model.pretrained_backbone
    assert anchor is not None and not any(p.requires_grad for p in anchor.parameters())
    model.train()
    assert not anchor.training  # the teacher keeps its batch-norm statistics
    batch = {"query": uint8_images(2, 32, 32), "catalogue": uint8_images(2, 32, 32, seed=1)}
    assert float(model.regularisation(batch, [], 2)) == 0.0
    shift_backbone(model, 0.01)
    trainable = sum(p.numel() for p in model.encoder.backbone.parameters() if p.requires_grad)
    assert float(model.regularisation(batch, [], 2)) == pytest.approx(0.1 * trainable * 0.01**2, rel=1e-3)
    groups = model.configure_optimizers()["optimizer"].param_groups
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] == 1e-4
    assert not {id(p) for p in anchor.parameters()} & {id(p) for g in groups for p in g["params"]}


def test_distillation_is_zero_for_the_pretrained_features_and_grows_as_they_drift():
    model = module(distill=2.0).eval()
    batch = {"query": uint8_images(2, 32, 32), "catalogue": uint8_images(3, 32, 32, seed=1)}

    def distill() -> float:
        features = [model.encoder.encode(batch[key])[0] for key in ("query", "catalogue")]
        return float(model.regularisation(batch, features, 2))

    assert distill() == pytest.approx(0.0, abs=1e-6)
    shift_backbone(model, 0.05)
    assert distill() > 1e-3
    assert "pretrained_backbone.model.conv_head.weight" in model.state_dict()  # resuming keeps the anchor
