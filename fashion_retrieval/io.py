"""Atomic file output (a reader never sees a half-written file, an interrupted write leaves no debris),
YAML read as data, and content digests of input files. Names from data (ids) become file names only through
:func:`contained_path`, which keeps them inside their folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Use it for writers that want a file name (``faiss.write_index``, ``torch.save``). The temporary file is
    in the target's own folder, so the rename never crosses filesystems (a cross-device move copies, and
    a full disk would leave a truncated file under the final name). ``durable``: flush the file to disk
    before the rename and the folder entry after it (checkpoints: a crash of the machine right after the
    rename still leaves the new file or the old one, never an empty one).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the result the permissions an ordinary open() would.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        tmp.replace(target)
        if durable:
            _fsync(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: object) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it onto ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:  # type: ignore[call-overload]
        yield handle


def write_json(path: str | os.PathLike[str], content: Any) -> None:
    """Write ``content`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(content, handle, indent=2)
        handle.write("\n")


def write_yaml(path: str | os.PathLike[str], content: Any) -> None:
    """Write plain data (mappings, lists, scalars) as YAML, keys in their order, atomically."""
    with atomic_open(path, "w") as handle:
        yaml.safe_dump(content, handle, sort_keys=False)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file as plain data: the safe loader (no tags that build objects), libyaml's C one when PyYAML
    has it (a run's 12 kB resolved config: about six times faster than the Python one)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A name read from data that may become a file name: letters, digits, ``_``, ``-`` and ``.``, starting with
# a letter or digit (so never ``.``, ``..``, a hidden file or an option), at most 128 characters. The
# challenge's ids (``I_``/``B_`` + 12 hex) are such names; a slash or a backslash is not (docs/security.md).
# A run directory's resolved config: written by the run machinery, read by `report`, `reproduce` and the
# Retriever (which sits below both, hence here).
RUN_CONFIG_FILE = "config_resolved.yaml"
# The keys with which a config asks Hydra to build or call something: never taken from files or from overrides
# recorded in them (docs/security.md).
HYDRA_BUILD_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_name(name: str) -> bool:
    """True when ``name`` matches :data:`SAFE_NAME`: usable as one path component as it is."""
    return SAFE_NAME.fullmatch(name) is not None


def contained_path(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder / name``, or ``ValueError`` when it would lead outside ``folder`` (an absolute ``name``,
    ``..`` components). Checked on the words of the path, not on the disk, so it needs no file to exist
    and a folder that is a symlink stays usable."""
    if is_safe_name(name):
        # One component without a separator or a leading dot: inside by construction (a catalogue's
        # thousands of image paths skip the normalisation below, most of their load time).
        return Path(folder) / name
    base = Path(os.path.normpath(Path(folder).absolute()))  # normpath drops ".." without reading the disk
    if Path(name).is_absolute() or base not in Path(os.path.normpath(base / name)).parents:
        raise ValueError(f"{name!r} leads outside {folder}")
    return Path(folder) / name


# (resolved path, size, mtime_ns, inode) -> SHA-256: a file is hashed once per process while it stays
# unchanged (a file replaced by a rename gets a new inode, whatever its size and time).
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def content_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (:func:`file_digest`), memoised per ``(path, size, mtime_ns)``.

    The digest, not the size and time, is what callers key on (a copied or regenerated file can keep
    both); the size and time only tell when the memoised digest may be reused. Used wherever a cache is
    keyed by an image's content: detections (``detection/cache.py``) and features (``features/``).
    """
    resolved = os.path.realpath(path)
    stat = Path(resolved).stat()
    key = (resolved, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = file_digest(resolved)
    return digest


def contents_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One SHA-256 over the :func:`content_digest` of each file of ``paths``, in order: it changes when any
    file's bytes change, or the order does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(content_digest(path).encode())
    return digest.hexdigest()
