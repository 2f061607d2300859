from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_retrieval.index.embeddings import load_embeddings, save_embeddings
from fashion_retrieval.index.faiss_index import IDS_FILE, INDEX_FILE, META_FILE, PAD_SCORE, EmbeddingIndex


def normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_ids(n: int) -> list[str]:
    return [f"I_{i:012x}" for i in range(n)]


def brute_force_topk(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ gallery.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize(("n", "dim", "q", "k"), [(1, 3, 2, 1), (50, 8, 17, 5), (300, 32, 100, 15)])
def test_search_matches_brute_force(n: int, dim: int, q: int, k: int) -> None:
    rng = np.random.default_rng(n)
    gallery, queries = normalised(rng, n, dim), normalised(rng, q, dim)
    index = EmbeddingIndex(gallery, make_ids(n))
    scores, indices = index.search(queries, k)
    ref_scores, ref_indices = brute_force_topk(gallery, queries, min(k, n))
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    assert scores.shape == indices.shape == (q, k)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # Random continuous data has no exact ties, but a near-tie may swap order: accept a swap only between
    # neighbours whose scores agree to float32 precision.
    mismatch = indices != ref_indices
    assert np.all(np.abs(ref_scores[mismatch] - scores[mismatch]) < 1e-5)
    assert mismatch.mean() < 0.01
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_batching_gives_identical_results() -> None:
    rng = np.random.default_rng(1)
    gallery, queries = normalised(rng, 200, 16), normalised(rng, 103, 16)
    index = EmbeddingIndex(gallery, make_ids(200))
    full = index.search(queries, 10, batch_size=4096)
    for batch_size in (1, 7, 50, 103):
        batched = index.search(queries, 10, batch_size=batch_size)
        np.testing.assert_array_equal(batched[0], full[0])
        np.testing.assert_array_equal(batched[1], full[1])


def test_k_larger_than_n_pads_like_faiss() -> None:
    rng = np.random.default_rng(2)
    gallery = normalised(rng, 3, 4)
    index = EmbeddingIndex(gallery, make_ids(3))
    scores, indices = index.search(gallery, 5)
    assert scores.shape == (3, 5)
    np.testing.assert_array_equal(indices[:, 3:], -1)
    np.testing.assert_array_equal(scores[:, 3:], PAD_SCORE)
    np.testing.assert_array_equal(np.sort(indices[:, :3], axis=1), np.tile([0, 1, 2], (3, 1)))
    np.testing.assert_array_equal(indices[:, 0], [0, 1, 2])
    assert index.search_ids(gallery[:1], 5)[0][0] == "I_000000000000"
    assert len(index.search_ids(gallery[:1], 5)[0]) == 3


def test_properties_and_input_coercion() -> None:
    rng = np.random.default_rng(3)
    gallery = normalised(rng, 10, 6).astype(np.float64)[:, ::1]
    index = EmbeddingIndex(np.asfortranarray(gallery), make_ids(10))
    assert len(index) == 10 and index.dim == 6 and index.ids == make_ids(10)
    ids = index.search_ids(gallery[[4, 7]], 2)
    assert [row[0] for row in ids] == ["I_000000000004", "I_000000000007"]


@pytest.mark.parametrize(
    ("embeddings", "ids", "match"),
    [
        (np.zeros((3, 2), np.float32), ["a", "b", "a"], "unique.*'a'"),
        (np.zeros((3, 2), np.float32), ["a", "b"], "2 entries but there are 3"),
        (np.zeros(3, np.float32), ["a", "b", "c"], "2-D"),
        (np.array([[0.0, np.nan]], np.float32), ["a"], "non-finite.*row 0"),
        (np.zeros((0, 2), np.float32), [], "empty"),
    ],
)
def test_constructor_errors(embeddings: np.ndarray, ids: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EmbeddingIndex(embeddings, ids)


def test_search_errors() -> None:
    index = EmbeddingIndex(np.eye(4, dtype=np.float32), make_ids(4))
    with pytest.raises(ValueError, match="dimension 3 but the index has dimension 4"):
        index.search(np.zeros((1, 3), np.float32), 2)
    with pytest.raises(ValueError, match="k must be a positive int"):
        index.search(np.zeros((1, 4), np.float32), 0)
    with pytest.raises(ValueError, match="batch_size"):
        index.search(np.zeros((1, 4), np.float32), 1, batch_size=0)
    with pytest.raises(ValueError, match="queries must be 2-D"):
        index.search(np.zeros(4, np.float32), 1)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gallery, queries = normalised(rng, 40, 8), normalised(rng, 5, 8)
    index = EmbeddingIndex(gallery, make_ids(40))
    index.save(tmp_path / "idx", metadata={"checkpoint_sha256": "abc"})
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted([INDEX_FILE, IDS_FILE, META_FILE])

    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    assert meta["dim"] == 8 and meta["num_items"] == 40
    assert meta["metric"] == "inner_product" and meta["index_type"] == "flat"
    assert meta["metadata"] == {"checkpoint_sha256": "abc"}
    assert "T" in meta["created_at"]

    loaded = EmbeddingIndex.load(tmp_path / "idx", expected_dim=8)
    assert loaded.ids == index.ids and loaded.dim == 8 and len(loaded) == 40
    assert loaded.metadata == {"checkpoint_sha256": "abc"}
    for a, b in zip(loaded.search(queries, 6), index.search(queries, 6), strict=True):
        np.testing.assert_array_equal(a, b)

    # Overwriting in place works and leaves no temporary files.
    loaded.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted([INDEX_FILE, IDS_FILE, META_FILE])


def anonymous_memory_kib() -> int:
    """This process's resident memory not backed by a file (``RssAnon``, Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no RssAnon in /proc/self/status (not Linux)")


def resident_kib_mapped_from(path: Path) -> int:
    """Resident memory of this process's mappings of ``path`` (``/proc/self/smaps``, Linux)."""
    smaps = Path("/proc/self/smaps")
    if not smaps.exists():
        pytest.skip("no /proc/self/smaps (not Linux)")
    resident, in_path = 0, False
    for line in smaps.read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
            in_path = fields[-1] == str(path)
        elif in_path and fields[0] == "Rss:":
            resident += int(fields[1])
    return resident


def test_a_memory_mapped_flat_index_searches_alike_without_copying_its_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    gallery, queries = normalised(rng, 20_000, 256), normalised(rng, 7, 256)  # 20 MB of vectors
    EmbeddingIndex(gallery, make_ids(20_000)).save(tmp_path / "idx")
    del gallery
    index_file = (tmp_path / "idx" / INDEX_FILE).resolve()
    before = anonymous_memory_kib()
    mapped = EmbeddingIndex.load(tmp_path / "idx", mmap=True)
    mapped_growth = anonymous_memory_kib() - before
    read = EmbeddingIndex.load(tmp_path / "idx")
    for a, b in zip(mapped.search(queries, 15), read.search(queries, 15), strict=True):
        np.testing.assert_array_equal(a, b)
    # The search read every vector through the file's pages (shared by every process mapping it), and loading
    # the mapped index copied none of them into private memory. Comparing private memory before and after a
    # plain read is no control: the allocator may hand back pages an earlier test freed.
    assert resident_kib_mapped_from(index_file) > 15_000
    assert mapped_growth < 5_000
    del mapped
    assert resident_kib_mapped_from(index_file) == 0


def test_save_rejects_unserialisable_metadata_before_writing(tmp_path: Path) -> None:
    index = EmbeddingIndex(np.eye(2, dtype=np.float32), ["a", "b"])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        index.save(tmp_path / "idx", metadata={"bad": object()})
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("missing", [INDEX_FILE, IDS_FILE, META_FILE])
def test_load_names_missing_file(tmp_path: Path, missing: str) -> None:
    EmbeddingIndex(np.eye(2, dtype=np.float32), ["a", "b"]).save(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        EmbeddingIndex.load(tmp_path)


def test_load_errors(tmp_path: Path) -> None:
    EmbeddingIndex(np.eye(3, dtype=np.float32), ["a", "b", "c"]).save(tmp_path)
    with pytest.raises(ValueError, match="dimension 3 but dimension 5 was expected"):
        EmbeddingIndex.load(tmp_path, expected_dim=5)

    (tmp_path / IDS_FILE).write_text(json.dumps(["a", "b"]))
    with pytest.raises(ValueError, match=f"{IDS_FILE} has 2 ids but .*{INDEX_FILE} holds 3"):
        EmbeddingIndex.load(tmp_path)

    (tmp_path / IDS_FILE).write_text(json.dumps(["a", "b", "a"]))
    with pytest.raises(ValueError, match="unique"):
        EmbeddingIndex.load(tmp_path)

    (tmp_path / IDS_FILE).write_text(json.dumps(["a", "b", "c"]))
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=f"{META_FILE} is not valid JSON"):
        EmbeddingIndex.load(tmp_path)


def test_embeddings_round_trip_keeps_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    emb = normalised(rng, 12, 4)
    ids = make_ids(12)
    path = tmp_path / "catalogue.emb"
    save_embeddings(path, emb, ids)
    assert [p.name for p in tmp_path.iterdir()] == ["catalogue.emb"]
    loaded, loaded_ids = load_embeddings(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, emb)
    assert loaded_ids == ids and all(type(i) is str for i in loaded_ids)
    with np.load(path, allow_pickle=False) as archive:
        assert archive["ids"].dtype.kind == "U"


def test_embeddings_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        save_embeddings(tmp_path / "e.npz", np.zeros((2, 2), np.float32), ["a", "a"])
    with pytest.raises(ValueError, match="1 entries but there are 2"):
        save_embeddings(tmp_path / "e.npz", np.zeros((2, 2), np.float32), ["a"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match=r"e\.npz"):
        load_embeddings(tmp_path / "e.npz")
    np.savez(tmp_path / "other.npz", embeddings=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"other\.npz lacks the array\(s\) ids"):
        load_embeddings(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"junk\.npz is not a readable \.npz"):
        load_embeddings(tmp_path / "junk.npz")


def test_non_string_id_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"ids\[1\] must be a str"):
        EmbeddingIndex(np.zeros((2, 2), np.float32), ["a", 3])  # type: ignore[list-item]
