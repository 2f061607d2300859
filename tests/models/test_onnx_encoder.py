"""ONNX export of tiny encoders: same embeddings as PyTorch at other batch and image sizes, the sidecar
checked against its graph and checkpoint, the parity maths against obvious references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tiny_models import uint8_images

from fashion_retrieval.models.checkpoint import checkpoint_encoder_config
from fashion_retrieval.models.inference import TEST_TIME_VIEWS, embed_views
from fashion_retrieval.models.onnx_encoder import (
    OnnxEncoder,
    OnnxExportError,
    embedding_cosines,
    export_encoder_onnx,
    load_search_encoder,
    same_ranking_fraction,
    sidecar_metadata,
    sidecar_path,
)
from fashion_retrieval.models.onnx_session import OnnxSession, load_onnx_session
from fashion_retrieval.models.views import VIEW_NAMES

TIMM = {"_target_": "fashion_retrieval.models.backbones.TimmBackbone", "weights": "random"}


def member(model_name: str, mean: float) -> dict:
    backbone = {**TIMM, "model_name": model_name, "mean": [mean] * 3, "std": [0.25] * 3}
    encoder = "fashion_retrieval.models.encoder.ImageEncoder"
    return {"_target_": encoder, "backbone": backbone, "embedding_dim": 8}


ENCODERS = {
    "timm": member("test_efficientnet", 0.5),
    "ensemble": {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": {"a": member("test_efficientnet", 0.4), "b": member("test_convnext", 0.6)},
        "weights": [0.25, 0.75],
    },
}


def saved_encoder(config: dict, tmp_path, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """An encoder with random weights and a checkpoint of it, as ``train`` writes one."""
    torch.manual_seed(seed)
    encoder = instantiate(config).eval()
    checkpoint = {
        "state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        "encoder_config": checkpoint_encoder_config(config, encoder),
    }
    path = tmp_path / f"model{seed}.ckpt"
    torch.save(checkpoint, path)
    return encoder, path


def exported(config: dict, tmp_path, seed: int = 0) -> tuple[torch.nn.Module, object, object]:
    encoder, checkpoint = saved_encoder(config, tmp_path, seed)
    path = tmp_path / f"encoder{seed}.onnx"
    export_encoder_onnx(encoder, path, (64, 48))
    metadata = sidecar_metadata(encoder, path, checkpoint, {"query": (72, 56), "gallery": (64, 48)})
    sidecar_path(path).write_text(json.dumps(metadata))
    return encoder, checkpoint, path


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_the_onnx_encoder_gives_pytorch_embeddings_at_any_batch_and_size(kind, tmp_path):
    encoder, _, path = exported(ENCODERS[kind], tmp_path)
    onnx_encoder = OnnxEncoder(path)
    assert onnx_encoder.embedding_dim == encoder.embedding_dim
    for batch, height, width in [(1, 64, 48), (3, 72, 56)]:
        images = uint8_images(batch, height, width, seed=batch)
        with torch.no_grad():
            expected = encoder(images)
        actual = onnx_encoder(images)
        assert actual.shape == (batch, encoder.embedding_dim) and actual.dtype == torch.float32
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_the_numpy_session_gives_the_torch_views_embeddings(tmp_path):
    """The ONNX service's path (numpy in and out, no torch) embeds as the torch face of the same export,
    test-time flip included; a float view is refused by name."""
    _, _, path = exported(ENCODERS["timm"], tmp_path)
    session, module = OnnxSession(path), OnnxEncoder(path)
    images = uint8_images(3, 64, 48, seed=7)
    for views in ([], ["flip"]):
        expected = embed_views(module, images, [TEST_TIME_VIEWS[v] for v in views]).numpy()
        actual = session.embed_views(images.numpy(), views)
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match=r"float view 'centre_crop' .* needs encoder\.backend=torch"):
        session.embed_views(images.numpy(), ["centre_crop"])
    assert set(VIEW_NAMES) == set(TEST_TIME_VIEWS)


def test_the_sidecar_records_the_normalisation_of_every_member(tmp_path):
    _, _, path = exported(ENCODERS["ensemble"], tmp_path)
    metadata = json.loads(sidecar_path(path).read_text())
    assert [m["mean"] for m in metadata["normalisation"]] == [[0.4] * 3, [0.6] * 3]
    assert metadata["embedding_dim"] == 16 and metadata["image_sizes"]["query"] == [72, 56]
    assert metadata["input"]["dtype"] == "uint8"


def test_a_sidecar_of_another_export_is_refused(tmp_path):
    _, _, path = exported(ENCODERS["timm"], tmp_path, seed=0)
    _, _, other = exported(ENCODERS["timm"], tmp_path, seed=1)
    sidecar_path(path).write_text(sidecar_path(other).read_text())
    with pytest.raises(OnnxExportError, match=r"encoder0\.json describes another export"):
        OnnxEncoder(path)
    sidecar_path(path).unlink()
    with pytest.raises(OnnxExportError, match=r"encoder0\.json: missing"):
        OnnxEncoder(path)


def test_float_images_are_refused_with_the_reason(tmp_path):
    _, _, path = exported(ENCODERS["timm"], tmp_path)
    with pytest.raises(TypeError, match=r"takes uint8 images, got torch\.float32"):
        OnnxEncoder(path)(uint8_images(1, 64, 48).float() / 255)


def test_the_backend_switch_checks_the_export_came_from_the_checkpoint(tmp_path):
    _, checkpoint, path = exported(ENCODERS["timm"], tmp_path, seed=0)
    _, other_checkpoint = saved_encoder(ENCODERS["timm"], tmp_path, seed=1)
    cfg = OmegaConf.create({"encoder": {"backend": "onnx", "onnx_path": str(path)}})
    assert isinstance(load_search_encoder(cfg, checkpoint), OnnxEncoder)
    assert isinstance(load_onnx_session(cfg, checkpoint), OnnxSession)
    with pytest.raises(OnnxExportError, match=r"was exported from .*model0\.ckpt, not from .*model1\.ckpt"):
        load_search_encoder(cfg, other_checkpoint)
    with pytest.raises(OnnxExportError, match=r"was exported from .*model0\.ckpt, not from .*model1\.ckpt"):
        load_onnx_session(cfg, other_checkpoint)
    cfg.encoder.backend = "torch"
    assert not isinstance(load_search_encoder(cfg, checkpoint), OnnxEncoder)
    cfg.encoder.backend = "tensorrt"
    with pytest.raises(ValueError, match=r"encoder\.backend='tensorrt': choose from"):
        load_search_encoder(cfg, checkpoint)


def test_exports_of_different_weights_have_different_module_digests(tmp_path):
    from fashion_retrieval.features.fingerprint import module_digest

    _, _, first = exported(ENCODERS["timm"], tmp_path, seed=0)
    _, _, second = exported(ENCODERS["timm"], tmp_path, seed=1)
    assert module_digest(OnnxEncoder(first)) != module_digest(OnnxEncoder(second))


def test_embedding_cosines_match_a_reference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    expected = [np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(embedding_cosines(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(embedding_cosines(a, 3 * a), np.ones(5))
    with pytest.raises(ValueError, match="cannot be compared"):
        embedding_cosines(a, b[:4])


def test_same_ranking_fraction_counts_sets_or_orders():
    reference = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 5, 9]])
    candidate = np.array([[1, 2, 3], [5, 4, 6], [7, 8, 0], [1, 5, 9]])
    assert same_ranking_fraction(reference, candidate) == 0.75
    assert same_ranking_fraction(reference, candidate, ordered=True) == 0.5
