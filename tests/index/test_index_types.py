"""Index types (flat, ivf_flat, ivf_pq, hnsw): exactness when exhaustive, recall against flat, save/load,
mismatch errors, training sample, device choice, interrupted saves."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fashion_retrieval.cli import config_dir
from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import (
    FlatSpec,
    HNSWSpec,
    IndexSpec,
    IVFFlatSpec,
    IVFPQSpec,
    default_nlist,
)
from fashion_retrieval.index.faiss_index import (
    IDS_FILE,
    INDEX_FILE,
    META_FILE,
    EmbeddingIndex,
    IndexMismatchError,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 50) -> np.ndarray:
    """Unit vectors around ``clusters`` centres: the structure real embeddings have and IVF relies on."""
    centres = rng.standard_normal((clusters, dim))
    return unit(centres[rng.integers(clusters, size=n)] + 0.5 * rng.standard_normal((n, dim)))


def make_ids(n: int) -> list[str]:
    return [f"I_{i:012x}" for i in range(n)]


# Parameters that make each type exhaustive on 32 items: every cell scanned, a search list as large as the
# data, and for PQ exactly 2**nbits = 32 training vectors, so each code book holds every item's sub-vector
# and the codes reconstruct the items exactly.
EXHAUSTIVE = [
    FlatSpec(device="cpu"),
    IVFFlatSpec(nlist=4, nprobe=4, device="cpu"),
    IVFPQSpec(nlist=2, nprobe=2, m=4, nbits=5, device="cpu"),
    HNSWSpec(M=8, ef_construction=64, ef_search=64, device="cpu"),
]
# PQ recall is bounded by its code size (here 4 bits per dimension), not by the search.
APPROXIMATE = [
    (IVFFlatSpec(nlist=64, nprobe=8, device="cpu"), 0.9),
    (IVFPQSpec(nlist=64, nprobe=16, m=32, nbits=4, train_size=2000, device="cpu"), 0.85),
    (HNSWSpec(M=16, ef_construction=80, ef_search=64, device="cpu"), 0.9),
]


@pytest.mark.parametrize("spec", EXHAUSTIVE, ids=lambda spec: spec.index_type)
def test_exhaustive_parameters_give_the_flat_top_k(spec: IndexSpec) -> None:
    rng = np.random.default_rng(0)
    gallery, queries = clustered(rng, 32, 16, clusters=4), clustered(rng, 10, 16, clusters=4)
    flat_scores, flat_indices = EmbeddingIndex(gallery, make_ids(32)).search(queries, 10)
    scores, indices = EmbeddingIndex(gallery, make_ids(32), spec=spec).search(queries, 10)
    np.testing.assert_array_equal(indices, flat_indices)
    np.testing.assert_allclose(scores, flat_scores, atol=1e-4)


@pytest.mark.parametrize(("spec", "min_recall"), APPROXIMATE, ids=["ivf_flat", "ivf_pq", "hnsw"])
def test_approximate_types_reach_high_recall(spec: IndexSpec, min_recall: float) -> None:
    rng = np.random.default_rng(1)
    gallery, queries = clustered(rng, 4000, 32), clustered(rng, 200, 32)
    _, truth = EmbeddingIndex(gallery, make_ids(4000)).search(queries, 10)
    _, found = EmbeddingIndex(gallery, make_ids(4000), spec=spec).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall >= min_recall, f"{spec.index_type}: recall@10 {recall:.3f} against flat"


@pytest.mark.parametrize(
    "spec",
    [
        FlatSpec(device="cpu"),
        IVFFlatSpec(nlist=16, nprobe=4, train_size=500, seed=1, device="cpu"),
        IVFPQSpec(nlist=16, nprobe=4, m=16, nbits=4, device="cpu"),
        HNSWSpec(M=8, ef_construction=40, ef_search=20, device="cpu"),
    ],
    ids=lambda spec: spec.index_type,
)
def test_save_load_round_trip_keeps_type_parameters_and_results(tmp_path: Path, spec: IndexSpec) -> None:
    rng = np.random.default_rng(2)
    gallery, queries = clustered(rng, 1000, 16), clustered(rng, 20, 16)
    index = export_catalogue(tmp_path, gallery, make_ids(1000), None, spec)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["index_type"] == spec.index_type and meta["index_params"] == spec.params()
    assert meta["metric"] == "inner_product" and meta["dim"] == 16 and meta["num_items"] == 1000
    assert meta["faiss_version"] == faiss.__version__ and meta["build_seconds"] >= 0
    assert meta["metadata"] == {"checkpoint": None}

    loaded = EmbeddingIndex.load(tmp_path, expected_dim=16)
    assert loaded.spec == spec and not loaded.on_gpu and loaded.ids == index.ids
    for a, b in zip(loaded.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(a, b)


def test_search_parameters_apply_on_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gallery, queries = clustered(rng, 2000, 16), clustered(rng, 50, 16)
    EmbeddingIndex(gallery, make_ids(2000), spec=IVFFlatSpec(nlist=32, nprobe=1, device="cpu")).save(tmp_path)
    _, truth = EmbeddingIndex(gallery, make_ids(2000)).search(queries, 10)
    exhaustive = EmbeddingIndex.load(tmp_path, spec=IVFFlatSpec(nlist=32, nprobe=32, device="cpu"))
    assert faiss.extract_index_ivf(exhaustive._index).nprobe == 32
    np.testing.assert_array_equal(exhaustive.search(queries, 10)[1], truth)

    hnsw = HNSWSpec(M=8, ef_search=16, device="cpu")
    EmbeddingIndex(gallery, make_ids(2000), spec=hnsw).save(tmp_path / "hnsw")
    loaded = EmbeddingIndex.load(tmp_path / "hnsw", spec=HNSWSpec(M=8, ef_search=300, device="cpu"))
    assert faiss.downcast_index(loaded._index).hnsw.efSearch == 300


def test_mismatches_name_directory_content_and_expectation(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"weights")
    index_dir = tmp_path / "index"
    export_catalogue(
        index_dir, clustered(rng, 300, 8), make_ids(300), checkpoint, HNSWSpec(M=8, device="cpu")
    )
    with pytest.raises(
        IndexMismatchError, match=rf"{index_dir} has dimension 8 but dimension 16 was expected"
    ):
        EmbeddingIndex.load(index_dir, expected_dim=16)
    with pytest.raises(IndexMismatchError, match=rf"{index_dir} was built from checkpoint .*model\.ckpt"):
        EmbeddingIndex.load(index_dir, expected_checkpoint_sha256="0" * 64)
    with pytest.raises(
        IndexMismatchError, match=rf"{index_dir} is hnsw .*'M': 8.* but flat \{{\}} was expected"
    ):
        EmbeddingIndex.load(index_dir, spec=FlatSpec())
    with pytest.raises(IndexMismatchError, match="'M': 16"):
        EmbeddingIndex.load(index_dir, spec=HNSWSpec(M=16))
    # Search-time parameters may differ.
    sha = json.loads((index_dir / META_FILE).read_text())["metadata"]["checkpoint_sha256"]
    EmbeddingIndex.load(
        index_dir, expected_checkpoint_sha256=sha, spec=HNSWSpec(M=8, ef_search=7, device="cpu")
    )


def test_training_sample_is_seeded_and_bounded() -> None:
    rng = np.random.default_rng(5)
    matrix = clustered(rng, 500, 8)
    spec = IVFFlatSpec(nlist=10, nprobe=2, train_size=100, seed=3)
    sample = spec.training_sample(matrix)
    assert sample.shape == (100, 8)
    np.testing.assert_array_equal(sample, spec.training_sample(matrix))
    assert not np.array_equal(
        sample, IVFFlatSpec(nlist=10, nprobe=2, train_size=100, seed=4).training_sample(matrix)
    )
    assert {row.tobytes() for row in sample} <= {row.tobytes() for row in matrix}
    assert spec.training_sample(matrix[:50]).shape == (50, 8)
    assert HNSWSpec().training_sample(matrix).shape == (0, 8)
    built = EmbeddingIndex(
        matrix, make_ids(500), spec=IVFFlatSpec(nlist=10, nprobe=2, train_size=100, device="cpu")
    )
    assert built.num_trained == 100


@pytest.mark.parametrize(
    ("spec", "count", "match"),
    [
        (IVFFlatSpec(nlist=64, device="cpu"), 50, r"needs at least 64 training vectors, but there are 50"),
        (IVFFlatSpec(nlist=64, train_size=32, device="cpu"), 500, r"needs at least 64 .*train_size=32"),
        (IVFPQSpec(nlist=4, nprobe=4, m=2, nbits=8, device="cpu"), 200, r"needs at least 256"),
        (IVFPQSpec(nlist=4, nprobe=4, m=3, nbits=4, device="cpu"), 200, r"m=3 must divide .* dimension 8"),
    ],
)
def test_build_errors(spec: IndexSpec, count: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EmbeddingIndex(clustered(np.random.default_rng(6), count, 8), make_ids(count), spec=spec)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nlist": 4, "nprobe": 5}, "nprobe=5 exceeds nlist=4"),
        ({"nlist": 0}, "nlist must be a positive int"),
        ({"device": "tpu"}, "device must be one of"),
    ],
)
def test_spec_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IVFFlatSpec(**kwargs)


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="checks the no-GPU path")
def test_device_gpu_fails_clearly_without_one_and_auto_uses_the_cpu() -> None:
    matrix = np.eye(4, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"device=gpu, but faiss .* sees no GPU"):
        EmbeddingIndex(matrix, make_ids(4), spec=FlatSpec(device="gpu"))
    assert not EmbeddingIndex(matrix, make_ids(4), spec=FlatSpec(device="auto")).on_gpu
    with pytest.raises(ValueError, match="no GPU hnsw"):
        EmbeddingIndex(matrix, make_ids(4), spec=HNSWSpec(device="gpu"))


@pytest.mark.parametrize("option", ["flat", "ivf_flat", "ivf_pq", "hnsw"])
def test_config_options_instantiate(option: str) -> None:
    spec = instantiate(OmegaConf.load(config_dir() / "index" / f"{option}.yaml").spec)
    assert isinstance(spec, IndexSpec) and spec.index_type == option and spec.device == "auto"


def test_interrupted_save_leaves_the_previous_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    old = EmbeddingIndex(clustered(rng, 30, 8), make_ids(30))
    old.save(tmp_path, metadata={"checkpoint_sha256": "old"})
    before = {name: (tmp_path / name).read_bytes() for name in (INDEX_FILE, IDS_FILE, META_FILE)}

    def fail_midway(index: faiss.Index, path: str) -> None:
        Path(path).write_bytes(b"half an index")
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", fail_midway)
    new = EmbeddingIndex(clustered(rng, 40, 8), make_ids(40), spec=HNSWSpec(M=8, device="cpu"))
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path, metadata={"checkpoint_sha256": "new"})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert EmbeddingIndex.load(tmp_path).metadata == {"checkpoint_sha256": "old"}


@pytest.mark.parametrize(
    ("num_items", "train_size", "expected"),
    [
        (2_000, 100_000, 51),
        (27_688, 100_000, 666),
        (1_000_000, 100_000, 2564),
        (10, 100_000, 1),
        (5_000, 390, 10),
    ],
)
def test_default_nlist_is_4_sqrt_n_capped_by_the_training_points(
    num_items: int, train_size: int, expected: int
) -> None:
    # 4 sqrt(N) and min(N, train_size) // 39 worked by hand.
    assert default_nlist(num_items, train_size) == expected


def test_nlist_is_derived_from_the_item_count_unless_given(tmp_path: Path) -> None:
    matrix = clustered(np.random.default_rng(8), 600, 8)
    auto = EmbeddingIndex(matrix, make_ids(600), spec=IVFFlatSpec(nprobe=32, device="cpu"))
    assert (
        auto.spec.nlist == 15 and auto.spec.nprobe == 15
    )  # 600 // 39 = 15 < 4 sqrt(600) = 98; nprobe capped
    auto.save(tmp_path)
    # The same auto config reloads the saved index (no rebuild), an explicit other nlist does not.
    assert EmbeddingIndex.load(tmp_path, spec=IVFFlatSpec(device="cpu")).spec.nlist == 15
    with pytest.raises(IndexMismatchError, match="'nlist': 15"):
        EmbeddingIndex.load(tmp_path, spec=IVFFlatSpec(nlist=8, nprobe=2, device="cpu"))
    explicit = EmbeddingIndex(matrix, make_ids(600), spec=IVFFlatSpec(nlist=8, nprobe=2, device="cpu"))
    assert (explicit.spec.nlist, explicit.spec.nprobe) == (8, 2)
    with pytest.raises(ValueError, match="call sized"):
        IVFFlatSpec().factory_string()
