"""Embeddings with their ids in one ``.npz`` file, written atomically."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fashion_retrieval.index.faiss_index import check_ids, check_matrix
from fashion_retrieval.io import atomic_open

__all__ = ["load_embeddings", "save_embeddings"]


def save_embeddings(path: str | os.PathLike[str], embeddings: npt.ArrayLike, ids: Sequence[str]) -> None:
    """Write ``(N, D) float32`` embeddings and ``N`` unique ids to ``path`` (``.npz`` format, name kept)."""
    matrix = check_matrix(embeddings, "embeddings")
    id_list = check_ids(ids, matrix.shape[0])
    # A unicode array (not object) so loading never needs pickle; dtype=str keeps (0,) arrays unicode too.
    id_array = np.asarray(id_list, dtype=str)
    # Writing to an open handle stops np.savez from appending ".npz" to the temporary name.
    with atomic_open(path, "wb") as handle:
        np.savez(handle, embeddings=matrix, ids=id_array)


def load_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read a file written by ``save_embeddings``: ``(N, D) float32`` embeddings and ``N`` ids."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"embeddings file {path} is missing") from None
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        # A malformed file is bad data, not a wrong argument type.
        raise ValueError(  # noqa: TRY004
            f"{path} holds a single array, not the .npz archive save_embeddings writes"
        )
    with archive:
        missing = [key for key in ("embeddings", "ids") if key not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks the array(s) {', '.join(missing)} (has {archive.files})")
        embeddings = archive["embeddings"]
        ids = archive["ids"]
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise ValueError(f"{path}: ids must be a 1-D unicode array, got shape {ids.shape} dtype {ids.dtype}")
    if embeddings.dtype != np.float32:
        raise ValueError(f"{path}: embeddings must be float32, got {embeddings.dtype}")
    try:
        matrix = check_matrix(embeddings, "embeddings")
        id_list = check_ids(ids.tolist(), matrix.shape[0])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return matrix, id_list
