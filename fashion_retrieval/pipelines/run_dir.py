"""Run-directory artefacts shared by the stages: ``metrics.json`` (flat: name -> number)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from fashion_retrieval.io import atomic_open

METRICS_FILE = "metrics.json"


def read_metrics(output_dir: str | Path) -> dict[str, float]:
    path = Path(output_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(output_dir: str | Path, metrics: Mapping[str, float]) -> dict[str, float]:
    """Merge ``metrics`` into the run's ``metrics.json`` (atomic write) and return the merged dict."""
    merged = {**read_metrics(output_dir), **{k: float(v) for k, v in metrics.items()}}
    with atomic_open(Path(output_dir) / METRICS_FILE, "w") as handle:
        json.dump(dict(sorted(merged.items())), handle, indent=2)
        handle.write("\n")
    return merged
