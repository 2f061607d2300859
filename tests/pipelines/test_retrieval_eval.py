"""``retrieval-eval`` on a tiny clothing-dataset-small tree: own-row exclusion, metric keys, checkpoints."""

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
from fashion_retrieval.evaluation.retrieval_sets import drop_own, search_set
from fashion_retrieval.index.factory import FlatSpec
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
