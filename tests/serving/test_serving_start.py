"""What starting the service costs: the modules a worker imports to build its service (none of the training
stack), and ``serve.workers=2`` (each worker process loads its own service and answers)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

# Never imported by a worker that builds its service and answers a search: the training stack, the
# detector's library when the run has no YOLO detector, and Hydra's composition (its plugins, discovered
# when composing: the configs a worker reads are YAML data, built by hydra.utils.instantiate alone).
FORBIDDEN = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "torchmetrics",
    "transformers",
    "albumentations",
    "ultralytics",
    "matplotlib",
    "hydra_plugins",
)
# Imported by timm's own package (timm.utils.summary: `import wandb` when installed; timm.layers._fx:
# torchvision's feature extraction), which a timm backbone needs: allowed only from there.
ONLY_THROUGH_TIMM = ("wandb", "torchvision")
# Runs in a fresh interpreter: records which module first imported each watched name, imports the serving
# app, builds the run directory's service (its Retriever) and answers one upload, then prints the record.
WORKER = """
import json, sys
watched, first = set(json.loads(sys.argv[2])), {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        hit = next((w for w in watched if name == w or name.startswith(w + ".")), None)
        if hit is not None and hit not in first:
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith(
                ("importlib", "_frozen_importlib")
            ):
                frame = frame.f_back
            first[hit] = None if frame is None else frame.f_globals.get("__name__")
        return None

sys.meta_path.insert(0, Watch())
from fashion_retrieval.serving.app import create_app
from fashion_retrieval.serving.schemas import Options
from fashion_retrieval.serving.service import SearchService

service = SearchService.from_run_dir(sys.argv[1])
create_app(service)
photo = service.bundle_paths[service.splits["test"][0]].read_bytes()
assert service.search_photo(photo, Options(k=3))["products"]
print("FIRST=" + json.dumps(first))
"""


def first_importers(run_dir: Path) -> dict[str, str | None]:
    """Watched module -> the module that first imported it, in a worker-like fresh interpreter."""
    watched = json.dumps([*FORBIDDEN, *ONLY_THROUGH_TIMM])
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(run_dir), watched], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("FIRST="))
    return json.loads(line[len("FIRST=") :])


def test_a_worker_builds_its_service_without_the_training_stack(tiny_run) -> None:
    _, run_dir, _ = tiny_run
    found = first_importers(run_dir)
    assert not set(found) & set(FORBIDDEN), {name: found[name] for name in set(found) & set(FORBIDDEN)}
    for name in ONLY_THROUGH_TIMM:
        assert found.get(name) is None or found[name].startswith("timm."), (name, found[name])


def test_the_import_watch_names_who_imported_a_module(tmp_path: Path) -> None:
    """The check above can fail: a module importing a watched one is named as its importer."""
    (tmp_path / "pkg_probe").mkdir()
    (tmp_path / "pkg_probe" / "__init__.py").write_text("import csv\nimport xml.dom.minidom\n")
    watch = WORKER.split("from fashion_retrieval", 1)[0]
    script = watch + "import pkg_probe\nprint('FIRST=' + json.dumps(first))\n"
    result = subprocess.run(
        [sys.executable, "-c", script, "unused", json.dumps(["csv", "xml", "wave"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FIRST="))
    assert json.loads(line[len("FIRST=") :]) == {"csv": "pkg_probe", "xml": "pkg_probe"}


@pytest.mark.slow
def test_two_workers_each_load_the_service_and_answer(tiny_run, start_serve, query_photo, tmp_path) -> None:
    """``serve.workers=2``: two processes, each building its service from the spec (nothing shared but the
    read-only files), answer concurrent uploads. Slow: two model loads in fresh interpreters (about a
    minute on a loaded 2-core machine)."""
    workdir, run_dir, _ = tiny_run
    log_path = tmp_path / "serve.log"
    photo = query_photo.read_bytes()

    def search(_: int) -> int:
        answer = httpx.post(f"{url}/search", files={"image": ("p.jpg", photo)}, data={"k": "3"}, timeout=120)
        return answer.status_code

    with start_serve(run_dir, workdir, log_path, "serve.workers=2") as url:
        deadline = time.monotonic() + 300
        while len(started(log_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)  # /healthz answers once the first worker is up; wait for the second
        assert len(started(log_path)) == 2, log_path.read_text()[-3000:]
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(search, range(12)))
    assert statuses == [200] * 12


def started(log_path: Path) -> set[str]:
    """The process ids of the uvicorn workers that loaded their app, from the server's log."""
    return set(re.findall(r"Started server process \[(\d+)\]", log_path.read_text()))
