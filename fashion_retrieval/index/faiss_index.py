"""Inner-product FAISS index (flat, IVF, IVF-PQ or HNSW) over L2-normalised embeddings, with string ids and
atomic save/load."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fashion_retrieval.index.factory import (
    FlatSpec,
    IndexSpec,
    create_index,
    faiss,
    spec_from_metadata,
    to_device,
)
from fashion_retrieval.io import atomic_open, atomic_path
from fashion_retrieval.progress import progress_bar

log = logging.getLogger(__name__)

__all__ = [
    "IDS_FILE",
    "INDEX_FILE",
    "META_FILE",
    "PAD_SCORE",
    "EmbeddingIndex",
    "IndexMismatchError",
    "build_faiss_index",
    "check_ids",
    "check_matrix",
]

INDEX_FILE = "index.faiss"
IDS_FILE = "index_ids.json"
META_FILE = "index_meta.json"
# FAISS fills missing neighbours of an inner-product search with -FLT_MAX and label -1; we pad the same way.
PAD_SCORE = float(np.finfo(np.float32).min)
# FAISS GPU indexes return at most this many neighbours per query (GPU_MAX_SELECTION_K).
GPU_MAX_K = 2048


class IndexMismatchError(ValueError):
    """A saved index is valid but not the one asked for (another model, dimension or index type)."""


def check_matrix(values: npt.ArrayLike, name: str) -> np.ndarray:
    """``values`` as C-contiguous finite ``(N, D) float32``, ``D >= 1``; a ValueError names ``name``."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one dimension, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ValueError(
            f"{name} has non-finite values (first in row {row}; {int((~finite).sum())} in total)"
        )
    return array


def check_ids(ids: Sequence[str], count: int, name: str = "ids") -> list[str]:
    """``ids`` as a list of ``count`` unique strings; ValueError naming the first offender otherwise."""
    id_list = list(ids)
    if len(id_list) != count:
        raise ValueError(f"{name} has {len(id_list)} entries but there are {count} embeddings")
    for position, item in enumerate(id_list):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{position}] must be a str, got {type(item).__name__} {item!r}")
    if len(set(id_list)) != len(id_list):
        repeated = [item for item, times in Counter(id_list).items() if times > 1]
        examples = ", ".join(repr(item) for item in repeated[:5])
        raise ValueError(
            f"{name} must be unique: {len(repeated)} id(s) occur more than once, e.g. {examples}"
        )
    return id_list


# Rows per ``index.add`` call: the progress bar moves at this step (adding in chunks builds the same index).
ADD_CHUNK = 65_536


def build_faiss_index(
    spec: IndexSpec, sample: np.ndarray, batches: Iterable[np.ndarray], total: int | None = None
) -> tuple[faiss.Index, bool]:
    """A ``spec`` index trained on ``sample (S, D)`` (ignored by types without training) and filled with
    each ``(n, D)`` float32 batch in turn; returns it and whether it lives on GPUs. ``total``: the rows to
    come, for the progress bar (:mod:`fashion_retrieval.progress`).

    It is built where it will be searched: k-means is what a GPU speeds up most.
    """
    cpu_index = index = None
    with progress_bar(total, f"{spec.index_type} index", unit="vectors") as bar:
        for matrix in batches:
            if index is None:
                cpu_index = create_index(spec, matrix.shape[1])
                index = to_device(cpu_index, spec)
                if len(sample):
                    log.info("index: training %s on %d vectors", spec.factory_string(), len(sample))
                    index.train(sample)
            for start in range(0, len(matrix), ADD_CHUNK):
                chunk = matrix[start : start + ADD_CHUNK]
                index.add(chunk)
                bar.update(len(chunk))
    if index is None or index.ntotal == 0:
        raise ValueError("embeddings is empty (0 rows); an index needs at least one item")
    return index, index is not cpu_index


class EmbeddingIndex:
    """Inner-product search over ``(N, D)`` embeddings identified by unique string ids.

    The caller L2-normalises the embeddings and queries, so scores are cosine similarities. ``spec`` picks
    the index type and device; without it the index is exact (flat) and on the CPU.
    """

    def __init__(
        self,
        embeddings: npt.ArrayLike,
        ids: Sequence[str],
        metadata: Mapping[str, Any] | None = None,
        spec: IndexSpec | None = None,
    ) -> None:
        matrix = check_matrix(embeddings, "embeddings")
        if matrix.shape[0] == 0:
            raise ValueError("embeddings is empty (0 rows); an index needs at least one item")
        id_list = check_ids(ids, matrix.shape[0])
        spec = (spec or FlatSpec(device="cpu")).sized(matrix.shape[0])
        start = time.perf_counter()
        sample = spec.training_sample(matrix)
        index, on_gpu = build_faiss_index(spec, sample, [matrix], total=len(matrix))
        self._init(index, on_gpu, id_list, dict(metadata or {}), spec)
        self.build_seconds = time.perf_counter() - start
        self.num_trained = len(sample)

    @classmethod
    def from_faiss(
        cls,
        index: faiss.Index,
        on_gpu: bool,
        ids: Sequence[str],
        spec: IndexSpec,
        metadata: Mapping[str, Any] | None = None,
        build_seconds: float = 0.0,
        num_trained: int = 0,
    ) -> EmbeddingIndex:
        """Wrap a built ``index`` whose rows are ``ids`` (checked: one unique string per row)."""
        wrapped = cls.__new__(cls)
        checked = check_ids(ids, int(index.ntotal))
        wrapped._init(index, on_gpu, checked, dict(metadata or {}), spec)
        wrapped.build_seconds = build_seconds
        wrapped.num_trained = num_trained
        return wrapped

    def _init(
        self, index: faiss.Index, on_gpu: bool, ids: list[str], metadata: dict[str, Any], spec: IndexSpec
    ) -> None:
        self._index = index
        self.on_gpu = on_gpu
        self._cpu_copy: faiss.Index | None = None
        self._ids = ids
        self._id_array = np.asarray(ids, dtype=object)
        self.metadata = metadata
        self.spec = spec

    def _cpu_index(self) -> faiss.Index:
        """The index on the CPU (a copy, made once, when it lives on GPUs)."""
        if not self.on_gpu:
            return self._index
        if self._cpu_copy is None:
            self._cpu_copy = faiss.index_gpu_to_cpu(self._index)
        return self._cpu_copy

    @property
    def ids(self) -> list[str]:
        """Item ids, ``(N,)``, in index order (a copy)."""
        return list(self._ids)

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"EmbeddingIndex(num_items={len(self)}, dim={self.dim}, type={self.spec.index_type})"

    def search(self, queries: npt.ArrayLike, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product: ``(Q, k) float32`` scores (descending) and ``(Q, k) int64`` indices.

        ``queries``: ``(Q, D)``. Columns past ``N`` are padded with index ``-1`` and score ``PAD_SCORE``.
        """
        matrix = check_matrix(queries, "queries")
        if matrix.shape[1] != self.dim:
            raise ValueError(
                f"queries have dimension {matrix.shape[1]} but the index has dimension {self.dim}"
            )
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        num_queries = matrix.shape[0]
        scores = np.full((num_queries, k), PAD_SCORE, dtype=np.float32)
        indices = np.full((num_queries, k), -1, dtype=np.int64)
        searched = min(int(k), len(self))
        # Deeper searches than a GPU can select (section filtering may ask for the whole catalogue) run on
        # the CPU.
        index = self._cpu_index() if searched > GPU_MAX_K else self._index
        for start in range(0, num_queries, batch_size):
            stop = min(start + batch_size, num_queries)
            batch_scores, batch_indices = index.search(matrix[start:stop], searched)
            scores[start:stop, :searched] = batch_scores
            indices[start:stop, :searched] = batch_indices
        return scores, indices

    def search_ids(self, queries: npt.ArrayLike, k: int, batch_size: int = 4096) -> list[list[str]]:
        """Ids of the top-``k`` items per query, ``Q`` lists of ``min(k, N)`` ids (padding dropped)."""
        _, indices = self.search(queries, k, batch_size=batch_size)
        return [self._id_array[row[row >= 0]].tolist() for row in indices]

    def save(self, directory: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``index.faiss`` (a CPU index), ``index_ids.json``, ``index_meta.json`` into ``directory``.

        Each file is written atomically, the meta last; an interrupted save leaves the previous files in
        place. ``metadata`` (JSON-serialisable, e.g. a checkpoint hash) is stored under ``"metadata"``; it
        defaults to ``self.metadata``.
        """
        target = Path(directory)
        meta = {
            "dim": self.dim,
            "metric": "inner_product",
            "index_type": self.spec.index_type,
            "index_params": self.spec.params(),
            "num_items": len(self),
            "num_trained": self.num_trained,
            "build_seconds": round(self.build_seconds, 3),
            "faiss_version": faiss.__version__,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "metadata": dict(self.metadata if metadata is None else metadata),
        }
        try:
            # Serialise first so unserialisable metadata fails before anything on disk changes.
            meta_text = json.dumps(meta, indent=2, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(f"index metadata must be JSON-serialisable: {error}") from error
        target.mkdir(parents=True, exist_ok=True)
        # Both files are complete before either replaces its predecessor, so a failure while writing leaves
        # the previous index whole. The meta is dropped just before the renames (a reader then sees "missing
        # meta", never a meta that describes other files) and lands last.
        with atomic_path(target / INDEX_FILE) as tmp_index:
            faiss.write_index(self._cpu_index(), str(tmp_index))
            with atomic_path(target / IDS_FILE) as tmp_ids:
                tmp_ids.write_text(json.dumps(self._ids), encoding="utf-8")
                (target / META_FILE).unlink(missing_ok=True)
        with atomic_open(target / META_FILE, "w", encoding="utf-8") as handle:
            handle.write(meta_text + "\n")

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        expected_dim: int | None = None,
        expected_checkpoint_sha256: str | None = None,
        spec: IndexSpec | None = None,
        expected_catalogue_sha256: str | None = None,
        mmap: bool = False,
    ) -> EmbeddingIndex:
        """Read an index written by ``save``; ValueError/FileNotFoundError name the offending file.

        ``mmap``: map the stored vectors of a flat-codes index (flat, and the codes of PQ/SQ types) from the
        file instead of copying them into memory (FAISS's ``IO_FLAG_MMAP_IFC``): read-only, and processes
        that serve the same file share its pages (docs/serving.md).

        ``expected_*`` and ``spec`` (same type and build parameters; its search-time parameters and device
        are applied) raise ``IndexMismatchError`` for an index built by another model, from other catalogue
        images (``catalogue_sha256`` of its metadata), with another dimension or another index type.
        Without ``spec`` the saved one is used, on the CPU.
        """
        source = Path(directory)
        for name in (META_FILE, INDEX_FILE, IDS_FILE):
            if not (source / name).is_file():
                raise FileNotFoundError(f"index file {source / name} is missing")
        meta = _read_json(source / META_FILE)
        if not isinstance(meta, dict):
            # A malformed file is bad data, not a wrong argument type.
            raise ValueError(  # noqa: TRY004
                f"{source / META_FILE} must hold a JSON object, got {type(meta).__name__}"
            )
        for field in ("dim", "metric", "index_type", "num_items"):
            if field not in meta:
                raise ValueError(f"{source / META_FILE} lacks the field {field!r}")
        if meta["metric"] != "inner_product":
            raise ValueError(f"{source / META_FILE} describes a {meta['metric']!r} index, not inner_product")
        # Indexes saved before index types existed are flat and record no parameters.
        saved = spec_from_metadata(meta["index_type"], meta.get("index_params") or {}, device="cpu")
        user_meta = meta.get("metadata") or {}
        _check_expected(source, meta, saved, user_meta, expected_dim, expected_checkpoint_sha256, spec)
        recorded_images = user_meta.get("catalogue_sha256")
        if expected_catalogue_sha256 is not None and recorded_images != expected_catalogue_sha256:
            raise IndexMismatchError(
                f"index in {source} was built from other catalogue images (digest {recorded_images}, "
                f"the images now: {expected_catalogue_sha256})"
            )
        try:
            cpu_index = faiss.read_index(str(source / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        except RuntimeError as error:
            raise ValueError(f"cannot read FAISS index {source / INDEX_FILE}: {error}") from error
        ids = _read_json(source / IDS_FILE)
        if not isinstance(ids, list):
            raise ValueError(  # noqa: TRY004
                f"{source / IDS_FILE} must hold a JSON list of ids, got {type(ids).__name__}"
            )
        if len(ids) != cpu_index.ntotal:
            raise ValueError(
                f"{source / IDS_FILE} has {len(ids)} ids but {source / INDEX_FILE} "
                f"holds {cpu_index.ntotal} vectors"
            )
        if meta["num_items"] != cpu_index.ntotal or meta["dim"] != cpu_index.d:
            raise ValueError(
                f"{source / META_FILE} says {meta['num_items']} items of dimension {meta['dim']} but "
                f"{source / INDEX_FILE} holds {cpu_index.ntotal} of dimension {cpu_index.d}"
            )
        spec = saved if spec is None else spec.sized(int(cpu_index.ntotal))
        spec.configure(cpu_index)
        index = to_device(cpu_index, spec)
        checked_ids = check_ids(ids, int(cpu_index.ntotal), name=str(source / IDS_FILE))
        return cls.from_faiss(
            index,
            index is not cpu_index,
            checked_ids,
            spec,
            user_meta,
            build_seconds=float(meta.get("build_seconds", 0.0)),
            num_trained=int(meta.get("num_trained", 0)),
        )


def _check_expected(
    source: Path,
    meta: dict[str, Any],
    saved: IndexSpec,
    user_meta: dict[str, Any],
    expected_dim: int | None,
    expected_checkpoint_sha256: str | None,
    spec: IndexSpec | None,
) -> None:
    """IndexMismatchError naming ``source``, what it holds and what was expected, at the first difference."""
    if expected_dim is not None and meta["dim"] != expected_dim:
        raise IndexMismatchError(
            f"index in {source} has dimension {meta['dim']} but dimension {expected_dim} was expected"
        )
    recorded = user_meta.get("checkpoint_sha256")
    if expected_checkpoint_sha256 is not None and recorded != expected_checkpoint_sha256:
        raise IndexMismatchError(
            f"index in {source} was built from checkpoint {user_meta.get('checkpoint')} (sha256 {recorded}), "
            f"not from the expected one (sha256 {expected_checkpoint_sha256})"
        )
    if spec is None:
        return
    spec = spec.sized(int(meta["num_items"]))
    if (spec.index_type, spec.build_params()) != (saved.index_type, saved.build_params()):
        raise IndexMismatchError(
            f"index in {source} is {saved.index_type} {saved.build_params()}, but "
            f"{spec.index_type} {spec.build_params()} was expected"
        )


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
