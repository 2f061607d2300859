"""The ``index`` stage through the feature cache: the same files as the in-memory path, the cache reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from test_configs import compose_config, job_config

from fashion_retrieval.features.shards import MANIFEST_FILE
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.index.faiss_index import EmbeddingIndex, IndexMismatchError
from fashion_retrieval.io import contents_digest, file_digest
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.generate import generate
from fashion_retrieval.pipelines.index import index
from fashion_retrieval.search.loading import datamodule_for, load_or_build_index

ENCODER = {
    "_target_": "fashion_retrieval.models.encoder.ImageEncoder",
    "backbone": {
        "_target_": "fashion_retrieval.models.backbones.TimmBackbone",
        "model_name": "test_efficientnet",
        "weights": "random",
    },
    "embedding_dim": 8,
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Tiny synthetic data and a checkpoint as ``train`` writes it: ``(root, data_dir, checkpoint)``."""
    root = tmp_path_factory.mktemp("index_stage")
    data_dir = root / "data"
    overrides = ["synthetic.num_products=40", "synthetic.num_bundles=20", "generate.num_workers=1"]
    cfg = job_config(["experiment=tiny", f"paths.data_dir={data_dir}", *overrides])
    generate(cfg, RunContext(output_dir=root))
    torch.manual_seed(0)
    encoder = instantiate(ENCODER)
    checkpoint = root / "best.ckpt"
    state = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
    torch.save({"encoder_config": ENCODER, "state_dict": state}, checkpoint)
    return root, data_dir, checkpoint


def stage_config(workspace: tuple[Path, Path, Path], name: str, *overrides: str) -> DictConfig:
    root, data_dir, checkpoint = workspace
    cfg = compose_config(
        [
            "experiment=tiny",
            f"paths.data_dir={data_dir}",
            f"ckpt_path={checkpoint}",
            f"index.dir={root / name}",
            f"features.cache_dir={root / 'cache'}",
            "features.shard_size=50",
            "data.num_workers=0",
            "data.catalogue_size=[48,32]",
            *overrides,
        ],
        output_dir=str(root / "outputs"),
    )
    return cfg


def test_index_stage_builds_from_the_cache_and_reuses_it(workspace) -> None:
    root, _, checkpoint = workspace
    cfg = stage_config(workspace, "sharded")
    metrics = index(cfg, RunContext(output_dir=root))
    entries = [p for p in (root / "cache").iterdir() if (p / MANIFEST_FILE).is_file()]
    assert len(entries) == 1
    stamp = (entries[0] / MANIFEST_FILE).stat().st_mtime_ns
    built = EmbeddingIndex.load(root / "sharded", expected_checkpoint_sha256=file_digest(checkpoint))
    assert metrics == {"index/num_items": float(len(built))}

    index(stage_config(workspace, "again"), RunContext(output_dir=root))
    assert (entries[0] / MANIFEST_FILE).stat().st_mtime_ns == stamp, "the second run reuses the cache"
    index(stage_config(workspace, "in_memory", "features.enabled=false"), RunContext(output_dir=root))

    sharded, ids = load_embeddings(root / "sharded" / EMBEDDINGS_FILE)
    in_memory, memory_ids = load_embeddings(root / "in_memory" / EMBEDDINGS_FILE)
    assert ids == memory_ids == built.ids
    np.testing.assert_allclose(sharded, in_memory, atol=1e-5)
    queries = in_memory[:10]
    assert built.search_ids(queries, 5) == EmbeddingIndex.load(root / "in_memory").search_ids(queries, 5)
    assert built.search_ids(queries, 5) == EmbeddingIndex.load(root / "again").search_ids(queries, 5)


def test_a_changed_image_invalidates_its_features_and_the_index_built_from_them(workspace, tmp_path) -> None:
    """Ids are not content: a packshot replaced under the same id gets new features (a new cache entry), the
    index stage's index changes, and ``infer``/``validate`` do not reuse an index of the old images."""
    _, data_dir, checkpoint = workspace
    copied = tmp_path / "data"
    shutil.copytree(data_dir, copied)
    cfg = stage_config(workspace, "unused", f"paths.data_dir={copied}")
    with open_dict(cfg):
        cfg.index.dir = str(tmp_path / "index")
        cfg.features.cache_dir = str(tmp_path / "cache")
    index(cfg, RunContext(output_dir=tmp_path))
    before, ids = load_embeddings(tmp_path / "index" / EMBEDDINGS_FILE)

    changed = sorted((copied / "images" / "products").iterdir())[3]
    original = changed.read_bytes()
    cv2.imwrite(str(changed), 255 - cv2.imread(str(changed)))  # same id and path, other pixels
    index(cfg, RunContext(output_dir=tmp_path))
    after, _ = load_embeddings(tmp_path / "index" / EMBEDDINGS_FILE)
    entries = [p for p in (tmp_path / "cache").iterdir() if (p / MANIFEST_FILE).is_file()]
    assert len(entries) == 2, "the changed image's features were recomputed, not read from the old entry"
    row = ids.index(changed.stem)
    assert not np.allclose(after[row], before[row], atol=1e-4)
    np.testing.assert_allclose(np.delete(after, row, 0), np.delete(before, row, 0), atol=1e-5)

    # An index of the old images is rebuilt by infer/validate, not reused.
    shutil.copytree(tmp_path / "index", tmp_path / "stale")
    changed.write_bytes(original)
    encoder = load_encoder(checkpoint)
    datamodule = datamodule_for(cfg)
    with pytest.raises(IndexMismatchError, match="other catalogue images"):
        EmbeddingIndex.load(
            tmp_path / "stale", expected_catalogue_sha256=contents_digest(datamodule.catalogue_paths)
        )
    with open_dict(cfg):
        cfg.index.dir = str(tmp_path / "stale")
    load_or_build_index(cfg, encoder, datamodule, checkpoint)
    restored, _ = load_embeddings(tmp_path / "stale" / EMBEDDINGS_FILE)
    np.testing.assert_allclose(restored, before, atol=1e-5)
    now = contents_digest(datamodule.catalogue_paths)
    EmbeddingIndex.load(tmp_path / "stale", expected_catalogue_sha256=now)
