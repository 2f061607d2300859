"""Embeddings on disk in shards, written per rank and batch group, with a manifest written last.

A feature directory holds::

    part-b{shard:06d}-r{rank:03d}-{seq:06d}.npz   embeddings (n, D) float32 + indices (n,) int64
    manifest.json                                 written last, atomically: its presence = a complete cache

Rows are grouped by dataset index: shard ``k`` holds indices ``[k * S, (k + 1) * S)`` (``S``:
``shard_size``), each rank writing its own parts of it. A reader therefore streams the items in dataset
order, one shard in memory at a time, whatever order the ranks produced them in. An index present in
several parts (a ``DistributedSampler`` pads the last batches with repeated items) is kept once.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.io import atomic_open

__all__ = [
    "MANIFEST_FILE",
    "Shard",
    "check_complete",
    "clear_directory",
    "iter_shards",
    "load_features",
    "read_manifest",
    "write_manifest",
    "write_parts",
]

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
_PART = re.compile(r"part-b(\d{6})-r(\d{3})-(\d{6})\.npz")


@dataclass(frozen=True)
class Shard:
    """Consecutive items ``start .. start + len(ids) - 1``: ``embeddings (n, D) float32`` and their ids."""

    start: int
    embeddings: np.ndarray
    ids: list[str]


def part_name(shard: int, rank: int, seq: int) -> str:
    return f"part-b{shard:06d}-r{rank:03d}-{seq:06d}.npz"


def write_parts(
    directory: str | Path,
    embeddings: np.ndarray,
    indices: np.ndarray,
    shard_size: int,
    rank: int,
    seq: int,
) -> list[str]:
    """Write ``embeddings (n, D)`` of dataset ``indices (n,)`` as one part per shard they fall in, each
    atomically; ``seq`` numbers this batch group within ``rank``. Returns the file names."""
    matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
    rows = np.asarray(indices, dtype=np.int64)
    if matrix.ndim != 2 or rows.shape != (matrix.shape[0],):
        raise ValueError(f"embeddings {matrix.shape} and indices {rows.shape} must be (n, D) and (n,)")
    if len(rows) and rows.min() < 0:
        raise ValueError(f"negative dataset index {int(rows.min())}")
    names = []
    shards = rows // shard_size
    for shard in np.unique(shards):
        selected = shards == shard
        name = part_name(int(shard), rank, seq)
        # An open handle stops np.savez from appending ".npz" to the temporary name.
        with atomic_open(Path(directory) / name, "wb") as handle:
            np.savez(handle, embeddings=matrix[selected], indices=rows[selected])
        names.append(name)
    return names


def part_files(directory: str | Path) -> dict[int, list[str]]:
    """The part files in ``directory`` by shard number, names sorted."""
    found: dict[int, list[str]] = {}
    for path in sorted(Path(directory).glob("part-*.npz")):
        match = _PART.fullmatch(path.name)
        if match:
            found.setdefault(int(match.group(1)), []).append(path.name)
    return found


def clear_directory(directory: str | Path) -> int:
    """Remove the manifest, every part and every temporary file an interrupted write left; returns how many
    files went. Run before writing a new set of parts."""
    target = Path(directory)
    if not target.is_dir():
        return 0
    # The manifest first: from here on the directory no longer claims to be complete.
    doomed = [target / MANIFEST_FILE, *target.glob("part-*.npz"), *target.glob(".*.tmp")]
    removed = 0
    for path in doomed:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _part_header(path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of a part's ``embeddings`` and ``indices`` from the array headers, without reading the data."""
    shapes = []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in ("embeddings.npy", "indices.npy"):
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    header = np.lib.format.read_array_header_1_0
                    if version != (1, 0):
                        header = np.lib.format.read_array_header_2_0
                    shape, _, _ = header(handle)
                    shapes.append(tuple(shape))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"feature part {path} is not readable: {error}") from error
    return shapes[0], shapes[1]


def read_part(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D) float32`` embeddings and ``(n,) int64`` indices of one part; ValueError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            embeddings, indices = archive["embeddings"], archive["indices"]
    except FileNotFoundError:
        raise FileNotFoundError(f"feature part {path} is missing") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"feature part {path} is not readable: {error}") from error
    if embeddings.dtype != np.float32 or embeddings.ndim != 2 or indices.shape != (len(embeddings),):
        raise ValueError(
            f"feature part {path}: expected (n, D) float32 embeddings and (n,) indices, got "
            f"{embeddings.dtype} {embeddings.shape} and {indices.shape}"
        )
    return embeddings, indices.astype(np.int64, copy=False)


def check_complete(directory: str | Path, count: int) -> int:
    """Check that the parts in ``directory`` hold every dataset index ``0 .. count - 1`` (duplicates allowed)
    with one dimension; returns that dimension. Reads the indices only, not the embeddings."""
    directory = Path(directory)
    seen = np.zeros(count, dtype=bool)
    dims = set()
    for names in part_files(directory).values():
        for name in names:
            shape, _ = _part_header(directory / name)
            dims.add(shape[1] if len(shape) == 2 else -1)
            with np.load(directory / name, allow_pickle=False) as archive:
                indices = archive["indices"]
            if len(indices) and (indices.min() < 0 or indices.max() >= count):
                raise ValueError(f"{directory / name}: dataset index outside 0..{count - 1}")
            seen[indices] = True
    missing = np.flatnonzero(~seen)
    if len(missing):
        raise ValueError(
            f"{directory}: {len(missing)} of {count} items have no embedding (first missing dataset indices "
            f"{missing[:5].tolist()}); the extraction did not cover the whole dataset"
        )
    if len(dims) != 1 or -1 in dims:
        raise ValueError(f"{directory}: parts disagree on the embedding dimension or are not 2-D: {dims}")
    return dims.pop()


def write_manifest(
    directory: str | Path,
    ids: Sequence[str],
    dim: int,
    shard_size: int,
    fingerprint: str,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` (atomically, last): dimension, count, ids, shard list, fingerprint, dtype,
    creation time and the ``settings`` the fingerprint stands for. Returns its path."""
    directory = Path(directory)
    parts = part_files(directory)
    shards = [
        {"start": start, "stop": min(start + shard_size, len(ids)), "parts": parts.get(shard, [])}
        for shard, start in enumerate(range(0, len(ids), shard_size))
    ]
    manifest = {
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "dim": int(dim),
        "count": len(ids),
        "dtype": "float32",
        "shard_size": int(shard_size),
        "created_at": datetime.now(timezone.utc).isoformat(),
        "settings": dict(settings or {}),
        "shards": shards,
        "ids": list(ids),
    }
    text = json.dumps(manifest, indent=1)
    with atomic_open(directory / MANIFEST_FILE, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return directory / MANIFEST_FILE


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a complete feature directory; FileNotFoundError when there is none (an incomplete or
    interrupted extraction), ValueError naming the file when it is malformed."""
    path = Path(directory) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: {directory} is not a complete feature cache") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    required = ("format", "fingerprint", "dim", "count", "shard_size", "shards", "ids")
    missing = [key for key in required if key not in manifest] if isinstance(manifest, dict) else required
    if missing:
        raise ValueError(f"{path} lacks the field(s) {', '.join(missing)}")
    if manifest["format"] != FORMAT_VERSION:
        raise ValueError(f"{path}: format {manifest['format']}, this version reads {FORMAT_VERSION}")
    if len(manifest["ids"]) != manifest["count"]:
        raise ValueError(f"{path}: {len(manifest['ids'])} ids for count {manifest['count']}")
    return manifest


def _assemble(directory: Path, entry: Mapping[str, Any], dim: int) -> np.ndarray:
    """The rows ``entry["start"] .. entry["stop"] - 1`` of one shard from its parts, duplicates dropped."""
    start, stop = int(entry["start"]), int(entry["stop"])
    rows = np.empty((stop - start, dim), dtype=np.float32)
    filled = np.zeros(stop - start, dtype=bool)
    for name in entry["parts"]:
        embeddings, indices = read_part(directory / name)
        local = indices - start
        if embeddings.shape[1] != dim or (len(local) and (local.min() < 0 or local.max() >= len(rows))):
            raise ValueError(
                f"{directory / name}: rows of dimension {embeddings.shape[1]} or dataset indices outside "
                f"{start}..{stop - 1}, which the manifest assigns it (dimension {dim})"
            )
        # A padded duplicate is the same item embedded again: whichever copy lands last is kept.
        rows[local] = embeddings
        filled[local] = True
    if not filled.all():
        raise ValueError(
            f"{directory}: shard {start}..{stop - 1} lacks {int((~filled).sum())} of its {len(rows)} items"
        )
    return rows


def iter_shards(directory: str | Path) -> Iterator[Shard]:
    """Stream a complete feature directory in dataset order, one shard in memory at a time (for
    catalogues larger than memory). Each :class:`Shard` holds ``(n, D) float32`` embeddings and their ids."""
    directory = Path(directory)
    return _shards(directory, read_manifest(directory))


def _shards(directory: Path, manifest: Mapping[str, Any]) -> Iterator[Shard]:
    ids = manifest["ids"]
    for entry in manifest["shards"]:
        rows = _assemble(directory, entry, int(manifest["dim"]))
        yield Shard(int(entry["start"]), rows, ids[int(entry["start"]) : int(entry["stop"])])


def load_features(directory: str | Path) -> tuple[np.ndarray, list[str]]:
    """All of a complete feature directory in memory: ``(N, D) float32`` embeddings in dataset order and the
    ``N`` ids (``list[str]``)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    embeddings = np.empty((int(manifest["count"]), int(manifest["dim"])), dtype=np.float32)
    for shard in _shards(directory, manifest):
        embeddings[shard.start : shard.start + len(shard.ids)] = shard.embeddings
    return embeddings, list(manifest["ids"])
