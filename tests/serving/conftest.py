"""The service over the session's tiny run: in process (FastAPI's TestClient) and as the real command
(``fashion-retrieval serve`` in a subprocess on a free port)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest

from fashion_retrieval.serving.service import SearchService

# Small limits, so the refusals are cheap to provoke.
MAX_UPLOAD_BYTES = 2_000_000
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="session")
def tiny_service(tiny_run) -> SearchService:
    _, run_dir, _ = tiny_run
    return SearchService.from_run_dir(run_dir)


@pytest.fixture(scope="session")
def tiny_text_run(tiny_run) -> Path:
    """``fashion-retrieval train-text experiment=text_tiny`` on the tiny run's data (its catalogue, so it
    can add text to the tiny run's service): the train-text run directory."""
    workdir, _, _ = tiny_run
    run_dir = workdir / "text_run"
    command = [sys.executable, "-m", "fashion_retrieval.cli", "train-text", "experiment=text_tiny"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={run_dir}"], cwd=workdir, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"train-text failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return run_dir


@pytest.fixture(scope="session")
def text_service(tiny_text_run: Path) -> SearchService:
    """The service of the train-text run itself: photos and texts through the dual encoder's towers."""
    return SearchService.from_run_dir(tiny_text_run)


@pytest.fixture(scope="session")
def query_photo(tiny_service: SearchService) -> Path:
    """The photo of the first test bundle."""
    return tiny_service.bundle_paths[tiny_service.splits["test"][0]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_command(run_dir: Path, cwd: Path, log_path: Path, *overrides: str) -> Iterator[str]:
    """``fashion-retrieval serve run_dir=<run_dir> <overrides>`` on a free loopback port until the block
    ends: its base URL once ``/healthz`` answers (the log, stdout and stderr, in ``log_path``)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "fashion_retrieval.cli",
        "serve",
        f"run_dir={run_dir}",
        f"serve.port={port}",
        f"hydra.run.dir={log_path.parent / 'run'}",
        *overrides,
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not answer within 300 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def served(tiny_run, tiny_text_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``fashion-retrieval serve run_dir=<tiny run> serve.text_run_dir=<tiny text run>`` on a free
    loopback port: its base URL."""
    workdir, run_dir, _ = tiny_run
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    limits = (
        f"serve.max_upload_bytes={MAX_UPLOAD_BYTES}",
        f"serve.body_timeout={BODY_TIMEOUT}",
        f"serve.text_run_dir={tiny_text_run}",
    )
    with serve_command(run_dir, workdir, log_path, *limits) as url:
        yield url


@pytest.fixture(scope="session")
def start_serve() -> Callable[..., AbstractContextManager[str]]:
    """:func:`serve_command`, for tests that start their own server (other settings than ``served``)."""
    return serve_command
