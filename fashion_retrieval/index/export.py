"""One on-disk layout for a catalogue index, whoever builds it (the export callback or ``index``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.index.embeddings import EmbeddingsWriter, save_embeddings
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.index.sharded import ShardSource, build_from_shards
from fashion_retrieval.io import contents_digest, file_digest

EMBEDDINGS_FILE = "catalogue_embeddings.npz"


def export_catalogue(
    directory: str | Path,
    embeddings: np.ndarray,
    ids: Sequence[str],
    checkpoint: str | Path | None,
    spec: IndexSpec | None = None,
    image_paths: Sequence[str] | None = None,
) -> EmbeddingIndex:
    """Write ``directory/catalogue_embeddings.npz`` and the FAISS index (``spec``; default flat, CPU) with its
    id map.

    ``embeddings``: ``(N, D)`` float32, L2-normalised. The index metadata records the checkpoint and its
    SHA-256, and the digest of the catalogue images (``image_paths``, row for row), so a later stage can
    tell whether the index belongs to the model and the images it is using (:func:`index_metadata`).
    """
    directory = Path(directory)
    save_embeddings(directory / EMBEDDINGS_FILE, embeddings, ids)
    index = EmbeddingIndex(embeddings, list(ids), spec=spec)
    index.save(directory, metadata=index_metadata(checkpoint, image_paths))
    return index


def index_metadata(checkpoint: str | Path | None, image_paths: Sequence[str] | None = None) -> dict[str, Any]:
    """What an index records about its input: the checkpoint path and SHA-256 of the model that embedded
    it, and ``catalogue_sha256``, :func:`~fashion_retrieval.io.contents_digest` of the catalogue images."""
    metadata: dict[str, Any] = {"checkpoint": str(checkpoint) if checkpoint else None}
    if checkpoint:
        metadata["checkpoint_sha256"] = file_digest(checkpoint)
    if image_paths is not None:
        metadata["catalogue_sha256"] = contents_digest(image_paths)
    return metadata


def export_catalogue_shards(
    directory: str | Path,
    shards: ShardSource,
    num_items: int,
    dim: int,
    checkpoint: str | Path | None,
    spec: IndexSpec | None = None,
    image_paths: Sequence[str] | None = None,
) -> EmbeddingIndex:
    """:func:`export_catalogue` from shards (:func:`~fashion_retrieval.index.sharded.build_from_shards`):
    the same files, written while the index is filled, without the whole matrix in memory.

    An interrupted export leaves the previous files whole: the embeddings file is renamed into place only
    once complete, and the index is saved (atomically, meta last) only after it.
    """
    directory = Path(directory)
    with EmbeddingsWriter(directory / EMBEDDINGS_FILE, num_items, dim) as writer:
        index = build_from_shards(shards, num_items, spec, tap=writer.write)
    index.save(directory, metadata=index_metadata(checkpoint, image_paths))
    return index
