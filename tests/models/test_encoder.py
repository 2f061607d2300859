"""ImageEncoder without a head, parameter groups, and the optimiser groups of the LightningModule."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_models import TINY_VISION, uint8_images
from torch import nn

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.ensemble import EnsembleEncoder
from fashion_retrieval.models.module import RetrievalModule


def clip_encoder(trainable_blocks: int = 1) -> ImageEncoder:
    backbone = ClipVisionBackbone(
        "random", vision_config={**TINY_VISION, "projection_dim": 8}, trainable_blocks=trainable_blocks
    )
    return ImageEncoder(backbone, embedding_dim=None)


def ids(parameters) -> set[int]:
    return {id(p) for p in parameters}


def test_no_head_embeds_with_the_backbone_output():
    encoder = clip_encoder().eval()
    assert encoder.embedding_dim == 8 and isinstance(encoder.head, nn.Identity)
    images = uint8_images(3, 32, 32)
    with torch.no_grad():
        embeddings = encoder(images)
        torch.testing.assert_close(embeddings, encoder.backbone_features(images))
    assert embeddings.dtype == torch.float32 and embeddings.shape == (3, 8)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_hidden_dim_without_head_is_refused():
    with pytest.raises(ValueError, match="embedding_dim"):
        ImageEncoder(clip_encoder().backbone, embedding_dim=None, hidden_dim=32)


def test_clip_projection_learns_in_the_head_group():
    encoder = clip_encoder(trainable_blocks=1)
    groups = encoder.parameter_groups()
    projection = encoder.backbone.model.visual_projection.weight
    assert id(projection) in ids(groups["head"]) and id(projection) not in ids(groups["backbone"])
    last_layer = encoder.backbone.model.vision_model.encoder.layers[-1]
    assert ids(last_layer.parameters()) <= ids(groups["backbone"])
    trainable = ids(p for p in encoder.parameters() if p.requires_grad)
    assert ids(groups["backbone"]) | ids(groups["head"]) == trainable
    assert not ids(groups["backbone"]) & ids(groups["head"])


def test_linear_probe_trains_the_projection_only():
    groups = clip_encoder(trainable_blocks=0).parameter_groups()
    assert groups["backbone"] == [] and len(groups["head"]) == 1


def test_timm_encoder_groups():
    encoder = ImageEncoder(
        TimmBackbone("test_efficientnet", weights="random", frozen_prefixes=["conv_stem"]), embedding_dim=16
    )
    groups = encoder.parameter_groups()
    assert ids(groups["head"]) == ids(encoder.head.parameters())
    assert ids(groups["backbone"]) == ids(p for p in encoder.backbone.parameters() if p.requires_grad)
    assert id(encoder.backbone.model.conv_stem.weight) not in ids(groups["backbone"])


class LossWithTemperature(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(()))


def test_module_optimiser_uses_the_encoder_groups():
    encoder = clip_encoder(trainable_blocks=1)
    loss = LossWithTemperature()
    module = RetrievalModule(
        encoder, loss, optimizer=functools.partial(torch.optim.AdamW, lr=1e-4), backbone_lr=1e-6
    )
    optimizer = module.configure_optimizers()["optimizer"]
    by_name = {group["name"]: group for group in optimizer.param_groups}
    assert by_name["head"]["lr"] == 1e-4 and by_name["backbone"]["lr"] == 1e-6
    head = ids(by_name["head"]["params"])
    assert id(encoder.backbone.model.visual_projection.weight) in head
    assert ids(by_name["backbone"]["params"]) == ids(encoder.parameter_groups()["backbone"])
    optimised = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert id(loss.log_temperature) in optimised and len(optimised) == len(set(optimised))


def test_native_input_size_comes_from_the_backbone() -> None:
    """Each encoder knows the size its pretrained weights were made for; an ensemble takes the largest."""
    lite0 = ImageEncoder(TimmBackbone("tf_efficientnet_lite0", weights="random"), embedding_dim=8)
    lite2 = ImageEncoder(TimmBackbone("tf_efficientnet_lite2", weights="random"), embedding_dim=8)
    assert lite0.native_input_size == (224, 224) and lite2.native_input_size == (260, 260)
    assert EnsembleEncoder([lite0, lite2]).native_input_size == (260, 260)
    clip = ClipVisionBackbone("random", vision_config=TINY_VISION)
    assert clip.native_input_size == (TINY_VISION["image_size"],) * 2


def test_head_on_pooled_features_is_the_embedding() -> None:
    """The cached-feature path (pooled features once, then the head) embeds exactly as the whole tower."""
    torch.manual_seed(0)
    encoder = ImageEncoder(TimmBackbone("test_efficientnet", weights="random"), embedding_dim=8).eval()
    images = uint8_images(3, 32, 24)
    with torch.no_grad():
        pooled = encoder.pooled_features(images)
        assert pooled.shape == (3, encoder.backbone.num_features) and pooled.dtype == torch.float32
        torch.testing.assert_close(encoder.embed_features(pooled), encoder(images))
        torch.testing.assert_close(encoder.embed_features(pooled).norm(dim=1), torch.ones(3))
