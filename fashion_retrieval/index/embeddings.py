"""Embeddings with their ids in one ``.npz`` file, written atomically."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Sequence
from typing import IO

import numpy as np
import numpy.typing as npt

from fashion_retrieval.index.faiss_index import check_ids, check_matrix
from fashion_retrieval.io import atomic_open

__all__ = ["EmbeddingsWriter", "load_embeddings", "save_embeddings"]


def save_embeddings(path: str | os.PathLike[str], embeddings: npt.ArrayLike, ids: Sequence[str]) -> None:
    """Write ``(N, D) float32`` embeddings and ``N`` unique ids to ``path`` (``.npz`` format, name kept)."""
    matrix = check_matrix(embeddings, "embeddings")
    id_list = check_ids(ids, matrix.shape[0])
    # A unicode array (not object) so loading never needs pickle; dtype=str keeps (0,) arrays unicode too.
    id_array = np.asarray(id_list, dtype=str)
    # Writing to an open handle stops np.savez from appending ".npz" to the temporary name.
    with atomic_open(path, "wb") as handle:
        np.savez(handle, embeddings=matrix, ids=id_array)


class EmbeddingsWriter:
    """The file ``save_embeddings`` writes, streamed block by block (the matrix need not fit in memory):

        with EmbeddingsWriter(path, num_rows, dim) as writer:
            for block, block_ids in shards:
                writer.write(block, block_ids)

    The file appears (atomically) when the block ends with all ``num_rows`` rows written; otherwise no file.
    """

    def __init__(self, path: str | os.PathLike[str], num_rows: int, dim: int) -> None:
        self.path = path
        self.shape = (int(num_rows), int(dim))
        self.ids: list[str] = []
        self._stack = contextlib.ExitStack()
        self._member: IO[bytes] | None = None

    def __enter__(self) -> EmbeddingsWriter:
        handle = self._stack.enter_context(atomic_open(self.path, "wb"))
        self._archive = self._stack.enter_context(zipfile.ZipFile(handle, "w", allowZip64=True))
        self._member = self._stack.enter_context(self._archive.open("embeddings.npy", "w", force_zip64=True))
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_2_0(self._member, {**header, "shape": self.shape})
        return self

    def write(self, embeddings: npt.ArrayLike, ids: Sequence[str]) -> None:
        """Append ``(n, D)`` float32 rows and their ``n`` ids."""
        matrix = check_matrix(embeddings, "embeddings")
        if matrix.shape[1] != self.shape[1] or len(ids) != len(matrix):
            raise ValueError(f"block {matrix.shape} with {len(ids)} ids for a ({self.shape[1]}-d) file")
        if len(self.ids) + len(matrix) > self.shape[0]:
            raise ValueError(f"more than the announced {self.shape[0]} rows")
        assert self._member is not None, "use EmbeddingsWriter in a with-block"
        self._member.write(matrix.tobytes())
        self.ids.extend(ids)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            # Handed on, so that atomic_open discards the partial file.
            self._stack.__exit__(exc_type, exc, tb)
            return
        with self._stack:
            assert self._member is not None
            self._member.close()
            id_list = check_ids(self.ids, self.shape[0])
            with self._archive.open("ids.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(id_list, dtype=str))


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
