"""``retrieval-eval`` on a tiny clothing-dataset-small tree: own-row exclusion, metric keys, checkpoints,
a train-adapter head (``retrieval_eval.head_path``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from real_photo_tree import CLASS_COLOURS, write_real_tree

from fashion_retrieval.cli import config_dir
from fashion_retrieval.data.readers import load_clothing_small
from fashion_retrieval.evaluation.retrieval_sets import drop_own, score_set, search_set
from fashion_retrieval.index.factory import FlatSpec
from fashion_retrieval.models.adapter_module import FeatureAdapterModule
from fashion_retrieval.pipelines import retrieval_eval as retrieval_eval_stage
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.retrieval_eval import retrieval_eval


def write_tree(root: Path) -> Path:
    """2 test and 3 train photos per class of :data:`CLASS_COLOURS`."""
    return write_real_tree(root, {"test": 2, "train": 3})


def reference_drop_own(found: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    return np.array([[j for j in row if not (o >= 0 and j == o)][:k] for row, o in zip(found, own)])


@pytest.mark.parametrize("seed", range(3))
def test_drop_own_matches_a_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    found = np.stack([rng.permutation(12)[:6] for _ in range(20)])
    own = rng.integers(-1, 12, size=20)
    np.testing.assert_array_equal(drop_own(found, own, 5), reference_drop_own(found, own, 5))
    with pytest.raises(ValueError, match="at least k=7"):
        drop_own(found, own, 7)


def test_search_never_returns_the_query_itself(tmp_path: Path) -> None:
    data = load_clothing_small(write_tree(tmp_path), split="train")
    vectors = np.eye(len(data.gallery), dtype=np.float32)[:, :8] + 0.1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranked = search_set(vectors[data.query_in_gallery], vectors, 100, data, FlatSpec(device="cpu"))
    assert ranked.shape == (len(data.queries), len(data.gallery) - 1)
    assert not (ranked == data.query_in_gallery[:, None]).any()


def compose_cfg(root: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(
            config_name="config",
            # Real-photo scores have their own tests (tests/pipelines/test_real_photo_stages.py).
            overrides=[
                "reader=clothing_small",
                f"reader.root={root}",
                "data.num_workers=0",
                "real_photos.enabled=false",
                *overrides,
            ],
        )


def test_stage_scores_the_pretrained_backbone_and_a_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_tree(tmp_path / "photos")
    cfg = compose_cfg(root, "retrieval_eval.ks=[1,3]", "reader.gallery_splits=[train]")
    with caplog.at_level(logging.INFO, logger="fashion_retrieval.pipelines.retrieval_eval"):
        metrics = retrieval_eval(cfg, RunContext(output_dir=tmp_path))
    assert "at 224 x 224" in caplog.text  # Lite0's native size: retrieval_eval.image_size defaults to null
    prefix = "retrieval_eval/clothing_small"
    assert metrics[f"{prefix}/num_queries"] == 6 and metrics[f"{prefix}/num_gallery"] == 9
    for key in ("precision@1", "precision@3", "hit_rate@3", "recall@3", "map@R", "class/pants/map@R"):
        assert 0.0 <= metrics[f"{prefix}/{key}"] <= 1.0, key
    assert set(metrics) >= {f"{prefix}/class/{c}/precision@3" for c in CLASS_COLOURS}
    table = (tmp_path / "retrieval_eval_clothing_small.md").read_text()
    assert "pretrained backbone" in table and "| **all** |" in table

    # A checkpoint is scored with its trained embedding (here: the untrained head, 256-d).
    encoder = instantiate(cfg.model.encoder)
    state = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
    checkpoint = tmp_path / "model.ckpt"
    torch.save(
        {"encoder_config": OmegaConf.to_container(cfg.model.encoder, resolve=True), "state_dict": state},
        checkpoint,
    )
    cfg = compose_cfg(
        root, f"ckpt_path={checkpoint}", "reader.gallery_splits=null", "retrieval_eval.name=own"
    )
    metrics = retrieval_eval(cfg, RunContext(output_dir=tmp_path))
    # Within one split: every image is a query against the other 5 of the test split.
    assert metrics["retrieval_eval/own/num_queries"] == 6 and metrics["retrieval_eval/own/num_gallery"] == 6
    assert "model.ckpt" in (tmp_path / "retrieval_eval_own.md").read_text()


def test_stage_needs_a_dataset(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config")
    with pytest.raises(ValueError, match="retrieval-eval needs a dataset: reader=clothing_small"):
        retrieval_eval(cfg, RunContext(output_dir=tmp_path))


# A tiny frozen backbone (timm's test network, random weights) at 32 x 32: the heads are what is tested.
TINY_BACKBONE = [
    "model.encoder.backbone.model_name=test_efficientnet",
    "model.encoder.backbone.weights=random",
    "model.encoder.backbone.frozen_prefixes=[]",
    "retrieval_eval.image_size=[32,32]",
    "reader.gallery_splits=[train]",
]


def save_head(cfg: DictConfig, path: Path, feature_dim: int, scale: float) -> FeatureAdapterModule:
    """A residual adapter for ``feature_dim`` features, saved as ``train-adapter`` saves it; ``scale`` 0 keeps
    its zero-initialised last layer (the identity), otherwise random weights of that size."""
    torch.manual_seed(0)
    module: FeatureAdapterModule = instantiate(cfg.adapter.module, feature_dim=feature_dim).eval()
    with torch.no_grad():
        for parameter in module.query_head.parameters():
            parameter.copy_(torch.randn_like(parameter) * scale if scale else parameter)
    torch.save(module.state_dict(), path)
    return module


def test_head_path_puts_queries_through_the_query_head_and_leaves_the_gallery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "photos")
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def spy(queries: np.ndarray, gallery: np.ndarray, *args, **kwargs):
        seen.append((queries, gallery))
        return score_set(queries, gallery, *args, **kwargs)

    def run(cfg: DictConfig) -> dict[str, float]:
        torch.manual_seed(0)  # the same random backbone in every run
        return retrieval_eval(cfg, RunContext(output_dir=tmp_path))

    monkeypatch.setattr(retrieval_eval_stage, "score_set", spy)
    cfg = compose_cfg(root, *TINY_BACKBONE, "adapter=residual_adapter")
    plain = run(cfg)
    raw_queries, raw_gallery = seen[-1]
    dim = instantiate(cfg.model.encoder).backbone_dim
    assert raw_queries.shape[1] == dim

    save_head(cfg, tmp_path / "identity.pt", dim, scale=0.0)
    cfg.retrieval_eval.head_path = str(tmp_path / "identity.pt")
    assert run(cfg) == pytest.approx(plain)
    np.testing.assert_allclose(seen[-1][0], raw_queries, atol=1e-6)

    head = save_head(cfg, tmp_path / "head.pt", dim, scale=0.5)
    cfg.retrieval_eval.head_path = str(tmp_path / "head.pt")
    adapted = run(cfg)
    queries, gallery = seen[-1]
    expected = head.embed_queries(torch.from_numpy(raw_queries)).detach().numpy()
    assert np.abs(expected - raw_queries).max() > 0.1  # the head is far from the identity
    np.testing.assert_allclose(queries, expected, atol=1e-5)
    np.testing.assert_allclose(gallery, raw_gallery, atol=1e-6)  # no catalogue head: gallery untouched
    assert adapted.keys() == plain.keys()
    assert "head.pt" in (tmp_path / "retrieval_eval_clothing_small.md").read_text()


def test_head_path_refuses_a_head_of_another_dimension_naming_the_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "photos")
    cfg = compose_cfg(root, *TINY_BACKBONE, "adapter=residual_adapter")
    wrong = tmp_path / "lite2_head.pt"
    save_head(cfg, wrong, feature_dim=8, scale=0.5)
    cfg.retrieval_eval.head_path = str(wrong)
    with pytest.raises(ValueError, match=r"lite2_head\.pt does not fit adapter= with feature dimension"):
        retrieval_eval(cfg, RunContext(output_dir=tmp_path))
    cfg = compose_cfg(root, *TINY_BACKBONE, f"retrieval_eval.head_path={wrong}")  # adapter= forgotten
    with pytest.raises(ValueError, match=r"needs the head's architecture: adapter="):
        retrieval_eval(cfg, RunContext(output_dir=tmp_path))
