"""Checkpoint round trips: rebuild timm, CLIP and ensemble encoders with the pretrained files gone."""

from __future__ import annotations

import shutil

import pytest
import timm
import torch
from hydra.utils import instantiate
from tiny_models import uint8_images

from fashion_retrieval.models.checkpoint import checkpoint_encoder_config, load_encoder, without_pretrained

TIMM_TINY = "test_convnext"
ENCODER = "fashion_retrieval.models.encoder.ImageEncoder"


def timm_encoder_config(weights_file) -> dict:
    backbone = {
        "_target_": "fashion_retrieval.models.backbones.TimmBackbone",
        "model_name": TIMM_TINY,
        "weights": str(weights_file),
    }
    return {"_target_": ENCODER, "backbone": backbone, "embedding_dim": 12}


def clip_encoder_config(pretrained_dir) -> dict:
    backbone = {
        "_target_": "fashion_retrieval.models.clip.ClipVisionBackbone",
        "pretrained": str(pretrained_dir),
        "vision_config": None,
        "trainable_blocks": 1,
        "mean": None,
        "std": None,
    }
    return {"_target_": ENCODER, "backbone": backbone, "embedding_dim": None}


def ensemble_config(weights_file, pretrained_dir) -> dict:
    return {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": {
            "clip": clip_encoder_config(pretrained_dir),
            "convnext": timm_encoder_config(weights_file),
        },
        "weights": [0.25, 0.75],
        "shared_head_dim": 8,
    }


@pytest.fixture
def timm_weights(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "convnext.pth"
    torch.save(timm.create_model(TIMM_TINY, num_classes=0).state_dict(), path)
    return path


def fake_training(config: dict, tmp_path) -> tuple[torch.nn.Module, object]:
    """Build as ``train`` does, change every weight (as training would), save a Lightning-like checkpoint."""
    encoder = instantiate(config)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    checkpoint = {
        "state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        | {"loss.scale": torch.ones(())},
        "encoder_config": checkpoint_encoder_config(config, encoder),
    }
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    return encoder.eval(), path


def assert_same_outputs(trained, path) -> None:
    reloaded = load_encoder(path)
    assert not reloaded.training
    images = uint8_images(2, 32, 32).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images), trained(images), rtol=0, atol=0)


def test_timm_round_trip_without_the_weights_file(tmp_path, timm_weights):
    trained, path = fake_training(timm_encoder_config(timm_weights), tmp_path)
    timm_weights.unlink()
    assert_same_outputs(trained, path)


def test_clip_round_trip_without_the_pretrained_directory(tmp_path, full_clip_dir):
    directory, _ = full_clip_dir
    (directory / "preprocessor_config.json").write_text(
        '{"image_mean": [0.4, 0.4, 0.4], "image_std": [0.3, 0.3, 0.3]}'
    )
    trained, path = fake_training(clip_encoder_config(directory), tmp_path)
    stored = torch.load(path, weights_only=False)["encoder_config"]["backbone"]
    assert stored["pretrained"] == str(directory)  # provenance kept
    assert stored["vision_config"]["projection_dim"] == 16 and stored["mean"] == [0.4, 0.4, 0.4]
    shutil.rmtree(directory)
    assert_same_outputs(trained, path)
    assert load_encoder(path).backbone.mean == (0.4, 0.4, 0.4)  # normalisation travels with the checkpoint


def test_ensemble_round_trip_without_any_pretrained_file(tmp_path, timm_weights, full_clip_dir):
    directory, _ = full_clip_dir
    trained, path = fake_training(ensemble_config(timm_weights, directory), tmp_path)
    timm_weights.unlink()
    shutil.rmtree(directory)
    assert_same_outputs(trained, path)


def test_without_pretrained_nulls_backbone_weights_only():
    clip = "fashion_retrieval.models.clip.ClipVisionBackbone"
    old_clip = {"_target_": clip, "pretrained": "/models/fashion-clip", "vision_config": None}
    new_clip = {**old_clip, "vision_config": {"hidden_size": 32}}
    timm_backbone = {"_target_": "fashion_retrieval.models.backbones.TimmBackbone", "weights": "hub"}
    config = {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": [{"backbone": old_clip}, {"backbone": new_clip}, {"backbone": timm_backbone}],
        "weights": [0.2, 0.3, 0.5],  # ensemble weights, not pretrained weights
    }
    cleaned = without_pretrained(config)
    assert cleaned["members"][0]["backbone"]["pretrained"] == "/models/fashion-clip"  # the only description
    assert cleaned["members"][1]["backbone"]["pretrained"] is None
    assert cleaned["members"][2]["backbone"]["weights"] is None
    assert cleaned["weights"] == [0.2, 0.3, 0.5]
    assert timm_backbone["weights"] == "hub"  # the input is not modified
