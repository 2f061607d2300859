"""Serving figures (issue 17, section 4): cold start, per-query latency over HTTP, throughput, soak.

    python benchmarks/serving.py --run-dir outputs/quickstart/run/<timestamp> \
        --yolo-weights outputs/detection/<run>/detector/best.pt --output benchmarks/results/serving.md

Each server is the real command (``fashion-retrieval serve run_dir=... serve.port=...``) in a subprocess on
loopback; clients are ``httpx`` clients with keep-alive, uploading the photos of the dataset's test
bundles (multipart, as the web page does) in turn.

* cold start: from starting the process to the first answered ``POST /search`` (imports, Hydra, loading
  the checkpoint, index, catalogue and detectors, the first forward pass); the ``coldstart`` part starts
  ``--cold-starts`` fresh servers one after the other (``--extra`` overrides, e.g. ``detector=yolo``) and
  records each, with its CPU time by then and the machine's 1-minute load average before it; with
  ``--source DIR`` (repeated) the servers run each checkout's code in turn, so that two versions are
  compared under the same load; the other parts record their server's cold start too;
* latency: ``--queries`` sequential uploads per detector on one server (``none``, ``zones``, and ``yolo``
  when ``--yolo-weights`` starts it with ``detector=yolo detector.weights=...``), the detectors
  interleaved query by query so each sees the same load; p50/p95/p99 of the client's round trip and the
  server's median per stage (``timings_ms``);
* throughput (plain server): 1, 4 and 16 concurrent clients, each query a new upload, stopped at
  ``--throughput-queries`` answers or ``--throughput-seconds``, whichever first;
* soak (plain server): ``--soak-seconds`` of 4 clients alternating ``none`` and ``zones``; errors counted,
  the server's resident set (``VmRSS``) read at start and end;
* text (``--run-dir`` a ``train-text`` run, docs/serving.md "Text queries"): ``--queries`` sequential
  queries of each kind, interleaved query by query: ``text`` (JSON ``{"text": caption}``, captions drawn
  with seed 0 from the dataset's ``product_captions.csv``), ``composed`` (JSON ``{"product_id": ...,
  "text": "in <colour>"}``) and ``composed_photo`` (the product's packshot uploaded with the text);
  client p50/p95/p99 and the server's median per stage.

``--parts`` measures a subset (``coldstart``, ``latency``, ``throughput``, ``soak``, ``text``); the
default is the photo parts.
The backend is the run's (``encoder.backend``, torch unless given in ``--extra``); ONNX needs its export
(docs/onnx.md) and is measured by passing ``--extra encoder.backend=onnx encoder.onnx_path=...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

PARTS = ("coldstart", "latency", "throughput", "soak", "text")
PHOTO_PARTS = PARTS[:4]
COMPOSED_TEXTS = ("in black", "in white", "in red", "in blue", "in green", "in beige")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set of process ``pid`` in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and of its children it waited for, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: utime, stime, cutime, cstime are fields 14-17 of stat(5), 12-15 here.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


class Server:
    """``fashion-retrieval serve`` in a subprocess; :meth:`start` returns the cold start in seconds.
    ``source``: a checkout whose ``fashion_retrieval`` the server runs (``python -m`` from that folder, which
    puts it first on the path); default: the one this interpreter imports."""

    def __init__(
        self, run_dir: Path, extra: Sequence[str], workdir: Path, source: Path | None = None
    ) -> None:
        workdir = workdir.resolve()  # the server may run in another folder
        self.cwd = None if source is None else source.resolve()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve_{self.port}.log"
        self.command = [
            sys.executable,
            "-m",
            "fashion_retrieval.cli",
            "serve",
            f"run_dir={run_dir.resolve()}",
            f"serve.port={self.port}",
            f"detection_cache={workdir / 'detection_cache'}",
            f"hydra.run.dir={workdir / f'serve_{self.port}'}",
            *extra,
        ]
        self.process: subprocess.Popen | None = None
        self.start_cpu_s = float("nan")

    def start(self, photo: bytes, timeout: float = 900) -> float:
        """Seconds from starting the process to its first answered upload; the process's CPU time by then
        is left in :attr:`start_cpu_s` (a figure less sensitive than the wall time to a loaded machine; the
        server's alone with one worker: ``serve.workers=N`` workers are children it has not waited for)."""
        start = time.perf_counter()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                answer = httpx.post(f"{self.url}/search", files={"image": ("q.jpg", photo)}, timeout=120)
                if answer.status_code == 200:
                    self.start_cpu_s = cpu_seconds(self.process.pid)
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"serve did not answer in {timeout} s")
            time.sleep(0.05)

    def rss(self) -> float:
        assert self.process is not None
        return rss_mib(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)


def query(client: httpx.Client, url: str, photo: bytes, detector: str) -> tuple[float, dict[str, float]]:
    """(client round trip in seconds, the server's ``timings_ms``) of one upload; raises unless 200."""
    start = time.perf_counter()
    answer = client.post(f"{url}/search", files={"image": ("q.jpg", photo)}, data={"detector": detector})
    elapsed = time.perf_counter() - start
    answer.raise_for_status()
    return elapsed, answer.json()["timings_ms"]


def summary(found: list[tuple[float, dict[str, float]]]) -> dict[str, object]:
    """Client percentiles and the server's median per stage (ms) of ``(round trip s, timings_ms)``."""
    return {
        **percentiles([elapsed for elapsed, _ in found]),
        "server_median_ms": {
            stage: float(statistics.median(t[stage] for _, t in found)) for stage in found[0][1]
        },
        "queries": len(found),
    }


def text_queries(run_dir: Path, count: int) -> dict[str, list[dict]]:
    """``count`` requests of each kind (``text``, ``composed``, ``composed_photo``) from the run's dataset:
    ``{"json": body}`` or ``{"data": fields, "files": upload}`` keyword arguments of ``httpx.post``."""
    config = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    data_dir = Path(config["data"]["data_dir"])
    captions = pd.read_csv(data_dir / "product_captions.csv", dtype=str).sample(count, random_state=0)
    requests: dict[str, list[dict]] = {"text": [], "composed": [], "composed_photo": []}
    for i, (product, caption) in enumerate(zip(captions["product_asset_id"], captions["caption"])):
        text = COMPOSED_TEXTS[i % len(COMPOSED_TEXTS)]
        photo = (data_dir / "images" / "products" / f"{product}.jpg").read_bytes()
        requests["text"].append({"json": {"text": caption, "k": 15}})
        requests["composed"].append({"json": {"product_id": product, "text": text, "k": 15}})
        requests["composed_photo"].append(
            {"data": {"text": text, "k": "15"}, "files": {"image": ("p.jpg", photo)}}
        )
    return requests


def text_latency(url: str, requests: dict[str, list[dict]]) -> dict[str, dict]:
    """The requests of each kind sent one after the other, the kinds interleaved query by query (after
    one warm-up call each): :func:`summary` per kind."""
    rounds: dict[str, list[tuple[float, dict[str, float]]]] = {kind: [] for kind in requests}
    with httpx.Client(timeout=120) as client:
        for sent in requests.values():
            client.post(f"{url}/search", **sent[0]).raise_for_status()
        for i in range(min(len(sent) for sent in requests.values())):
            for kind, sent in requests.items():
                start = time.perf_counter()
                answer = client.post(f"{url}/search", **sent[i])
                elapsed = time.perf_counter() - start
                answer.raise_for_status()
                rounds[kind].append((elapsed, answer.json()["timings_ms"]))
    return {kind: summary(found) for kind, found in rounds.items()}


def latency(url: str, photos: list[bytes], detectors: Sequence[str], count: int) -> dict[str, dict]:
    """``count`` sequential uploads per detector, the detectors interleaved query by query (so each
    sees the same load from the rest of the machine): client p50/p95/p99 and the server's median per
    stage, in ms."""
    rounds: dict[str, list[tuple[float, dict[str, float]]]] = {d: [] for d in detectors}
    with httpx.Client(timeout=120) as client:
        for detector in detectors:
            query(client, url, photos[0], detector)  # the first call of a detector pays its warm-up
        for i in range(count):
            for detector in detectors:
                rounds[detector].append(query(client, url, photos[i % len(photos)], detector))
    return {detector: summary(found) for detector, found in rounds.items()}


def load(
    url: str,
    photos: list[bytes],
    clients: int,
    max_queries: int,
    max_seconds: float,
    detectors: Sequence[str],
) -> dict[str, float]:
    """``clients`` threads uploading until ``max_queries`` answers or ``max_seconds``."""
    lock = threading.Lock()
    times: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds

    def client_loop(worker: int) -> None:
        nonlocal issued
        with httpx.Client(timeout=300) as client:
            while time.perf_counter() < deadline:
                with lock:
                    if issued >= max_queries:
                        return
                    number = issued
                    issued += 1
                try:
                    elapsed, _ = query(
                        client, url, photos[number % len(photos)], detectors[number % len(detectors)]
                    )
                    with lock:
                        times.append(elapsed)
                except Exception as error:  # counted, the soak goes on
                    with lock:
                        errors.append(repr(error))

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "detectors": list(detectors),
        "answered": len(times),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": wall,
        "queries_per_second": len(times) / wall,
        **percentiles(times or [float("nan")]),
    }


def cold_starts(
    run_dir: Path,
    extra: Sequence[str],
    workdir: Path,
    photo: bytes,
    count: int,
    sources: Sequence[Path | None] = (None,),
) -> dict[str, dict]:
    """``count`` fresh servers per source, one after the other, the sources taking turns (so a shared
    machine's changing load falls on each alike): each one's seconds from process start to the first
    answered upload, its CPU time by then, and the 1-minute load average just before it started."""
    runs: dict[str, list[dict[str, float]]] = {str(source or "."): [] for source in sources}
    for _ in range(count):
        for source in sources:
            load_before = os.getloadavg()[0]
            server = Server(run_dir, extra, workdir, source)
            try:
                seconds = server.start(photo)
            finally:
                server.stop()
            runs[str(source or ".")].append(
                {"seconds": seconds, "cpu_seconds": server.start_cpu_s, "load_average": load_before}
            )
    return {
        source: {
            "runs": found,
            "median_s": statistics.median(run["seconds"] for run in found),
            "median_cpu_s": statistics.median(run["cpu_seconds"] for run in found),
        }
        for source, found in runs.items()
    }


def bundle_photos(run_dir: Path, count: int) -> list[bytes]:
    config = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    data_dir = Path(config["data"]["data_dir"])
    test = pd.read_csv(data_dir / "bundles_product_match_test.csv", dtype=str)["bundle_asset_id"].unique()
    bundles = pd.read_csv(data_dir / "bundles_dataset.csv", dtype=str).set_index("bundle_asset_id")
    paths = [data_dir / "images" / "bundles" / f"{b}.jpg" for b in test if b in bundles.index]
    return [p.read_bytes() for p in paths if p.is_file()][:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--yolo-weights", type=Path, help="a YOLO best.pt: adds the yolo rows")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every server")
    parser.add_argument("--queries", type=int, default=200, help="sequential queries per detector")
    parser.add_argument("--throughput-queries", type=int, default=200)
    parser.add_argument("--throughput-seconds", type=float, default=60)
    parser.add_argument("--soak-seconds", type=float, default=300)
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="fresh servers per source of the coldstart part"
    )
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        help="coldstart part: a checkout to start the server from (repeat to compare; default: this one)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("outputs/benchmarks/serving"))
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PHOTO_PARTS),
        help="what to measure (default: photos)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    photos = bundle_photos(args.run_dir, 100)
    results: dict[str, object] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "command": " ".join(sys.argv),
        "photos": len(photos),
    }
    if "coldstart" in args.parts:
        results["cold_starts"] = cold_starts(
            args.run_dir, args.extra, args.workdir, photos[0], args.cold_starts, args.source or [None]
        )
        print(json.dumps(results["cold_starts"]), flush=True)
    if {"throughput", "soak"} & set(args.parts):
        server = Server(args.run_dir, args.extra, args.workdir)
        try:
            results["cold_start_s"] = server.start(photos[0])
            results["rss_after_start_mib"] = server.rss()
            print(json.dumps(results), flush=True)
            if "throughput" in args.parts:
                results["throughput"] = [
                    load(server.url, photos, c, args.throughput_queries, args.throughput_seconds, ["none"])
                    for c in (1, 4, 16)
                ]
                print(json.dumps(results["throughput"]), flush=True)
            if "soak" in args.parts:
                soak_start = server.rss()
                soak = load(server.url, photos, 4, 10**9, args.soak_seconds, ["none", "zones"])
                results["soak"] = {**soak, "rss_start_mib": soak_start, "rss_end_mib": server.rss()}
                print(json.dumps(results["soak"]), flush=True)
        finally:
            server.stop()
    if "latency" in args.parts:
        # With YOLO weights the server offers none, zones and yolo: all three measured side by side.
        detectors = ["none", "zones"]
        extra = list(args.extra)
        if args.yolo_weights is not None:
            detectors.append("yolo")
            extra += ["detector=yolo", f"detector.weights={args.yolo_weights}"]
        server = Server(args.run_dir, extra, args.workdir)
        try:
            results["cold_start_latency_server_s"] = server.start(photos[0])
            results["latency"] = latency(server.url, photos, detectors, args.queries)
            print(json.dumps(results["latency"]), flush=True)
        finally:
            server.stop()
    if "text" in args.parts:
        server = Server(args.run_dir, args.extra, args.workdir)
        try:
            results["cold_start_text_server_s"] = server.start(photos[0])
            results["text"] = text_latency(server.url, text_queries(args.run_dir, args.queries))
            print(json.dumps(results["text"]), flush=True)
        finally:
            server.stop()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
