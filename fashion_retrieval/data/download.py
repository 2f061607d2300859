"""Fetch the images of a URL catalogue (the real challenge CSVs) into ``images/{products,bundles}/``.

Each row whose image column is an http(s) URL becomes one job; its target is the path the reader resolves
(``resolve_image_path``, inside ``images/{kind}/``; ids are checked first), so a finished download is
loadable as is. Downloads run in a thread pool, skip targets that already decode, retry transient failures
(connection errors, timeouts, HTTP 429 and 5xx) with exponential backoff (or the wait a ``Retry-After``
header asks for, within the same cap), check each body (at most ``max_bytes``, Content-Length, at most
``max_pixels``, decodes as an image) and rename it into place only when complete. Every problem of one
file is that file's failure, listed in ``download_failures.csv`` in the data directory; the run goes on,
unless the first ``give_up_after`` downloads all fail (no network: :class:`DownloadAbortedError`).

The CSVs and the servers are data, not trusted (docs/security.md): connections go only to public
addresses (loopback, private and link-local ones are refused, after any redirect, unless their host is in
``private_hosts``), and redirects only to http(s).
"""

from __future__ import annotations

import csv
import email.utils
import http.client
import io
import ipaddress
import logging
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from PIL import Image, UnidentifiedImageError

from fashion_retrieval.data.catalogue import (
    BUNDLES_FILE,
    PRODUCTS_FILE,
    check_ids,
    read_csv,
    resolve_image_path,
)
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
    ``max_bytes`` and ``max_pixels`` cap one image's body and decoded size (the real images are about
    100 kB and 750 x 1125 pixels); a larger one is that file's failure. ``private_hosts``: host names (as
    written in the URLs) allowed to be on loopback, private or link-local addresses, e.g. a local mirror;
    every other host, in the CSVs or in a redirect, must resolve to a public address.
    ``give_up_after``: abort when the first this-many downloads all fail (0: never).
    """

    files: Sequence[ImageKind] = ("products", "bundles")
    workers: int = 16
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 30.0
    # Some CDNs refuse urllib's default agent.
    user_agent: str = "fashion-retrieval"
    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    private_hosts: Sequence[str] = ()
    give_up_after: int = 50


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
    """A failure that another attempt would repeat (404, a body that is not an image or too large, an
    address that is not public)."""


class DownloadAbortedError(RuntimeError):
    """The download cannot work at all (the first downloads all fail: no network): stop, say why."""


class DownloadIncompleteError(RuntimeError):
    """The download ended with images missing (listed in the failures file)."""


def is_public_address(address: str) -> bool:
    """True for a global unicast IP address; False for loopback, private, link-local, multicast, reserved
    and unspecified ones (an IPv4-mapped IPv6 address is judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def public_only(
    create: Callable[..., socket.socket], private_hosts: frozenset[str]
) -> Callable[..., socket.socket]:
    """Wrap a ``socket.create_connection`` so that it refuses (closes, raises :class:`PermanentError`) a
    connection whose peer is not public, unless the host asked for is in ``private_hosts``. Checked on the
    connected socket, so a name that resolves differently on a second lookup cannot slip through."""

    def create_connection(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connection = create(address, *args, **kwargs)
        peer = connection.getpeername()[0]
        if address[0] not in private_hosts and not is_public_address(peer):
            connection.close()
            raise PermanentError(
                f"refused: {address[0]} is at {peer}, not a public address (download.private_hosts allows "
                "a host there)"
            )
        return connection

    return create_connection


class _PublicOnlyMixin(urllib.request.AbstractHTTPHandler):
    """Every connection this handler opens goes through :func:`public_only`."""

    private_hosts: frozenset[str] = frozenset()

    def do_open(
        self,
        http_class: Callable[..., http.client.HTTPConnection],
        req: urllib.request.Request,
        **kwargs: object,
    ) -> http.client.HTTPResponse:  # type: ignore[override]
        private_hosts = self.private_hosts

        def guarded(host: str, **connection_args: object) -> http.client.HTTPConnection:
            connection = http_class(host, **connection_args)
            # http.client's own hook for how the socket is made (its tests replace it the same way).
            connection._create_connection = public_only(connection._create_connection, private_hosts)  # type: ignore[attr-defined]
            return connection

        return super().do_open(guarded, req, **kwargs)


class _PublicHTTPHandler(_PublicOnlyMixin, urllib.request.HTTPHandler):
    pass


class _PublicHTTPSHandler(_PublicOnlyMixin, urllib.request.HTTPSHandler):
    pass


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only (urllib also follows ftp); the target's address is checked on connect."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlparse(newurl).scheme not in ("http", "https"):
            fp.close()
            raise PermanentError(f"refused: redirect to {newurl} (only http and https)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def guarded_opener(private_hosts: Sequence[str] = ()) -> urllib.request.OpenerDirector:
    """A urllib opener that connects only to public addresses (and ``private_hosts``) and follows
    redirects to http(s) only; proxies from the environment are used as usual (a proxy on a private
    network must be listed in ``private_hosts``)."""
    allowed = frozenset(private_hosts)
    handlers = []
    for handler_class in (_PublicHTTPHandler, _PublicHTTPSHandler):
        handler = handler_class()
        handler.private_hosts = allowed
        handlers.append(handler)
    return urllib.request.build_opener(*handlers, _WebRedirects())


def list_jobs(data_dir: Path, files: Sequence[ImageKind] = ("products", "bundles")) -> list[DownloadJob]:
    """One job per CSV row whose image is an http(s) URL (local paths need no download), in file order;
    a target listed twice is fetched once."""
    jobs: dict[Path, DownloadJob] = {}
    for kind in files:
        if kind not in SOURCES:
            raise ValueError(f"download: unknown file {kind!r}; choose from {list(SOURCES)}")
        file_name, id_column, url_column = SOURCES[kind]
        frame = read_csv(data_dir / file_name, (id_column, url_column))
        check_ids(frame, id_column, data_dir / file_name)  # ids become file names
        for asset_id, url in zip(frame[id_column], frame[url_column]):
            if urlparse(url).scheme in ("http", "https"):
                target = resolve_image_path(data_dir, url, kind, asset_id)
                jobs.setdefault(target, DownloadJob(kind, asset_id, url, target))
    return list(jobs.values())


def image_bytes_problem(data: bytes, max_pixels: int = DownloadSettings.max_pixels) -> str | None:
    """Why ``data`` is not a complete image of at most ``max_pixels`` pixels, or ``None``. The size is read
    from the header before anything is decoded; then a full decode, because ``verify()`` does not notice a
    JPEG cut short."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                return f"too large: {width} x {height} pixels (download.max_pixels={max_pixels})"
            image.load()
    except UnidentifiedImageError:
        return "not an image"
    except Image.DecompressionBombError as error:  # beyond PIL's own limit: not even opened
        return f"decompression bomb ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return f"broken image ({error})"
    return None


def is_complete(path: Path, max_pixels: int = DownloadSettings.max_pixels) -> bool:
    """True when ``path`` exists and decodes: a finished earlier download."""
    return path.is_file() and image_bytes_problem(path.read_bytes(), max_pixels) is None


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
    """One attempt: the body of ``url`` (at most ``max_bytes``), checked against Content-Length and decoded
    as an image of at most ``max_pixels``; only public addresses are contacted (:func:`guarded_opener`)."""
    request = urllib.request.Request(url, headers={"User-Agent": settings.user_agent})
    deadline = time.monotonic() + settings.timeout
    too_large = f"body larger than download.max_bytes={settings.max_bytes}"
    try:
        with guarded_opener(settings.private_hosts).open(request, timeout=settings.timeout) as response:
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > settings.max_bytes:
                raise PermanentError(f"{too_large} (Content-Length {expected})")
            chunks, received = [], 0
            # The socket timeout bounds each read; the deadline bounds a server that trickles bytes.
            while chunk := response.read(CHUNK_BYTES):
                chunks.append(chunk)
                received += len(chunk)
                if received > settings.max_bytes:  # a body without (or lying about) its length
                    raise PermanentError(too_large)
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
    except urllib.error.URLError as error:
        if isinstance(error.reason, socket.gaierror):  # no DNS, or no such host: retrying will not help
            raise PermanentError(f"host {urlparse(url).hostname!r} not resolved ({error.reason})") from error
        raise RetryableError(f"{type(error).__name__}: {error.reason}") from error
    except (http.client.HTTPException, OSError) as error:
        # TimeoutError and ConnectionError (a reset mid-body) are OSErrors.
        raise RetryableError(f"{type(error).__name__}: {getattr(error, 'reason', error)}") from error
    data = b"".join(chunks)
    # read(n) ends quietly where a body shorter than its Content-Length stops: compare the lengths here.
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise RetryableError(f"truncated body ({len(data)} of {expected} bytes)")
    problem = image_bytes_problem(data, settings.max_pixels)
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


def download_one(
    job: DownloadJob, settings: DownloadSettings, stop: threading.Event | None = None
) -> Failure | None:
    """Fetch ``job`` with retries and write it atomically; returns the failure, or ``None`` on success.
    ``stop`` (set when the whole download aborts) ends the retries early."""
    attempts = 0
    while True:
        attempts += 1
        try:
            data = fetch(job.url, settings)
        except PermanentError as error:
            return Failure(job, str(error), attempts)
        except RetryableError as error:
            if attempts > settings.retries or (stop is not None and stop.is_set()):
                return Failure(job, str(error), attempts)
            log.debug("download: %s attempt %d failed (%s); retrying", job.url, attempts, error)
            time.sleep(backoff_seconds(attempts, settings, error.retry_after))
            continue
        with atomic_path(job.target) as tmp:
            tmp.write_bytes(data)
        return None


Outcome = Failure | Literal["skipped", "downloaded"]


def _process(job: DownloadJob, settings: DownloadSettings, stop: threading.Event) -> Outcome:
    """One job's outcome; the completeness check runs here so that resuming is parallel too. Whatever goes
    wrong with one file (a decoder's own error included) is that file's failure, never the run's."""
    if stop.is_set():
        return Failure(job, "not attempted: the download was aborted", 0)
    try:
        if is_complete(job.target, settings.max_pixels):
            return "skipped"
        return download_one(job, settings, stop) or "downloaded"
    except Exception as error:  # one file's problem must not end the other files' downloads
        return Failure(job, f"{type(error).__name__}: {error}", 1)


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
    failed) under ``data_dir``; returns the counts. Raises :class:`DownloadAbortedError`, after writing the
    failures file, when the first ``give_up_after`` downloads all fail (an unresolvable host is not retried,
    so with no network this takes seconds).
    """
    data_dir = Path(data_dir)
    settings = settings or DownloadSettings()
    jobs = list_jobs(data_dir, settings.files)
    report = DownloadReport(failures_path=data_dir / FAILURES_FILE)
    log.info("download: %d image URLs in %s, %d workers", len(jobs), data_dir, settings.workers)
    stop = threading.Event()
    progress = Progress(len(jobs))
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        futures = [pool.submit(_process, job, settings, stop) for job in jobs]
        fetched = 0  # finished jobs other than skips: what the give-up rule judges
        for future in as_completed(futures):
            outcome = future.result()
            if isinstance(outcome, Failure):
                report.failures.append(outcome)
            elif outcome == "skipped":
                report.skipped += 1
            else:
                report.downloaded += 1
            fetched += outcome != "skipped"
            if not stop.is_set() and 0 < settings.give_up_after == fetched and report.downloaded == 0:
                stop.set()  # the jobs not started yet return at once; those in flight stop retrying
            progress.update(report)
    # Completion order depends on the network; the report follows the CSVs' order.
    order = {job.target: position for position, job in enumerate(jobs)}
    report.failures.sort(key=lambda failure: order[failure.job.target])
    write_failures(report.failures_path, report.failures)
    if stop.is_set():
        first = report.failures[0]
        raise DownloadAbortedError(
            f"download: the first {settings.give_up_after} downloads all failed (e.g. {first.job.url}: "
            f"{first.reason}), so the rest were not attempted; is the network or the server down? The "
            f"failures are listed in {report.failures_path}; rerun `download` once it is reachable."
        )
    if report.failures:
        log.warning("download: %d images failed; see %s", report.failed, report.failures_path)
    return report


class Progress:
    """Log lines of a long download: at every 5% and at least every ``every`` seconds, with rate and ETA.
    Plain log lines (no redrawn bar), so a CI log stays short and readable."""

    def __init__(self, total: int, every: float = 30.0) -> None:
        self.total, self.every = total, every
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, report: DownloadReport) -> None:
        self.done += 1
        now = time.monotonic()
        step = max(1, self.total // 20)
        if self.done % step and now - self.last < self.every and self.done != self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info("download: %d/%d (%s), %.1f files/s, %.0f s left", self.done, self.total, report, rate, eta)
