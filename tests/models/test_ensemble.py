"""EnsembleEncoder: weighting maths against member cosines, shared head, parameter groups, Hydra build."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from tiny_models import TINY_TOWER, uint8_images

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.ensemble import EnsembleEncoder, normalised_weights

TIMM_TINY = "test_convnext"


def members() -> dict[str, ImageEncoder]:
    torch.manual_seed(0)
    clip = ImageEncoder(
        ClipVisionBackbone("random", vision_config=TINY_TOWER, trainable_blocks=1), embedding_dim=None
    )
    convnext = ImageEncoder(TimmBackbone(TIMM_TINY, weights="random"), embedding_dim=12)
    return {"clip": clip.eval(), "convnext": convnext.eval()}


def images_float(batch: int, seed: int) -> torch.Tensor:
    # Float 0..1 input: every backbone accepts it, with or without its own uint8 handling.
    return uint8_images(batch, 32, 32, seed).float() / 255


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of unit rows: ``(B,)``."""
    return (a * b).sum(dim=1)


@pytest.mark.parametrize("weights", [[0.3, 0.7], [1.0, 3.0], None])
def test_ensemble_cosine_is_the_weighted_sum_of_member_cosines(weights):
    parts = members()
    ensemble = EnsembleEncoder(parts, weights=weights).eval()
    a, b = images_float(4, seed=1), images_float(4, seed=2)
    with torch.no_grad():
        ea, eb = ensemble(a), ensemble(b)
        member_cosines = [cosine(m(a), m(b)) for m in parts.values()]
    w = normalised_weights(weights, 2)
    torch.testing.assert_close(cosine(ea, eb), w[0] * member_cosines[0] + w[1] * member_cosines[1])
    assert ensemble.embedding_dim == ea.shape[1] == 16 + 12
    torch.testing.assert_close(ea.norm(dim=1), torch.ones(4))


def test_list_members_and_bad_weights():
    ensemble = EnsembleEncoder(list(members().values()), weights=[1, 1])
    assert ensemble.weights == [0.5, 0.5]
    with pytest.raises(ValueError, match="weights"):
        EnsembleEncoder(members(), weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        EnsembleEncoder(members(), weights=[1.0, -1.0])


def test_shared_head_trains_jointly_with_the_members():
    parts = members()
    ensemble = EnsembleEncoder(parts, weights=[0.5, 0.5], shared_head_dim=10).train()
    embeddings = ensemble(images_float(3, seed=3))
    assert embeddings.shape == (3, 10) and ensemble.embedding_dim == 10
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    embeddings[:, 0].sum().backward()
    assert all(p.grad is not None for p in ensemble.shared_head.parameters())
    assert parts["convnext"].backbone.model.stem[0].weight.grad is not None
    assert parts["clip"].backbone.model.visual_projection.weight.grad is not None
    assert not any(p.requires_grad for p in parts["convnext"].head.parameters())  # bypassed, frozen


def ids(parameters) -> set[int]:
    return {id(p) for p in parameters}


@pytest.mark.parametrize("shared_head_dim", [None, 10])
def test_parameter_groups(shared_head_dim):
    parts = members()
    ensemble = EnsembleEncoder(parts, shared_head_dim=shared_head_dim)
    groups = ensemble.parameter_groups()
    backbone, head = ids(groups["backbone"]), ids(groups["head"])
    assert not backbone & head
    projection = parts["clip"].backbone.model.visual_projection.weight
    assert id(projection) in head
    assert ids(parts["convnext"].backbone.parameters()) <= backbone
    convnext_head = ids(parts["convnext"].head.parameters())
    if shared_head_dim is None:
        assert convnext_head <= head
    else:
        assert not convnext_head & head and ids(ensemble.shared_head.parameters()) <= head


def test_backbone_features_for_the_pretrained_baseline():
    ensemble = EnsembleEncoder(members()).eval()
    with torch.no_grad():
        features = ensemble.backbone_features(images_float(2, seed=4))
    assert features.shape == (2, 16 + 64)  # CLIP projection + test_convnext features
    assert ensemble.backbone_dim == 16 + 64  # the width a head on these features is built for
    torch.testing.assert_close(features.norm(dim=1), torch.ones(2))


def member_config(kind: str) -> dict:
    if kind == "clip":
        backbone = {
            "_target_": "fashion_retrieval.models.clip.ClipVisionBackbone",
            "pretrained": "random",
            "vision_config": TINY_TOWER,
            "trainable_blocks": 1,
        }
        return {
            "_target_": "fashion_retrieval.models.encoder.ImageEncoder",
            "backbone": backbone,
            "embedding_dim": None,
        }
    backbone = {
        "_target_": "fashion_retrieval.models.backbones.TimmBackbone",
        "model_name": TIMM_TINY,
        "weights": "random",
    }
    return {
        "_target_": "fashion_retrieval.models.encoder.ImageEncoder",
        "backbone": backbone,
        "embedding_dim": 12,
    }


@pytest.mark.parametrize("as_list", [False, True])
def test_hydra_builds_an_ensemble(as_list):
    members_cfg = {"clip": member_config("clip"), "convnext": member_config("convnext")}
    config = {
        "_target_": "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "members": list(members_cfg.values()) if as_list else members_cfg,
        "weights": [0.5, 0.5],
        "shared_head_dim": None,
    }
    ensemble = instantiate(config)
    assert ensemble.embedding_dim == 28 and len(ensemble.members) == 2
    assert ensemble(uint8_images(2, 32, 32).float() / 255).shape == (2, 28)
