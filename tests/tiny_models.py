"""Tiny models for the model tests: CLIP checkpoints small enough to save, load and run in milliseconds."""

from __future__ import annotations

import json

import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
TINY_TEXT = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "vocab_size": 64,
    "max_position_embeddings": 16,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}
PROJECTION_DIM = 16  # differs from CLIPVisionConfig's default (512): the top-level value must win


def tiny_clip_model() -> CLIPModel:
    torch.manual_seed(0)
    config = CLIPConfig(text_config=TINY_TEXT, vision_config=TINY_VISION, projection_dim=PROJECTION_DIM)
    return CLIPModel(config).eval()


def tiny_vision_model() -> CLIPVisionModelWithProjection:
    torch.manual_seed(1)
    config = CLIPVisionConfig(**TINY_VISION, projection_dim=PROJECTION_DIM)
    return CLIPVisionModelWithProjection(config).eval()


def write_processor_config(directory, mean, std) -> None:
    config = {"image_processor_type": "CLIPImageProcessor", "image_mean": mean, "image_std": std}
    (directory / "preprocessor_config.json").write_text(json.dumps(config))


def uint8_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=generator)


# A random-init tower's vision_config (ClipVisionBackbone(vision_config=...)): projection included.
TINY_TOWER = {**TINY_VISION, "projection_dim": PROJECTION_DIM}
