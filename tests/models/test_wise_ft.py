"""WiSE-FT: the interpolation maths and the wise-ft stage's checkpoint, loaded like any trained one."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from test_checkpoint import fake_training, timm_encoder_config
from tiny_models import uint8_images

from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.wise_ft import backbone_keys, interpolate_weights
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.wise_ft import wise_ft


def test_interpolation_blends_backbone_floats_and_keeps_the_rest():
    pretrained = {
        "backbone.w": torch.tensor([0.0, 4.0]),
        "backbone.n": torch.tensor(3),
        "head.w": torch.zeros(1),
    }
    tuned = {"backbone.w": torch.tensor([2.0, 0.0]), "backbone.n": torch.tensor(9), "head.w": torch.ones(1)}
    keys = backbone_keys(tuned)
    assert keys == {"backbone.w", "backbone.n"}
    mixed = interpolate_weights(pretrained, tuned, 0.25, keys)
    torch.testing.assert_close(mixed["backbone.w"], torch.tensor([0.5, 3.0]))  # 0.75 pre + 0.25 tuned
    assert mixed["backbone.n"].item() == 9  # integer counters stay fine-tuned
    torch.testing.assert_close(mixed["head.w"], torch.ones(1))  # no pretrained head
    torch.testing.assert_close(
        interpolate_weights(pretrained, tuned, 0.0, keys)["backbone.w"], pretrained["backbone.w"]
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_weights(pretrained, tuned, 1.5, keys)
    with pytest.raises(KeyError, match="lack 1 key"):
        interpolate_weights({}, tuned, 0.5, {"backbone.w"})


def test_backbone_keys_of_ensemble_members():
    state = {
        "members.0.backbone.model.w": torch.zeros(1),
        "members.0.head.w": torch.zeros(1),
        "backbone": torch.zeros(1),
    }
    assert backbone_keys(state) == {"members.0.backbone.model.w"}


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_stage_writes_a_checkpoint_every_path_loads(tmp_path, timm_weights, alpha):
    config = timm_encoder_config(timm_weights)
    tuned, source = fake_training(config, tmp_path)
    output = tmp_path / "blend" / "wise_ft.ckpt"
    cfg = OmegaConf.create(
        {"ckpt_path": str(source), "wise_ft": {"alpha": alpha, "output_path": str(output)}}
    )
    context = RunContext(output_dir=tmp_path)
    assert wise_ft(cfg, context) == {"wise_ft/alpha": alpha}
    assert context.trained_checkpoint == output  # later stages of the run use the blend
    blend = load_encoder(output)
    pretrained = torch.load(timm_weights, weights_only=True)
    for name, value in blend.backbone.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(
                value, torch.lerp(pretrained[name], tuned.backbone.model.state_dict()[name], alpha)
            )
    for name, value in blend.head.state_dict().items():
        torch.testing.assert_close(value, tuned.head.state_dict()[name])
    if alpha == 1.0:
        images = uint8_images(2, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(blend(images), tuned(images))
    assert torch.load(output, weights_only=True)["wise_ft"] == {"alpha": alpha, "source": str(source)}


def test_stage_refuses_a_randomly_initialised_model(tmp_path, timm_weights):
    config = timm_encoder_config(timm_weights)
    config["backbone"]["weights"] = "random"
    _, source = fake_training(config, tmp_path)
    cfg = OmegaConf.create(
        {"ckpt_path": str(source), "wise_ft": {"alpha": 0.5, "output_path": str(tmp_path / "o.ckpt")}}
    )
    with pytest.raises(ValueError, match="random initialisation"):
        wise_ft(cfg, RunContext(output_dir=tmp_path))
