"""Progress bars for long loops (catalogue embedding, index building): a tqdm bar with rate and ETA on an
interactive terminal, nothing in CI logs or redirected output (a bar rewritten in place turns into
thousands of lines there). ``FASHION_RETRIEVAL_PROGRESS=1`` / ``0`` forces it on / off."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

PROGRESS_ENV = "FASHION_RETRIEVAL_PROGRESS"


def show_progress() -> bool:
    """Whether long loops draw a bar: ``FASHION_RETRIEVAL_PROGRESS`` when set (``1``/``0``), else only when
    stderr is a terminal and ``CI`` is not set (GitHub Actions, GitLab and most CI services set it)."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    return sys.stderr.isatty() and not ci


def progress(iterable: Iterable[T], total: int | None, description: str, unit: str = "it") -> Iterator[T]:
    """``iterable`` with a bar (:func:`show_progress`) of ``total`` steps: count, rate and ETA."""
    with tqdm(iterable, total=total, desc=description, unit=unit, disable=not show_progress()) as bar:
        yield from bar


def progress_bar(total: int | None, description: str, unit: str = "it") -> tqdm:
    """A bar to ``update(n)`` by hand (e.g. rows added per chunk), shown as :func:`show_progress` says;
    use it as a context manager so it closes."""
    return tqdm(total=total, desc=description, unit=unit, unit_scale=True, disable=not show_progress())
