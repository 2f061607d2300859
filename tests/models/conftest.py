"""Tiny CLIP checkpoints written by ``save_pretrained``, loaded through the same code path as real ones."""

from __future__ import annotations

import pytest
import timm
import torch
from tiny_models import tiny_clip_model, tiny_vision_model


@pytest.fixture
def full_clip_dir(tmp_path):
    """A full CLIPModel (vision + text), like Fashion-CLIP, saved with ``save_pretrained``."""
    model = tiny_clip_model()
    model.save_pretrained(tmp_path / "full_clip")
    return tmp_path / "full_clip", model


@pytest.fixture
def vision_clip_dir(tmp_path):
    """A CLIPVisionModelWithProjection saved with ``save_pretrained``."""
    model = tiny_vision_model()
    model.save_pretrained(tmp_path / "vision_clip")
    return tmp_path / "vision_clip", model


@pytest.fixture
def timm_weights(tmp_path):
    """Weights of timm's tiny ``test_convnext`` (the checkpoint tests' backbone) in a local file."""
    torch.manual_seed(3)
    path = tmp_path / "convnext.pth"
    torch.save(timm.create_model("test_convnext", num_classes=0).state_dict(), path)
    return path
