"""An index built shard by shard, for catalogues whose embeddings do not fit in memory at once.

The IVF family trains on the same seeded sample of rows a one-shot build would draw
(:meth:`IndexSpec.training_rows`), gathered in one pass over the shards; a second pass adds each shard in
turn. The result equals the one-shot :class:`EmbeddingIndex` of the concatenated shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fashion_retrieval.index.factory import FlatSpec, IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex, build_faiss_index, check_matrix

__all__ = ["ShardSource", "build_from_shards", "gather_rows"]

ShardSource = Callable[[], Iterable[tuple[np.ndarray, Sequence[str]]]]
"""Called once per pass; yields ``(embeddings (n, D) float32, n ids)`` per shard, always in the same order."""


def gather_rows(blocks: Iterable[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The rows at sorted global positions ``rows (S,)`` of the matrix the ``(n_i, D)`` ``blocks`` stack
    into, ``(S, D)``, in one pass."""
    picked, offset = [], 0
    for block in blocks:
        low, high = np.searchsorted(rows, [offset, offset + len(block)])
        picked.append(np.asarray(block)[rows[low:high] - offset])
        offset += len(block)
    if len(rows) and (not picked or rows[-1] >= offset):
        raise ValueError(f"row {int(rows[-1])} asked for, but the shards hold {offset} rows")
    return np.concatenate(picked) if picked else np.zeros((0, 0), dtype=np.float32)


def build_from_shards(
    shards: ShardSource,
    num_items: int,
    spec: IndexSpec | None = None,
    metadata: Mapping[str, Any] | None = None,
    tap: Callable[[np.ndarray, Sequence[str]], None] | None = None,
) -> EmbeddingIndex:
    """A ``spec`` index (default flat, CPU) over the ``num_items`` rows ``shards`` yields, with their ids in
    that order; ``tap(embeddings, ids)`` sees each checked shard as it is added (e.g. to write a copy).

    Memory: one shard plus the training sample (at most ``train_size`` rows) plus the index itself.
    """
    spec = (spec or FlatSpec(device="cpu")).sized(num_items)
    start = time.perf_counter()
    rows = spec.training_rows(num_items)
    sample = np.zeros((0, 0), dtype=np.float32)
    if len(rows):
        sample = check_matrix(gather_rows((matrix for matrix, _ in shards()), rows), "training sample")
    ids: list[str] = []

    def checked() -> Iterator[np.ndarray]:
        for embeddings, shard_ids in shards():
            matrix = check_matrix(embeddings, f"shard {len(ids)}..{len(ids) + len(embeddings) - 1}")
            if len(shard_ids) != len(matrix):
                raise ValueError(f"a shard has {len(shard_ids)} ids for {len(matrix)} embeddings")
            if tap is not None:
                tap(matrix, shard_ids)
            ids.extend(shard_ids)
            yield matrix

    index, on_gpu = build_faiss_index(spec, sample, checked(), total=num_items)
    if len(ids) != num_items:
        raise ValueError(f"the shards hold {len(ids)} rows, but {num_items} were announced")
    return EmbeddingIndex.from_faiss(
        index, on_gpu, ids, spec, metadata, build_seconds=time.perf_counter() - start, num_trained=len(sample)
    )
