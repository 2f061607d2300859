"""Fetch the images of a URL catalogue (the real challenge CSVs) into ``images/{products,bundles}/``.

Each row whose image column is an http(s) URL becomes one job; its target is the path the reader resolves
(``resolve_image_path``), so a finished download is loadable as is. Downloads run in a thread pool, skip
targets that already decode, retry transient failures (connection errors, timeouts, HTTP 429 and 5xx) with
exponential backoff (or the wait a ``Retry-After`` header asks for, within the same cap), check each body
(Content-Length, decodes as an image) and rename it into place only when complete. Jobs that still fail
are listed in ``download_failures.csv`` in the data directory.
"""

from __future__ import annotations

import csv
import email.utils
import http.client
import io
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from PIL import Image, UnidentifiedImageError

from fashion_retrieval.data.catalogue import BUNDLES_FILE, PRODUCTS_FILE, read_csv, resolve_image_path
from fashion_retrieval.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

ImageKind = Literal["products", "bundles"]
# kind -> (CSV file, id column, URL column)
SOURCES: dict[ImageKind, tuple[str, str, str]] = {
    "products": (PRODUCTS_FILE, "product_asset_id", "product_image_url"),
    "bundles": (BUNDLES_FILE, "bundle_asset_id", "bundle_image_url"),
}
FAILURES_FILE = "download_failures.csv"
FAILURE_COLUMNS = ("kind", "asset_id", "url", "reason", "attempts")
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class DownloadSettings:
    """How to fetch (``conf/config.yaml``, ``download:``).

    ``retries`` are attempts after the first; the n-th retry waits ``backoff * 2**(n-1)`` seconds (at most
    ``max_backoff``, with jitter so that many workers do not hammer a recovering server in step), or what
    the response's ``Retry-After`` header asks for, also at most ``max_backoff``.
    ``timeout`` bounds each socket operation and the whole request.
    """

    files: Sequence[ImageKind] = ("products", "bundles")
    workers: int = 16
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 30.0
    # Some CDNs refuse urllib's default agent.
    user_agent: str = "fashion-retrieval"


@dataclass(frozen=True)
class DownloadJob:
    kind: ImageKind
    asset_id: str
    url: str
    target: Path


@dataclass(frozen=True)
class Failure:
    job: DownloadJob
    reason: str
    attempts: int


@dataclass
class DownloadReport:
    downloaded: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    failures_path: Path | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    def __str__(self) -> str:
        return f"{self.downloaded} downloaded, {self.skipped} already complete, {self.failed} failed"


class RetryableError(Exception):
    """A failure worth another attempt: the server or the network may do better next time.

    ``retry_after``: seconds the server asked us to wait (its ``Retry-After`` header), if it said.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that another attempt would repeat (404, a body that is not an image)."""


def list_jobs(data_dir: Path, files: Sequence[ImageKind] = ("products", "bundles")) -> list[DownloadJob]:
    """One job per CSV row whose image is an http(s) URL (local paths need no download), in file order;
    a target listed twice is fetched once."""
    jobs: dict[Path, DownloadJob] = {}
    for kind in files:
        if kind not in SOURCES:
            raise ValueError(f"download: unknown file {kind!r}; choose from {list(SOURCES)}")
        file_name, id_column, url_column = SOURCES[kind]
        frame = read_csv(data_dir / file_name, (id_column, url_column))
        for asset_id, url in zip(frame[id_column], frame[url_column]):
            if urlparse(url).scheme in ("http", "https"):
                target = resolve_image_path(data_dir, url, kind, asset_id)
                jobs.setdefault(target, DownloadJob(kind, asset_id, url, target))
    return list(jobs.values())


def image_bytes_problem(data: bytes) -> str | None:
    """Why ``data`` is not a complete image, or ``None``. A full decode, because ``verify()`` does not
    notice a JPEG cut short."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as error:
        return f"broken image ({error})"
    return None


def is_complete(path: Path) -> bool:
    """True when ``path`` exists and decodes: a finished earlier download."""
    return path.is_file() and image_bytes_problem(path.read_bytes()) is None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (``"120"``) or an HTTP date (``"Wed, 21
    Oct 2015 07:28:00 GMT"``, relative to ``now``, epoch seconds, default the clock); a date in the past
    is 0. ``None`` when the header is absent or unparseable, so the caller falls back to its backoff."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if date.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form without a zone is read as such
        date = date.replace(tzinfo=timezone.utc)
    return max(0.0, date.timestamp() - (time.time() if now is None else now))


def fetch(url: str, settings: DownloadSettings) -> bytes:
    """One attempt: the body of ``url``, checked against Content-Length and decoded as an image."""
    request = urllib.request.Request(url, headers={"User-Agent": settings.user_agent})
    deadline = time.monotonic() + settings.timeout
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            expected = response.headers.get("Content-Length")
            chunks = []
            # The socket timeout bounds each read; the deadline bounds a server that trickles bytes.
            while chunk := response.read(CHUNK_BYTES):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise RetryableError(f"slower than the {settings.timeout}s timeout")
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code}"
        if error.code == 429 or error.code >= 500:
            retry_after = parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
            raise RetryableError(reason, retry_after) from error
        raise PermanentError(reason) from error
    except http.client.IncompleteRead as error:  # a chunked body cut short
        raise RetryableError(f"truncated body ({len(error.partial)} bytes received)") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        # URLError wraps refused connections and DNS errors; TimeoutError and ConnectionError are OSErrors.
        raise RetryableError(f"{type(error).__name__}: {getattr(error, 'reason', error)}") from error
    data = b"".join(chunks)
    # read(n) ends quietly where a body shorter than its Content-Length stops: compare the lengths here.
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise RetryableError(f"truncated body ({len(data)} of {expected} bytes)")
    problem = image_bytes_problem(data)
    if problem is not None:
        raise PermanentError(problem)
    return data


def backoff_seconds(retry: int, settings: DownloadSettings, retry_after: float | None = None) -> float:
    """Wait before retry number ``retry`` (1-based): the server's ``retry_after`` seconds when it gave
    some, else doubling with jitter in [50%, 100%]; either way at most ``max_backoff``."""
    if retry_after is not None:
        # No jitter: the server chose the moment, and waiting less than it asked earns another 429/503.
        return min(retry_after, settings.max_backoff)
    delay = min(settings.backoff * 2 ** (retry - 1), settings.max_backoff)
    return delay * (0.5 + random.random() / 2)


def download_one(job: DownloadJob, settings: DownloadSettings) -> Failure | None:
    """Fetch ``job`` with retries and write it atomically; returns the failure, or ``None`` on success."""
    attempts = 0
    while True:
        attempts += 1
        try:
            data = fetch(job.url, settings)
        except PermanentError as error:
            return Failure(job, str(error), attempts)
        except RetryableError as error:
            if attempts > settings.retries:
                return Failure(job, str(error), attempts)
            log.debug("download: %s attempt %d failed (%s); retrying", job.url, attempts, error)
            time.sleep(backoff_seconds(attempts, settings, error.retry_after))
            continue
        with atomic_path(job.target) as tmp:
            tmp.write_bytes(data)
        return None


def _process(job: DownloadJob, settings: DownloadSettings) -> Failure | Literal["skipped", "downloaded"]:
    """One job's outcome; the completeness check runs here so that resuming is parallel too."""
    if is_complete(job.target):
        return "skipped"
    return download_one(job, settings) or "downloaded"


def write_failures(path: Path, failures: Sequence[Failure]) -> None:
    """The failures report (``FAILURE_COLUMNS``), rewritten every run so that it never lists stale rows."""
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FAILURE_COLUMNS)
        for failure in failures:
            job = failure.job
            writer.writerow([job.kind, job.asset_id, job.url, failure.reason, failure.attempts])


def download_images(data_dir: str | Path, settings: DownloadSettings | None = None) -> DownloadReport:
    """Download every URL image of ``data_dir``'s catalogue CSVs that is not already complete.

    Writes ``images/{kind}/{asset_id}.jpg`` files and ``download_failures.csv`` (header only when nothing
    failed) under ``data_dir``; returns the counts.
    """
    data_dir = Path(data_dir)
    settings = settings or DownloadSettings()
    jobs = list_jobs(data_dir, settings.files)
    report = DownloadReport(failures_path=data_dir / FAILURES_FILE)
    log.info("download: %d image URLs in %s, %d workers", len(jobs), data_dir, settings.workers)
    progress_every = max(1, len(jobs) // 20)
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        futures = [pool.submit(_process, job, settings) for job in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            if isinstance(outcome, Failure):
                report.failures.append(outcome)
            elif outcome == "skipped":
                report.skipped += 1
            else:
                report.downloaded += 1
            if done % progress_every == 0 or done == len(jobs):
                log.info("download: %d/%d (%s)", done, len(jobs), report)
    # Completion order depends on the network; the report follows the CSVs' order.
    order = {job.target: position for position, job in enumerate(jobs)}
    report.failures.sort(key=lambda failure: order[failure.job.target])
    write_failures(report.failures_path, report.failures)
    if report.failures:
        log.warning("download: %d images failed; see %s", report.failed, report.failures_path)
    return report
