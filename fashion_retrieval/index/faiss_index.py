"""Exact inner-product FAISS index over L2-normalised embeddings, with string ids and atomic save/load."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fashion_retrieval.io import atomic_open, atomic_path

try:
    import faiss
except ImportError as error:  # faiss comes from an extra: two builds provide the same module
    raise ImportError(
        "FAISS is not installed: pip install 'fashion-retrieval[cpu]' (faiss-cpu) or "
        "'fashion-retrieval[gpu]' (faiss-gpu)"
    ) from error

__all__ = ["IDS_FILE", "INDEX_FILE", "META_FILE", "PAD_SCORE", "EmbeddingIndex", "check_ids", "check_matrix"]

INDEX_FILE = "index.faiss"
IDS_FILE = "index_ids.json"
META_FILE = "index_meta.json"
# FAISS fills missing neighbours of an inner-product search with -FLT_MAX and label -1; we pad the same way.
PAD_SCORE = float(np.finfo(np.float32).min)


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


class EmbeddingIndex:
    """Exact (flat) inner-product search over ``(N, D)`` embeddings identified by unique string ids.

    The caller L2-normalises the embeddings and queries, so scores are cosine similarities.
    """

    def __init__(
        self, embeddings: npt.ArrayLike, ids: Sequence[str], metadata: Mapping[str, Any] | None = None
    ) -> None:
        matrix = check_matrix(embeddings, "embeddings")
        if matrix.shape[0] == 0:
            raise ValueError("embeddings is empty (0 rows); an index needs at least one item")
        index = faiss.IndexFlatIP(matrix.shape[1])
        index.add(matrix)
        self._init(index, check_ids(ids, matrix.shape[0]), dict(metadata or {}))

    def _init(self, index: faiss.Index, ids: list[str], metadata: dict[str, Any]) -> None:
        self._index = index
        self._ids = ids
        self._id_array = np.asarray(ids, dtype=object)
        self.metadata = metadata

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
        return f"EmbeddingIndex(num_items={len(self)}, dim={self.dim})"

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
        for start in range(0, num_queries, batch_size):
            stop = min(start + batch_size, num_queries)
            batch_scores, batch_indices = self._index.search(matrix[start:stop], searched)
            scores[start:stop, :searched] = batch_scores
            indices[start:stop, :searched] = batch_indices
        return scores, indices

    def search_ids(self, queries: npt.ArrayLike, k: int, batch_size: int = 4096) -> list[list[str]]:
        """Ids of the top-``k`` items per query, ``Q`` lists of ``min(k, N)`` ids (padding dropped)."""
        _, indices = self.search(queries, k, batch_size=batch_size)
        return [self._id_array[row[row >= 0]].tolist() for row in indices]

    def save(self, directory: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``index.faiss``, ``index_ids.json``, ``index_meta.json`` into ``directory``, each atomically.

        ``metadata`` (JSON-serialisable, e.g. a checkpoint hash) is stored under ``"metadata"``; it defaults
        to ``self.metadata``.
        """
        target = Path(directory)
        meta = {
            "dim": self.dim,
            "metric": "inner_product",
            "index_type": "flat",
            "num_items": len(self),
            "created_at": datetime.now(timezone.utc).isoformat(),
            "metadata": dict(self.metadata if metadata is None else metadata),
        }
        try:
            # Serialise first so unserialisable metadata fails before anything on disk changes.
            meta_text = json.dumps(meta, indent=2, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(f"index metadata must be JSON-serialisable: {error}") from error
        target.mkdir(parents=True, exist_ok=True)
        # Drop the old meta first: while the other files are replaced, a reader sees "missing meta", never a
        # meta that describes a different index; the new meta lands only after both other files are complete.
        (target / META_FILE).unlink(missing_ok=True)
        with atomic_path(target / INDEX_FILE) as tmp:
            faiss.write_index(self._index, str(tmp))
        with atomic_open(target / IDS_FILE, "w", encoding="utf-8") as handle:
            json.dump(self._ids, handle)
        with atomic_open(target / META_FILE, "w", encoding="utf-8") as handle:
            handle.write(meta_text + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike[str], expected_dim: int | None = None) -> EmbeddingIndex:
        """Read an index written by ``save``; ValueError/FileNotFoundError name the offending file."""
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
        if meta["metric"] != "inner_product" or meta["index_type"] != "flat":
            raise ValueError(
                f"{source / META_FILE} describes a {meta['index_type']!r} {meta['metric']!r} index; "
                "only a flat inner_product index is supported"
            )
        try:
            index = faiss.read_index(str(source / INDEX_FILE))
        except RuntimeError as error:
            raise ValueError(f"cannot read FAISS index {source / INDEX_FILE}: {error}") from error
        ids = _read_json(source / IDS_FILE)
        if not isinstance(ids, list):
            raise ValueError(  # noqa: TRY004
                f"{source / IDS_FILE} must hold a JSON list of ids, got {type(ids).__name__}"
            )
        if len(ids) != index.ntotal:
            raise ValueError(
                f"{source / IDS_FILE} has {len(ids)} ids but {source / INDEX_FILE} "
                f"holds {index.ntotal} vectors"
            )
        if meta["num_items"] != index.ntotal or meta["dim"] != index.d:
            raise ValueError(
                f"{source / META_FILE} says {meta['num_items']} items of dimension {meta['dim']} but "
                f"{source / INDEX_FILE} holds {index.ntotal} of dimension {index.d}"
            )
        if expected_dim is not None and index.d != expected_dim:
            raise ValueError(
                f"index in {source} has dimension {index.d} but dimension {expected_dim} was expected"
            )
        loaded = cls.__new__(cls)
        loaded._init(
            index, check_ids(ids, int(index.ntotal), name=str(source / IDS_FILE)), meta.get("metadata") or {}
        )
        return loaded


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
