"""ConvNeXt weights through TimmBackbone, and one training step of the real-size towers (slow)."""

from __future__ import annotations

import pytest
import timm
import torch
from tiny_models import uint8_images
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_convnext_weights_file_loads_exactly(tmp_path, suffix):
    torch.manual_seed(0)
    source = timm.create_model("test_convnext", num_classes=0).eval()
    path = tmp_path / f"convnext{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    backbone = TimmBackbone("test_convnext", weights=str(path)).eval()
    for key, tensor in source.state_dict().items():
        torch.testing.assert_close(backbone.model.state_dict()[key], tensor, rtol=0, atol=0, msg=key)


def one_training_step(encoder: ImageEncoder, size: int) -> None:
    """Forward + backward + AdamW step at batch 2; the trainable weights must move."""
    groups = encoder.parameter_groups()
    optimizer = torch.optim.AdamW(
        [{"params": groups["head"]}, {"params": groups["backbone"], "lr": 1e-5}], lr=1e-3
    )
    before = [p.detach().clone() for p in groups["backbone"][-2:]]
    embeddings = encoder(uint8_images(2, size, size).float() / 255)
    loss = -(embeddings[0] * embeddings[1]).sum()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, groups["backbone"][-2:]))


@pytest.mark.slow
def test_convnext_tiny_from_a_local_file_trains_one_step(tmp_path):
    path = tmp_path / "convnext_tiny.pth"
    torch.save(timm.create_model("convnext_tiny", num_classes=0).state_dict(), path)
    encoder = ImageEncoder(
        TimmBackbone("convnext_tiny", weights=str(path)), embedding_dim=256, channels_last=True
    )
    assert encoder.backbone.num_features == 768
    one_training_step(encoder.train(), 224)


@pytest.mark.slow
def test_clip_vit_b32_from_a_local_directory_trains_one_step(tmp_path):
    config = CLIPVisionConfig(patch_size=32, projection_dim=512)  # ViT-B/32 sizes
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "vit_b32")
    encoder = ImageEncoder(
        ClipVisionBackbone(str(tmp_path / "vit_b32"), trainable_blocks=4), embedding_dim=None
    )
    assert encoder.embedding_dim == 512 and encoder.backbone.image_size == 224
    one_training_step(encoder.train(), 224)
