"""Extraction through Lightning predict into the cache: equal to in-memory embedding, reused, recomputed
after an interruption, and under two DDP processes (CPU, gloo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from feature_data import flat_encoder
from torch.utils.data import DataLoader

from fashion_retrieval.features import ensure_features, load_features, read_manifest
from fashion_retrieval.features.shards import MANIFEST_FILE
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader


def test_timm_encoder_features_equal_in_memory_embedding(tmp_path, dataset, ids) -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder(TimmBackbone("test_efficientnet", weights="random"), embedding_dim=8).eval()
    directory = ensure_features(encoder, dataset, ids, tmp_path / "cache", shard_size=3, batch_size=2)
    embeddings, cached_ids = load_features(directory)
    expected = embed_loader(encoder, DataLoader(dataset, batch_size=2))
    assert cached_ids == ids and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    raw = ensure_features(
        encoder, dataset, ids, tmp_path / "cache", method="backbone_features", views=["flip"], batch_size=4
    )
    assert raw != directory and read_manifest(raw)["dim"] == encoder.backbone.num_features
    expected_raw = embed_loader(encoder.backbone_features, DataLoader(dataset, batch_size=4), views=["flip"])
    np.testing.assert_allclose(load_features(raw)[0], expected_raw, atol=1e-5)


def test_cache_is_reused_and_an_interrupted_entry_recomputed(tmp_path, dataset, ids) -> None:
    encoder, cache = flat_encoder(), tmp_path / "cache"
    directory = ensure_features(encoder, dataset, ids, cache, shard_size=4)
    stamp = (directory / MANIFEST_FILE).stat().st_mtime_ns
    assert ensure_features(encoder, dataset, ids, cache, shard_size=4, batch_size=3) == directory
    assert (directory / MANIFEST_FILE).stat().st_mtime_ns == stamp, "a complete entry is not rewritten"
    expected, _ = load_features(directory)
    # An interrupted run: parts (one of them half-written) and no manifest.
    (directory / MANIFEST_FILE).unlink()
    (directory / ".part-b000001-r001-000000.npz.abc123.tmp").write_bytes(b"half")
    with pytest.raises(FileNotFoundError, match="not a complete feature cache"):
        load_features(directory)
    assert ensure_features(encoder, dataset, ids, cache, shard_size=4) == directory
    assert not list(directory.glob(".*.tmp")), "temporary files of the interrupted run are cleaned"
    np.testing.assert_array_equal(load_features(directory)[0], expected)
    other = ensure_features(flat_encoder(seed=1), dataset, ids, cache, shard_size=4)
    assert other != directory
    assert sorted(p.name for p in cache.iterdir()) == sorted([directory.name, other.name])


@pytest.mark.slow
def test_two_ddp_processes_write_one_complete_cache(tmp_path, dataset, ids) -> None:
    encoder = flat_encoder()
    options = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}
    directory = ensure_features(
        encoder, dataset, ids, tmp_path / "cache", shard_size=3, trainer_options=options
    )
    parts = [p.name for p in directory.glob("part-*.npz")]
    assert any("-r000-" in p for p in parts) and any("-r001-" in p for p in parts)
    embeddings, cached_ids = load_features(directory)
    assert cached_ids == ids
    np.testing.assert_allclose(
        embeddings, embed_loader(encoder, DataLoader(dataset, batch_size=4)), atol=1e-6
    )
