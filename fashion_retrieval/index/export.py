"""One on-disk layout for a catalogue index, whoever builds it (the export callback or ``index``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashion_retrieval.index.embeddings import save_embeddings
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.io import file_digest

EMBEDDINGS_FILE = "catalogue_embeddings.npz"


def export_catalogue(
    directory: str | Path,
    embeddings: np.ndarray,
    ids: Sequence[str],
    checkpoint: str | Path | None,
    spec: IndexSpec | None = None,
) -> EmbeddingIndex:
    """Write ``directory/catalogue_embeddings.npz`` and the FAISS index (``spec``; default flat, CPU) with its
    id map.

    ``embeddings``: ``(N, D)`` float32, L2-normalised. The index metadata records the checkpoint and its
    SHA-256, so a later stage can tell whether the index belongs to the model it is using.
    """
    directory = Path(directory)
    save_embeddings(directory / EMBEDDINGS_FILE, embeddings, ids)
    metadata = {"checkpoint": str(checkpoint) if checkpoint else None}
    if checkpoint:
        metadata["checkpoint_sha256"] = file_digest(checkpoint)
    index = EmbeddingIndex(embeddings, list(ids), spec=spec)
    index.save(directory, metadata=metadata)
    return index
