"""One writer per directory: an advisory lock on a run directory or a shared cache.

The lock is ``fcntl.flock`` on ``<directory>/.lock``, held while the writing process lives. The kernel
releases it when that process ends, however it ends (exit, exception, ``kill -9``, a crashed machine's
reboot), so a stale lock cannot exist: the next writer simply takes it over. The file itself stays (removing
it would let two writers lock two different files) and records its last holder (pid, host, start time,
what it was doing), which the refusal message names.

Run directories refuse a second writer (two runs in one directory leave a mixed result); shared caches let
a second writer wait for the first (a sweep's jobs then reuse what the first one computed).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class DirectoryLockedError(RuntimeError):
    """Another live process holds the directory's lock; the message names the directory and the holder."""


def is_launch_leader() -> bool:
    """True in a plain run and in the first process of a distributed one (Lightning's launcher, torchrun
    or SLURM, before any process group exists: the ranks come from the environment). The other ranks of a
    distributed run are part of the leader's job: they neither take its locks nor write its files."""
    rank_variables = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")
    return all(os.environ.get(name, "0") == "0" for name in rank_variables)


def describe_holder(text: str) -> str:
    """``pid 123 on host-a since 2026-12-06T07:00:00+00:00 (train)`` from a lock file's content."""
    try:
        holder = json.loads(text)
        return (
            f"pid {holder['pid']} on {holder['host']} since {holder['since']} ({holder.get('purpose', '?')})"
        )
    except (ValueError, KeyError, TypeError):
        return "an unknown process (its lock file records no holder)"


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str], purpose: str, wait: bool = False) -> Iterator[Path]:
    """Hold the lock of ``directory`` (created if needed) for the block; yields the lock file's path.

    ``wait=False`` raises :class:`DirectoryLockedError` at once when another process holds it; ``wait=True``
    logs the holder and blocks until it is free. A filesystem without locks (some network or
    FUSE mounts) gets a warning and no lock.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    path = target / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _acquire(descriptor, path, target, purpose, wait):
            yield path
            return
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "purpose": purpose,
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _acquire(descriptor: int, path: Path, directory: Path, purpose: str, wait: bool) -> bool:
    """Take the lock (True); False where the filesystem has no locks."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        holder = describe_holder(os.pread(descriptor, 4096, 0).decode(errors="replace"))
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            log.warning("%s: this filesystem has no file locks (%s); writing without a lock", path, error)
            return False
        raise
    if not wait:
        raise DirectoryLockedError(
            f"{directory} is being written by {holder}; refusing to write it too ({purpose}): two writers "
            "would leave a mixed result. Wait for that run to end, stop it, or choose another directory "
            f"(e.g. hydra.run.dir=...). The lock ({path}) is released when its process ends."
        )
    log.info("%s: waiting for %s to finish (%s)", directory, holder, purpose)
    started = time.monotonic()
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    log.info("%s: lock taken after %.0f s", directory, time.monotonic() - started)
    return True
