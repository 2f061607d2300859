"""What starting the service costs: the modules a worker imports to build its service (none of the training
stack; with the ONNX backend not even torch), what ``serve``'s parent process imports (neither torch nor the
search stack), and ``serve.workers=2`` (each worker process loads its own service and answers)."""

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

from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.onnx_encoder import export_encoder_onnx, sidecar_metadata, sidecar_path
from fashion_retrieval.search.run_config import BEST_CHECKPOINT

# Never imported by a worker that builds its service and answers a search: the training stack, the
# detector's library when the run has no YOLO detector, W&B (timm imports it when it can: the worker
# makes it unimportable, as it never logs) and Hydra's composition (its plugins, discovered when
# composing: the configs a worker reads are YAML data, built by hydra.utils.instantiate alone).
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
    "wandb",
)
# Imported by timm's own package (timm.layers._fx: torchvision's feature extraction), which a timm backbone
# needs: allowed only from there.
ONLY_THROUGH_TIMM = ("torchvision",)
# Not even these with the ONNX backend (numpy, OpenCV, onnxruntime and FAISS answer an upload).
TORCH_STACK = ("torch", "timm", "torchvision")
# Runs in a fresh interpreter as a uvicorn worker does: records which module first imported each watched
# name, builds the app from a service spec of the run directory (argv: run dir, watched names, overrides,
# spec path, photo) through the workers' factory, answers one upload, then prints the record.
WORKER = """
import json, os, sys
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
from pathlib import Path
from fastapi.testclient import TestClient
from fashion_retrieval.search.run_config import BEST_CHECKPOINT, load_run_config
from fashion_retrieval.serving.app import app_from_environment
from fashion_retrieval.serving.spec import SPEC_ENV, ServiceSpec

run_dir = Path(sys.argv[1])
limits = {"max_upload_bytes": 10_000_000, "max_k": 100, "body_timeout": 10.0}
config = load_run_config(run_dir, json.loads(sys.argv[3]))
ServiceSpec(config, run_dir / BEST_CHECKPOINT, run_dir, limits).save(Path(sys.argv[4]))
os.environ[SPEC_ENV] = sys.argv[4]
client = TestClient(app_from_environment())
photo = Path(sys.argv[5]).read_bytes()
answer = client.post("/search", files={"image": ("p.jpg", photo)}, data={"k": "3"})
assert answer.status_code == 200 and len(answer.json()["products"]) == 3, answer.text
print("FIRST=" + json.dumps(first))
"""


def first_importers(
    run_dir: Path, photo: Path, spec_path: Path, overrides: tuple[str, ...] = ()
) -> dict[str, str | None]:
    """Watched module -> the module that first imported it, in a worker-like fresh interpreter."""
    watched = json.dumps([*FORBIDDEN, *ONLY_THROUGH_TIMM, *TORCH_STACK])
    arguments = [str(run_dir), watched, json.dumps(list(overrides)), str(spec_path), str(photo)]
    result = subprocess.run(
        [sys.executable, "-c", WORKER, *arguments], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("FIRST="))
    return json.loads(line[len("FIRST=") :])


def test_a_worker_builds_its_service_without_the_training_stack(tiny_run, query_photo, tmp_path) -> None:
    _, run_dir, _ = tiny_run
    found = first_importers(run_dir, query_photo, tmp_path / "spec.yaml")
    assert not set(found) & set(FORBIDDEN), {name: found[name] for name in set(found) & set(FORBIDDEN)}
    for name in ONLY_THROUGH_TIMM:
        assert found.get(name) is None or found[name].startswith("timm."), (name, found[name])
    assert "torch" in found  # the torch backend: the check below can fail


def test_an_onnx_worker_answers_without_torch(tiny_run, query_photo, tmp_path) -> None:
    """``encoder.backend=onnx``: the worker decodes, resizes (numpy), embeds (onnxruntime) and searches
    (FAISS) an upload without importing torch, timm or torchvision."""
    _, run_dir, _ = tiny_run
    checkpoint = run_dir / BEST_CHECKPOINT
    encoder = load_encoder(checkpoint)
    onnx_path = tmp_path / "encoder.onnx"
    export_encoder_onnx(encoder, onnx_path, tuple(encoder.native_input_size))
    metadata = sidecar_metadata(encoder, onnx_path, checkpoint, {})
    sidecar_path(onnx_path).write_text(json.dumps(metadata))
    overrides = ("encoder.backend=onnx", f"encoder.onnx_path={onnx_path}")
    found = first_importers(run_dir, query_photo, tmp_path / "spec.yaml", overrides)
    imported = set(found) & {*FORBIDDEN, *TORCH_STACK}
    assert not imported, {name: found[name] for name in imported}


# Runs `fashion-retrieval serve ... serve.workers=2` in a fresh interpreter with uvicorn.run replaced by a
# recorder: what the parent (uvicorn's supervisor) has imported when it hands over to uvicorn.
PARENT = """
import json, sys
import uvicorn
from fashion_retrieval.cli import main

watched = json.loads(sys.argv[1])  # read now: Hydra's job replaces sys.argv

def recorder(app, **settings):
    loaded = sorted(w for w in watched if w in sys.modules)
    print("PARENT=" + json.dumps({"app": app, "workers": settings["workers"], "loaded": loaded}))

uvicorn.run = recorder
main(["serve", *sys.argv[2:]])
"""
# What only the workers load.
WORKER_ONLY = (
    "torch",
    "faiss",
    "pandas",
    "cv2",
    "onnxruntime",
    "fastapi",
    "fashion_retrieval.search.retriever",
    "fashion_retrieval.serving.service",
    "fashion_retrieval.serving.app",
)


def test_the_parent_of_two_workers_loads_no_search_stack(tiny_run, tmp_path) -> None:
    workdir, run_dir, _ = tiny_run
    arguments = [f"run_dir={run_dir}", "serve.workers=2", f"hydra.run.dir={tmp_path / 'serve'}"]
    result = subprocess.run(
        [sys.executable, "-c", PARENT, json.dumps(WORKER_ONLY), *arguments],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("PARENT="))
    parent = json.loads(line[len("PARENT=") :])
    assert parent["app"] == "fashion_retrieval.serving.app:app_from_environment" and parent["workers"] == 2
    assert parent["loaded"] == [], parent["loaded"]
    assert (tmp_path / "serve" / "serve_spec.yaml").is_file()


def test_the_import_watch_names_who_imported_a_module(tmp_path: Path) -> None:
    """The check above can fail: a module importing a watched one is named as its importer."""
    (tmp_path / "pkg_probe").mkdir()
    (tmp_path / "pkg_probe" / "__init__.py").write_text("import csv\nimport xml.dom.minidom\n")
    watch = WORKER.split("from pathlib", 1)[0]
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
