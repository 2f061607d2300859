"""Shards on disk: round trip, DDP padding duplicates, completeness, the manifest as the commit point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from fashion_retrieval.features import ShardWriter, iter_shards, load_features, read_manifest
from fashion_retrieval.features.shards import MANIFEST_FILE, clear_directory

NUM_ITEMS, DIM = 23, 4


def catalogue() -> tuple[np.ndarray, list[str]]:
    rows = np.random.default_rng(0).standard_normal((NUM_ITEMS, DIM)).astype(np.float32)
    return rows, [f"p{i:03d}" for i in range(NUM_ITEMS)]


def feed(writer: ShardWriter, embeddings: np.ndarray, indices: list[int], batch_size: int = 3) -> None:
    """What ``write_on_batch_end`` does for each batch of one rank."""
    for start in range(0, len(indices), batch_size):
        batch = np.asarray(indices[start : start + batch_size])
        writer.add(torch.from_numpy(embeddings[batch]), torch.from_numpy(batch))
    writer.flush()


def test_round_trip_in_dataset_order_whatever_the_write_order(tmp_path: Path) -> None:
    embeddings, ids = catalogue()
    writer = ShardWriter(tmp_path, ids, shard_size=5, fingerprint="abc", settings={"x": 1})
    order = np.random.default_rng(1).permutation(NUM_ITEMS).tolist()
    feed(writer, embeddings, order)
    writer.finalize()
    loaded, loaded_ids = load_features(tmp_path)
    assert loaded.dtype == np.float32 and loaded.shape == (NUM_ITEMS, DIM)
    np.testing.assert_array_equal(loaded, embeddings)
    assert loaded_ids == ids
    shards = list(iter_shards(tmp_path))
    assert [shard.start for shard in shards] == [0, 5, 10, 15, 20]
    assert [len(shard.ids) for shard in shards] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([s.embeddings for s in shards]), embeddings)
    manifest = read_manifest(tmp_path)
    assert manifest["dim"] == DIM and manifest["count"] == NUM_ITEMS and manifest["dtype"] == "float32"
    assert manifest["fingerprint"] == "abc" and manifest["settings"] == {"x": 1}
    assert manifest["ids"] == ids and "created_at" in manifest


def test_two_ranks_with_distributed_sampler_padding_are_deduplicated(tmp_path: Path) -> None:
    embeddings, ids = catalogue()

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return NUM_ITEMS

    writers = []
    for rank in range(2):
        # 23 items on 2 ranks: the sampler pads rank 1 with a repeat of item 0.
        sampler = DistributedSampler(Items(), num_replicas=2, rank=rank, shuffle=False)
        writer = ShardWriter(tmp_path, ids, shard_size=4, rank=rank)
        feed(writer, embeddings, list(sampler))
        writers.append(writer)
    parts = sorted(p.name for p in tmp_path.glob("part-*.npz"))
    assert any("-r000-" in p for p in parts) and any("-r001-" in p for p in parts)
    writers[0].finalize()
    loaded, loaded_ids = load_features(tmp_path)
    np.testing.assert_array_equal(loaded, embeddings)
    assert loaded_ids == ids


def test_missing_items_are_counted_and_no_manifest_is_written(tmp_path: Path) -> None:
    embeddings, ids = catalogue()
    writer = ShardWriter(tmp_path, ids, shard_size=4)
    feed(writer, embeddings, [i for i in range(NUM_ITEMS) if i not in (3, 17)])
    with pytest.raises(ValueError, match=r"2 of 23 items have no embedding.*\[3, 17\]"):
        writer.finalize()
    assert not (tmp_path / MANIFEST_FILE).exists()
    with pytest.raises(FileNotFoundError, match="not a complete feature cache"):
        load_features(tmp_path)


def test_clear_directory_removes_parts_temporaries_and_manifest(tmp_path: Path) -> None:
    embeddings, ids = catalogue()
    writer = ShardWriter(tmp_path, ids, shard_size=10)
    feed(writer, embeddings, list(range(NUM_ITEMS)))
    writer.finalize()
    (tmp_path / ".part-b000000-r000-000009.npz.x1y2.tmp").write_bytes(b"half a part")
    (tmp_path / "notes.txt").write_text("kept")
    parts = len(list(tmp_path.glob("part-*.npz")))
    assert clear_directory(tmp_path) == parts + 2  # the parts, the temporary, the manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_reader_rejects_a_part_that_lost_rows_and_a_malformed_manifest(tmp_path: Path) -> None:
    embeddings, ids = catalogue()
    writer = ShardWriter(tmp_path, ids, shard_size=10)
    feed(writer, embeddings, list(range(NUM_ITEMS)), batch_size=NUM_ITEMS)
    writer.finalize()
    part = sorted(tmp_path.glob("part-b000001-*.npz"))[0]
    np.savez(part, embeddings=embeddings[10:15], indices=np.arange(10, 15))
    with pytest.raises(ValueError, match=r"shard 10\.\.19 lacks 5 of its 10 items"):
        load_features(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    del manifest["ids"]
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="lacks the field"):
        read_manifest(tmp_path)
