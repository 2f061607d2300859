"""The CLIP, ConvNeXt and ensemble model configs build, with tiny weights standing in for the real ones."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tiny_models import uint8_images

from fashion_retrieval.cli import config_dir
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.ensemble import EnsembleEncoder


def model_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("name", ["fashion_clip", "clip_vit_b32"])
def test_clip_configs_follow_the_recipe(name, full_clip_dir):
    directory, _ = full_clip_dir
    assert model_config([f"model={name}"]).model.encoder.backbone.trainable_blocks == 4
    # The tiny stand-in has 2 layers, not ViT-B/32's 12.
    overrides = [
        f"model.encoder.backbone.pretrained={directory}",
        "model.encoder.backbone.trainable_blocks=2",
    ]
    cfg = model_config([f"model={name}", *overrides])
    assert cfg.model.backbone_lr == 1.0e-6 and cfg.model.optimizer.lr == 1.0e-4
    assert cfg.model.optimizer.weight_decay == 1.0e-3 and cfg.model.encoder.embedding_dim is None
    encoder = instantiate(cfg.model.encoder)
    assert isinstance(encoder.backbone, ClipVisionBackbone) and encoder.backbone.trainable_blocks == 2
    module = instantiate(cfg.model, loss=instantiate(cfg.loss))
    module.scheduler_factory = None  # no trainer here to count the steps
    groups = {g["name"]: g for g in module.configure_optimizers()["optimizer"].param_groups}
    assert groups["backbone"]["lr"] == 1.0e-6 and groups["head"]["lr"] == 1.0e-4


def test_clip_vit_b32_differs_only_by_the_model_id():
    fashion = model_config(["model=fashion_clip"]).model
    openai = model_config(["model=clip_vit_b32"]).model
    assert openai.encoder.backbone.pretrained == "openai/clip-vit-base-patch32"
    openai.encoder.backbone.pretrained = fashion.encoder.backbone.pretrained
    assert openai == fashion


def test_ensemble_config_builds(full_clip_dir):
    directory, _ = full_clip_dir
    cfg = model_config(
        [
            "model=ensemble",
            f"model.encoder.members.clip.backbone.pretrained={directory}",
            "model.encoder.members.clip.backbone.trainable_blocks=2",
            "model.encoder.members.convnext.backbone.model_name=test_convnext",
            "model.encoder.members.convnext.backbone.weights=random",
        ]
    )
    encoder = instantiate(cfg.model.encoder)
    assert isinstance(encoder, EnsembleEncoder) and encoder.weights == [0.5, 0.5]
    assert encoder.embedding_dim == 16 + 256
    with torch.no_grad():
        assert encoder.eval()(uint8_images(2, 32, 32).float() / 255).shape == (2, 272)
