"""ClipVisionBackbone: loading real-format checkpoints offline, freezing, normalisation, input sizes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from tiny_models import PROJECTION_DIM, TINY_VISION, uint8_images, write_processor_config
from transformers import CLIPVisionModel

from fashion_retrieval.models.clip import CLIP_MEAN, CLIP_STD, ClipVisionBackbone
from fashion_retrieval.models.normalization import InputNormalization
from fashion_retrieval.models.weights import RandomInitialisationError, WeightsNotFoundError


def vision_state(model) -> dict[str, torch.Tensor]:
    """The tensors a ClipVisionBackbone takes from a CLIPModel or CLIPVisionModelWithProjection."""
    return {
        k: v for k, v in model.state_dict().items() if k.startswith(("vision_model.", "visual_projection."))
    }


@pytest.mark.parametrize("fixture", ["full_clip_dir", "vision_clip_dir"])
def test_saved_directory_loads_vision_tower_and_projection(request, fixture):
    directory, source = request.getfixturevalue(fixture)
    backbone = ClipVisionBackbone(str(directory)).eval()
    expected = vision_state(source)
    loaded = backbone.model.state_dict()
    assert set(expected) == set(loaded)
    for key, tensor in expected.items():
        torch.testing.assert_close(loaded[key], tensor, rtol=0, atol=0, msg=key)
    assert backbone.num_features == PROJECTION_DIM
    assert backbone.image_size == TINY_VISION["image_size"]

    images = uint8_images(2, 32, 32)
    pixels = InputNormalization(CLIP_MEAN, CLIP_STD)(images)
    if fixture == "full_clip_dir":
        reference = source.get_image_features(pixel_values=pixels)
        reference = getattr(reference, "pooler_output", reference)  # a tensor or an output object
    else:
        reference = source(pixel_values=pixels).image_embeds
    with torch.no_grad():
        torch.testing.assert_close(backbone(images), reference)


def test_directory_without_projection_is_refused(tmp_path, vision_clip_dir):
    _, source = vision_clip_dir
    CLIPVisionModel(source.config).save_pretrained(tmp_path / "no_projection")
    with pytest.raises(ValueError, match="missing"):
        ClipVisionBackbone(str(tmp_path / "no_projection"))


def test_random_init_needs_no_files():
    backbone = ClipVisionBackbone("random", vision_config={**TINY_VISION, "projection_dim": 8})
    assert backbone.num_features == 8
    assert backbone.mean == CLIP_MEAN and backbone.std == CLIP_STD
    assert backbone(uint8_images(3, 32, 32)).shape == (3, 8)


def test_normalisation_from_processor_config_else_defaults(full_clip_dir):
    directory, _ = full_clip_dir
    assert ClipVisionBackbone(str(directory)).mean == CLIP_MEAN  # no preprocessor_config.json
    write_processor_config(directory, [0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    backbone = ClipVisionBackbone(str(directory))
    assert backbone.mean == (0.1, 0.2, 0.3) and backbone.std == (0.4, 0.5, 0.6)
    explicit = ClipVisionBackbone(str(directory), mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert explicit.mean == (0.5, 0.5, 0.5) and explicit.std == (0.25, 0.25, 0.25)


def trainable_names(backbone: ClipVisionBackbone) -> set[str]:
    return {name for name, p in backbone.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("blocks", [-1, 0, 1, 2])
def test_freeze_policies(blocks):
    backbone = ClipVisionBackbone("random", vision_config=TINY_VISION, trainable_blocks=blocks)
    names = trainable_names(backbone)
    everything = {name for name, _ in backbone.model.named_parameters()}
    if blocks == -1:
        assert names == everything
        return
    expected = {"visual_projection.weight"}
    if blocks > 0:
        expected |= {"vision_model.post_layernorm.weight", "vision_model.post_layernorm.bias"}
        for layer in range(TINY_VISION["num_hidden_layers"] - blocks, TINY_VISION["num_hidden_layers"]):
            expected |= {n for n in everything if n.startswith(f"vision_model.encoder.layers.{layer}.")}
    assert names == expected
    count = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    assert count == sum(p.numel() for n, p in backbone.model.named_parameters() if n in expected)


def test_freeze_policy_beyond_depth_is_refused():
    with pytest.raises(ValueError, match="trainable_blocks"):
        ClipVisionBackbone("random", vision_config=TINY_VISION, trainable_blocks=3)


def test_frozen_tower_gets_no_gradient():
    backbone = ClipVisionBackbone("random", vision_config=TINY_VISION, trainable_blocks=1)
    backbone(uint8_images(2, 32, 32)).sum().backward()
    layers = backbone.model.vision_model.encoder.layers
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is not None for p in layers[1].parameters())
    assert backbone.model.visual_projection.weight.grad is not None


def test_offline_hub_id_fails_fast_and_names_the_fix():
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as error:
        ClipVisionBackbone("patrickjohncyh/fashion-clip")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "patrickjohncyh/fashion-clip" in message and "pretrained=" in message
    assert "save_pretrained" in message


def test_missing_local_directory_fails_fast(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no such directory"):
        ClipVisionBackbone(str(tmp_path / "fashion-clip"))


def test_directory_without_weights_file_fails_clearly(full_clip_dir):
    directory, _ = full_clip_dir
    for weights in directory.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(WeightsNotFoundError, match="pretrained="):
        ClipVisionBackbone(str(directory))


def test_deleted_directory_is_not_mistaken_for_a_hub_id(full_clip_dir):
    directory, _ = full_clip_dir
    shutil.rmtree(directory)
    with pytest.raises(WeightsNotFoundError, match="pretrained="):
        ClipVisionBackbone(str(directory))


def test_other_input_sizes_interpolate_positions():
    backbone = ClipVisionBackbone("random", vision_config={**TINY_VISION, "projection_dim": 8}).eval()
    with torch.no_grad():
        portrait = backbone(uint8_images(2, 48, 32))
        assert portrait.shape == (2, 8) and torch.isfinite(portrait).all()
        images = uint8_images(2, 32, 32)
        torch.testing.assert_close(backbone(images), backbone(images.float() / 255))  # uint8 == 0..1 float


def test_fresh_process_is_offline_without_any_environment():
    """No HF_* variables set, huggingface_hub imported first: the package still switches it offline."""
    code = (
        "import time, huggingface_hub\n"
        "from fashion_retrieval.models.clip import ClipVisionBackbone\n"
        "from fashion_retrieval.models.weights import WeightsNotFoundError\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    ClipVisionBackbone('openai/clip-vit-base-patch32')\n"
        "except WeightsNotFoundError:\n"
        "    print(f'{time.monotonic() - start:.3f}')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip()) < 5


def test_random_tower_only_when_asked_for_by_name():
    with pytest.raises(RandomInitialisationError, match=r"model\.encoder\.backbone\.pretrained=random"):
        ClipVisionBackbone(vision_config=TINY_VISION)
    backbone = ClipVisionBackbone("random", vision_config={**TINY_VISION, "projection_dim": 8})
    assert backbone.num_features == 8
