"""An index built shard by shard equals the one-shot index; the streamed export writes the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashion_retrieval.index.embeddings import EmbeddingsWriter, load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE, export_catalogue, export_catalogue_shards
from fashion_retrieval.index.factory import FlatSpec, HNSWSpec, IVFFlatSpec, IVFPQSpec
from fashion_retrieval.index.faiss_index import META_FILE, EmbeddingIndex
from fashion_retrieval.index.sharded import build_from_shards, gather_rows

NUM_ITEMS, DIM = 600, 16


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


CATALOGUE = unit_rows(NUM_ITEMS, 0)
IDS = [f"p{i:04d}" for i in range(NUM_ITEMS)]
QUERIES = unit_rows(40, 1)


def shards(size: int = 130):
    return lambda: ((CATALOGUE[s : s + size], IDS[s : s + size]) for s in range(0, NUM_ITEMS, size))


def test_gather_rows_picks_global_positions_across_blocks() -> None:
    matrix = np.arange(20, dtype=np.float32).reshape(10, 2)
    rows = np.array([0, 3, 4, 9])
    np.testing.assert_array_equal(gather_rows([matrix[:4], matrix[4:5], matrix[5:]], rows), matrix[rows])
    with pytest.raises(ValueError, match="row 12 asked for"):
        gather_rows([matrix], np.array([1, 12]))


def test_flat_from_shards_gives_identical_results() -> None:
    sharded = build_from_shards(shards(), NUM_ITEMS, FlatSpec(device="cpu"))
    whole = EmbeddingIndex(CATALOGUE, IDS, spec=FlatSpec(device="cpu"))
    assert sharded.ids == IDS
    for got, expected in zip(sharded.search(QUERIES, 10), whole.search(QUERIES, 10)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "spec",
    [
        IVFFlatSpec(nlist=8, nprobe=2, train_size=300, device="cpu"),
        IVFPQSpec(nlist=4, nprobe=2, m=4, nbits=4, train_size=300, device="cpu"),
    ],
    ids=lambda spec: spec.index_type,
)
def test_ivf_from_shards_trains_on_the_same_sample_and_finds_the_same_ids(spec) -> None:
    sharded = build_from_shards(shards(97), NUM_ITEMS, spec)
    whole = EmbeddingIndex(CATALOGUE, IDS, spec=spec)
    assert sharded.num_trained == whole.num_trained == len(spec.training_sample(CATALOGUE))
    assert sharded.search_ids(QUERIES, 10) == whole.search_ids(QUERIES, 10)


def test_hnsw_from_shards_finds_nearly_the_same_ids() -> None:
    """HNSW's graph depends on how the items are added (batches insert in parallel): close, not equal."""
    spec = HNSWSpec(M=8, ef_construction=40, ef_search=32, device="cpu")
    sharded = build_from_shards(shards(97), NUM_ITEMS, spec).search_ids(QUERIES, 10)
    whole = EmbeddingIndex(CATALOGUE, IDS, spec=spec).search_ids(QUERIES, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(sharded, whole)])
    assert overlap >= 0.9


def test_shards_must_add_up() -> None:
    with pytest.raises(ValueError, match="the shards hold 600 rows, but 601 were announced"):
        build_from_shards(shards(), NUM_ITEMS + 1)
    with pytest.raises(ValueError, match="empty"):
        build_from_shards(lambda: iter(()), 0)


def test_streamed_export_writes_what_the_in_memory_export_writes(tmp_path: Path) -> None:
    spec = IVFFlatSpec(nlist=8, nprobe=8, train_size=300, device="cpu")
    export_catalogue(tmp_path / "whole", CATALOGUE, IDS, None, spec)
    export_catalogue_shards(tmp_path / "sharded", shards(), NUM_ITEMS, DIM, None, spec)
    for directory in ("whole", "sharded"):
        embeddings, ids = load_embeddings(tmp_path / directory / EMBEDDINGS_FILE)
        np.testing.assert_array_equal(embeddings, CATALOGUE)
        assert ids == IDS
    loaded = EmbeddingIndex.load(tmp_path / "sharded", spec=spec)
    assert loaded.search_ids(QUERIES, 5) == EmbeddingIndex.load(tmp_path / "whole").search_ids(QUERIES, 5)


def test_interrupted_streamed_export_leaves_the_previous_index(tmp_path: Path) -> None:
    export_catalogue(tmp_path, CATALOGUE, IDS, None)
    before = {name: (tmp_path / name).read_bytes() for name in (EMBEDDINGS_FILE, META_FILE)}

    def broken():
        yield CATALOGUE[:100], IDS[:100]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        export_catalogue_shards(tmp_path, broken, NUM_ITEMS, DIM, None)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not list(tmp_path.glob(".*.tmp"))
    small = tmp_path / "small.npz"
    with (
        pytest.raises(ValueError, match="more than the announced 3 rows"),
        EmbeddingsWriter(small, 3, DIM) as w,
    ):
        w.write(CATALOGUE[:4], IDS[:4])
    assert not small.exists()
