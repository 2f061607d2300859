"""Layer-wise learning-rate decay: depths from parameter names, scales, optimiser groups."""

from __future__ import annotations

import pytest
import timm
import torch

from fashion_retrieval.models.layer_decay import (
    layer_decay_scales,
    layerwise_parameter_groups,
    parameter_depths,
)


def test_depths_of_efficientnet_convnext_and_vit_names():
    efficientnet = ["conv_stem.weight", "bn1.weight", "blocks.0.0.conv.weight", "blocks.6.0.bn.bias",
                    "conv_head.weight", "bn2.bias"]  # fmt: skip
    assert parameter_depths(efficientnet) == [0, 0, 1, 7, 8, 8]
    convnext = ["model.stem.0.weight", "model.stages.0.blocks.1.gamma", "model.stages.3.downsample.1.weight",
                "model.head.norm.weight"]  # fmt: skip
    assert parameter_depths(convnext) == [0, 1, 4, 5]
    vit = ["cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
           "blocks.11.mlp.fc2.bias", "norm.weight"]  # fmt: skip
    assert parameter_depths(vit) == [0, 0, 0, 1, 12, 13]
    with pytest.raises(ValueError, match=r"blocks\.N"):
        parameter_depths(["fc.weight", "fc.bias"])


def test_scales_decay_geometrically_from_the_top():
    assert layer_decay_scales([0, 1, 2, 2], 0.5) == [0.25, 0.5, 1.0, 1.0]
    assert layer_decay_scales([0, 3], 1.0) == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        layer_decay_scales([0, 1], 0.0)


def test_groups_hold_each_trainable_parameter_once_at_its_depth_rate():
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=0)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not name.startswith(("conv_stem", "bn1", "blocks.0")))
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = layerwise_parameter_groups(model, trainable, lr=1e-3, decay=0.5)
    grouped = [p for group in groups for p in group["params"]]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == {id(p) for p in trainable}
    depths = parameter_depths([name for name, _ in model.named_parameters()])
    top = max(depths)
    assert groups[-1]["name"] == f"backbone_{top}" and groups[-1]["lr"] == pytest.approx(1e-3)
    # block 1 is the lowest trainable block (depth 2): frozen depths still count towards the decay
    assert groups[0]["name"] == "backbone_2" and groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** (top - 2))
    assert [g["lr"] for g in groups] == sorted(g["lr"] for g in groups)
    with pytest.raises(ValueError, match="not in the backbone"):
        layerwise_parameter_groups(
            model, [*trainable, torch.nn.Parameter(torch.zeros(1))], lr=1e-3, decay=0.5
        )
