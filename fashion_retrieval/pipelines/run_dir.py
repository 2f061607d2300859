"""Run-directory artefacts shared by the stages: ``metrics.json`` (flat: name -> number), the failure
record ``failure.json``, and the naming rule for files each invocation writes (config, provenance)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fashion_retrieval.io import atomic_open

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config_resolved.yaml"
FAILURE_FILE = "failure.json"


def write_json(path: str | Path, content: Any) -> None:
    """Write ``content`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(content, handle, indent=2)
        handle.write("\n")


def read_metrics(output_dir: str | Path) -> dict[str, float]:
    path = Path(output_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(output_dir: str | Path, metrics: Mapping[str, float]) -> dict[str, float]:
    """Merge ``metrics`` into the run's ``metrics.json`` (atomic write) and return the merged dict."""
    merged = {**read_metrics(output_dir), **{k: float(v) for k, v in metrics.items()}}
    write_json(Path(output_dir) / METRICS_FILE, dict(sorted(merged.items())))
    return merged


def invocation_file(output_dir: str | Path, name: str, stages: Sequence[str]) -> Path:
    """Where this invocation writes its copy of ``name`` (e.g. ``config_resolved.yaml``).

    The first invocation in a run directory owns ``name`` (the run's recipe); a later ``evaluate`` or
    ``report`` pointed at the same directory writes ``<stem>_<stages><suffix>`` beside it, not over it.
    """
    path = Path(output_dir) / name
    if path.exists():
        path = path.with_name(f"{path.stem}_{'_'.join(stages)}{path.suffix}")
    return path


def record_failure(output_dir: str | Path, stage: str, error: BaseException) -> None:
    """Write ``failure.json``: Hydra keeps a failed job's exception in memory only, so without this file
    a sweep report could not tell a failed job from one that simply logged no metric."""
    write_json(
        Path(output_dir) / FAILURE_FILE,
        {"stage": stage, "error": type(error).__name__, "message": str(error)},
    )
