"""``download``: against a local HTTP server that misbehaves in every way the real CDN might."""

from __future__ import annotations

import csv
import email.utils
import io
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from fashion_retrieval.data import download
from fashion_retrieval.data.catalogue import CatalogueError
from fashion_retrieval.data.download import (
    FAILURE_COLUMNS,
    FAILURES_FILE,
    DownloadAbortedError,
    DownloadIncompleteError,
    DownloadSettings,
    download_images,
    is_public_address,
    list_jobs,
    parse_retry_after,
)
from fashion_retrieval.pipelines.download import download as download_stage

# Short enough that the whole file runs in a few seconds; the slow route sleeps past the timeout. The test
# server is on 127.0.0.1, a loopback address: that host (only) is allowed.
LOCAL = ["127.0.0.1"]
SETTINGS = DownloadSettings(
    workers=4, retries=2, backoff=0.01, max_backoff=0.02, timeout=0.5, private_hosts=LOCAL
)
SLOW_SECONDS = 1.0


def jpeg_bytes(value: int = 120, size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` pixels with almost no data: PIL opens it from its header."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = b""
    for name, data in ((b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64))):
        chunks += struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))
    return b"\x89PNG\r\n\x1a\n" + chunks


class Server(ThreadingHTTPServer):
    """Counts requests per path; a client that gave up on a slow response is not an error."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class Handler(BaseHTTPRequestHandler):
    """Routes by the first path segment: good, slow (first request only), missing (404), flaky (500 once),
    busy (429 once), truncated (Content-Length larger than the body), html (200 but not an image); and,
    once each before a good image, Retry-After as seconds (later: 503, 2 s), as an HTTP date an hour ahead
    (dated: 429) and unparseable (bogus: 503)."""

    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.hits[path] += 1
            hits = self.server.hits[path]
        route = path.strip("/").split("/")[0]
        if route == "missing":
            self.send_error(404)
        elif route == "flaky" and hits == 1:
            self.send_error(500)
        elif route == "busy" and hits == 1:
            self.send_error(429)
        elif route in RETRY_AFTER and hits == 1:
            self.send_response(429 if route == "dated" else 503)
            self.send_header("Retry-After", RETRY_AFTER[route]())
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "html":
            self.reply(b"<html><body>Access denied</body></html>", "text/html")
        elif route == "big":  # honest Content-Length, over the test's max_bytes
            self.reply(b"\xff" * 5000, "image/jpeg")
        elif route == "bigstream":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\xff" * 5000)
        elif route == "huge":  # a small file that decodes to 400 x 300 pixels
            self.reply(jpeg_bytes(size=(300, 400)), "image/jpeg")
        elif route == "giant":  # a header claiming 10000 x 10000 pixels, within PIL's own limit
            self.reply(png_header(10000, 10000), "image/png")
        elif route == "bomb":  # a header claiming 30000 x 30000 pixels, beyond PIL's own limit
            self.reply(png_header(30000, 30000), "image/png")
        elif route == "redirect":  # /redirect/<host>/<rest>: to http://<host>:<this port>/<rest>
            _, _, host, rest = path.split("/", 3)
            self.send_response(302)
            self.send_header("Location", f"http://{host}:{self.server.server_port}/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x.jpg")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "truncated":
            body = jpeg_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
        else:
            if route == "slow" and hits == 1:
                time.sleep(SLOW_SECONDS)
            self.reply(jpeg_bytes(), "image/jpeg")

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


RETRY_AFTER = {
    "later": lambda: "2",
    "dated": lambda: email.utils.formatdate(time.time() + 3600, usegmt=True),
    "bogus": lambda: "soon",
}


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_catalogue(root: Path, base: str) -> Path:
    """Products and bundles covering every route, plus one local-path product that needs no download."""
    products = [
        f"I_good1,{base}/good/1.jpg?w=400&v=3,SHIRT",
        f"I_good2,{base}/good/2.jpg?w=400,TROUSERS",
        f"I_slow,{base}/slow/1.jpg?w=400,SHOES",
        f"I_missing,{base}/missing/1.jpg,HAT",
        f"I_flaky,{base}/flaky/1.jpg,BELT",
        f"I_busy,{base}/busy/1.jpg,BOOTS",
        f"I_truncated,{base}/truncated/1.jpg,SKIRT",
        f"I_html,{base}/html/1.jpg,DRESS",
        "I_local,images/products/I_local.jpg,SCARF",
    ]
    bundles = [f"B_good,1,{base}/good/bundle.jpg?ts=1", f"B_flaky,2,{base}/flaky/bundle.jpg"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "product_dataset.csv").write_text(
        "\n".join(["product_asset_id,product_image_url,product_description", *products]) + "\n"
    )
    (root / "bundles_dataset.csv").write_text(
        "\n".join(["bundle_asset_id,bundle_id_section,bundle_image_url", *bundles]) + "\n"
    )
    return root


def read_failures(root: Path) -> dict[str, dict[str, str]]:
    with open(root / FAILURES_FILE, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == FAILURE_COLUMNS
        return {row["asset_id"]: row for row in reader}


def test_jobs_are_the_url_rows_at_the_readers_paths(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path / "data", "https://cdn.example.com")
    jobs = list_jobs(root)
    assert [job.asset_id for job in jobs] == [
        *("I_good1", "I_good2", "I_slow", "I_missing", "I_flaky", "I_busy", "I_truncated", "I_html"),
        *("B_good", "B_flaky"),
    ]
    assert jobs[0].target == root / "images" / "products" / "I_good1.jpg"
    assert jobs[-1].target == root / "images" / "bundles" / "B_flaky.jpg"
    assert [job.kind for job in list_jobs(root, ["bundles"])] == ["bundles", "bundles"]
    with pytest.raises(ValueError, match="unknown file"):
        list_jobs(root, ["shoes"])  # type: ignore[list-item]


def test_download_retries_validates_reports_and_resumes(tmp_path: Path, server: Server) -> None:
    root = write_catalogue(tmp_path / "data", f"http://127.0.0.1:{server.server_port}")
    report = download_images(root, SETTINGS)

    downloaded = ["I_good1", "I_good2", "I_slow", "I_flaky", "I_busy"]
    assert (report.downloaded, report.skipped, report.failed) == (7, 0, 3)
    for asset_id in downloaded:
        with Image.open(root / "images" / "products" / f"{asset_id}.jpg") as image:
            assert image.size == (12, 16)
    assert (root / "images" / "bundles" / "B_good.jpg").is_file()
    assert (root / "images" / "bundles" / "B_flaky.jpg").is_file()
    for asset_id in ("I_missing", "I_truncated", "I_html", "I_local"):
        assert not (root / "images" / "products" / f"{asset_id}.jpg").exists()
    assert not list(root.rglob("*.tmp")), "a temporary file was left behind"

    failures = read_failures(root)
    assert sorted(failures) == ["I_html", "I_missing", "I_truncated"]
    assert failures["I_missing"]["reason"] == "HTTP 404"
    assert failures["I_missing"]["attempts"] == "1"  # a 404 is not retried
    assert failures["I_html"]["reason"] == "not an image"
    assert failures["I_html"]["attempts"] == "1"
    assert failures["I_truncated"]["reason"].startswith("truncated body")
    assert failures["I_truncated"]["attempts"] == str(SETTINGS.retries + 1)
    assert failures["I_truncated"]["url"].endswith("/truncated/1.jpg")
    assert server.hits["/missing/1.jpg"] == 1
    assert server.hits["/slow/1.jpg"] == 2  # timed out once, then succeeded
    assert server.hits["/flaky/1.jpg"] == 2  # 500, then 200
    assert server.hits["/busy/1.jpg"] == 2  # 429, then 200

    # Resuming: complete files are not fetched again; only the failures are retried.
    server.hits.clear()
    again = download_images(root, SETTINGS)
    assert (again.downloaded, again.skipped, again.failed) == (0, 7, 3)
    assert not any(path.startswith(("/good", "/slow", "/flaky", "/busy")) for path in server.hits)
    assert sorted(read_failures(root)) == ["I_html", "I_missing", "I_truncated"]


def test_a_broken_existing_file_is_downloaded_again(tmp_path: Path, server: Server) -> None:
    root = write_catalogue(tmp_path / "data", f"http://127.0.0.1:{server.server_port}")
    target = root / "images" / "products" / "I_good1.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(jpeg_bytes()[:200])  # what an interrupted non-atomic download would leave
    settings = DownloadSettings(files=["products"], workers=2, retries=0, timeout=0.5, private_hosts=LOCAL)
    report = download_images(root, settings)
    assert server.hits["/good/1.jpg"] == 1
    with Image.open(target) as image:
        image.load()
    assert report.failed == 6  # slow, flaky and busy (no retry left), missing, truncated, html


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp() - 30
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 30.0
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now) == 30.0  # RFC 850, still legal
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0  # already past: retry now
    for unusable in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(unusable, now) is None, unusable


def test_retry_after_is_honoured_and_capped(tmp_path: Path, server: Server, monkeypatch) -> None:
    """The wait before the retry is the server's Retry-After (seconds or date), capped by max_backoff; an
    unparseable one falls back to the jittered backoff. Waits are recorded, not slept."""
    base = f"http://127.0.0.1:{server.server_port}"
    root = tmp_path / "data"
    root.mkdir()
    (root / "product_dataset.csv").write_text(
        "product_asset_id,product_image_url,product_description\n"
        f"I_later,{base}/later/1.jpg,SHIRT\nI_dated,{base}/dated/1.jpg,HAT\nI_bogus,{base}/bogus/1.jpg,BELT\n"
    )
    waits: list[float] = []
    monkeypatch.setattr(
        download, "time", SimpleNamespace(sleep=waits.append, monotonic=time.monotonic, time=time.time)
    )
    # One worker: the jobs, and so the waits, come in file order.
    settings = DownloadSettings(
        files=["products"], workers=1, retries=1, backoff=0.01, max_backoff=5.0, private_hosts=LOCAL
    )
    report = download_images(root, settings)
    assert (report.downloaded, report.failed) == (3, 0)
    assert all(server.hits[f"/{route}/1.jpg"] == 2 for route in RETRY_AFTER)
    later, dated, bogus = waits
    assert later == 2.0
    assert dated == 5.0  # an hour ahead, capped
    assert 0.005 <= bogus <= 0.01  # backoff * [50%, 100%]


def write_products(root: Path, rows: dict[str, str]) -> Path:
    """A product CSV of ``asset_id -> url`` rows (no bundles file: ``files=[products]``)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{asset_id},{url},SHIRT" for asset_id, url in rows.items()]
    (root / "product_dataset.csv").write_text(
        "\n".join(["product_asset_id,product_image_url,product_description", *lines]) + "\n"
    )
    return root


def test_every_per_file_problem_is_that_files_failure(tmp_path: Path, server: Server) -> None:
    """Oversized bodies (with and without Content-Length), too many pixels (decoded, or only claimed by a
    header) and a decompression bomb beyond PIL's own limit are each listed as their file's failure; the
    good file is downloaded."""
    base = f"http://127.0.0.1:{server.server_port}"
    routes = ["good", "big", "bigstream", "huge", "giant", "bomb"]
    root = write_products(tmp_path / "data", {f"I_{route}": f"{base}/{route}/1.jpg" for route in routes})
    settings = DownloadSettings(files=["products"], workers=2, retries=0, timeout=2, private_hosts=LOCAL)
    small = DownloadSettings(**{**settings.__dict__, "max_bytes": 4000, "max_pixels": 100_000})
    report = download_images(root, small)
    failures = read_failures(root)
    assert (report.downloaded, report.failed) == (1, 5)
    assert failures["I_big"]["reason"] == "body larger than download.max_bytes=4000 (Content-Length 5000)"
    assert failures["I_bigstream"]["reason"] == "body larger than download.max_bytes=4000"
    assert failures["I_huge"]["reason"] == "too large: 400 x 300 pixels (download.max_pixels=100000)"
    assert failures["I_giant"]["reason"] == "too large: 10000 x 10000 pixels (download.max_pixels=100000)"
    assert failures["I_bomb"]["reason"].startswith("decompression bomb (Image size (900000000 pixels)")
    assert not list(root.rglob("*.tmp"))


def test_only_the_listed_private_hosts_are_reached(tmp_path: Path, server: Server) -> None:
    """Loopback is refused unless its host is listed; a redirect from the allowed host to another name of
    the same loopback server (``localhost``) is refused before any request reaches it, and so is a
    redirect to ftp; a redirect to the allowed host itself is followed."""
    port = server.server_port
    rows = {
        "I_toself": f"http://127.0.0.1:{port}/redirect/127.0.0.1/good/self.jpg",
        "I_tolocalhost": f"http://127.0.0.1:{port}/redirect/localhost/good/other.jpg",
        "I_toftp": f"http://127.0.0.1:{port}/ftp/1.jpg",
        "I_unlisted": f"http://localhost:{port}/good/direct.jpg",
    }
    root = write_products(tmp_path / "data", rows)
    settings = DownloadSettings(files=["products"], workers=1, retries=0, timeout=2, private_hosts=LOCAL)
    report = download_images(root, settings)
    failures = read_failures(root)
    assert (report.downloaded, sorted(failures)) == (1, ["I_toftp", "I_tolocalhost", "I_unlisted"])
    assert failures["I_tolocalhost"]["reason"].startswith("refused: localhost is at 127.0.0.1, not a public")
    assert failures["I_unlisted"]["reason"].startswith("refused: localhost is at 127.0.0.1")
    assert failures["I_toftp"]["reason"] == "refused: redirect to ftp://127.0.0.1/x.jpg (only http and https)"
    assert server.hits["/good/self.jpg"] == 1
    assert server.hits["/good/other.jpg"] == server.hits["/good/direct.jpg"] == 0
    # Nothing listed: the test server itself is refused.
    other = write_products(tmp_path / "other", rows)
    download_images(other, DownloadSettings(files=["products"], retries=0, timeout=2))
    assert len(read_failures(other)) == len(rows) and not (other / "images").exists()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize("bad_id", ["../../../../x", "/abs/x", "../bundles/B_0"])
def test_an_id_that_would_leave_the_images_folder_is_refused(tmp_path: Path, bad_id: str) -> None:
    root = write_products(
        tmp_path / "data", {"I_ok": "https://cdn.example.com/1.jpg", bad_id: "https://cdn.example.com/2.jpg"}
    )
    with pytest.raises(
        CatalogueError, match=r"product_dataset\.csv: field product_asset_id: not a valid id: line 3"
    ):
        list_jobs(root, ["products"])
    assert not any(tmp_path.rglob("*.jpg"))


def test_no_network_gives_up_fast_and_says_so(tmp_path: Path, monkeypatch) -> None:
    """Unresolvable hosts are not retried, and when the first ``give_up_after`` downloads all fail the
    rest are not attempted: an error saying what failed, the failures file written."""
    rows = {f"I_{i:012x}": f"https://static.example.invalid/{i}.jpg" for i in range(100)}
    root = write_products(tmp_path / "data", rows)
    lookups: list[str] = []

    def no_dns(host: str, *args: object, **kwargs: object) -> None:
        lookups.append(host)
        time.sleep(0.01)  # a resolver's pace, so that the abort comes long before the last job
        raise download.socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(download.socket, "getaddrinfo", no_dns)
    settings = DownloadSettings(files=["products"], workers=2, retries=3, backoff=5.0, give_up_after=5)
    with pytest.raises(DownloadAbortedError, match=r"the first 5 downloads all failed .*not resolved"):
        download_images(root, settings)
    failures = read_failures(root)
    assert len(failures) == len(rows)
    attempted = [row for row in failures.values() if row["attempts"] != "0"]
    assert 5 <= len(attempted) < len(rows) and all(row["attempts"] == "1" for row in attempted)
    assert len(lookups) == len(attempted)
    assert {row["reason"] for row in failures.values() if row["attempts"] == "0"} == {
        "not attempted: the download was aborted"
    }


def test_the_stage_exits_non_zero_when_images_are_missing(tmp_path: Path, server: Server) -> None:
    base = f"http://127.0.0.1:{server.server_port}"
    root = write_products(
        tmp_path / "data", {"I_good": f"{base}/good/1.jpg", "I_missing": f"{base}/missing/1.jpg"}
    )
    cfg = OmegaConf.create(
        {
            "paths": {"data_dir": str(root)},
            "download": {
                "_target_": "fashion_retrieval.data.download.DownloadSettings",
                "files": ["products"],
                "retries": 0,
                "private_hosts": LOCAL,
            },
        }
    )
    with pytest.raises(
        DownloadIncompleteError, match=r"1 image\(s\) could not be fetched .*download_failures\.csv"
    ):
        download_stage(cfg, None)  # type: ignore[arg-type]
    assert (root / "images/products/I_good.jpg").is_file()
