"""The files of a run directory that stages and tables read: ``metrics.json`` (flat: name -> number), the
resolved config (its name, ``io.RUN_CONFIG_FILE``, sits in io.py for the Retriever below) and the failure
record. The run machinery (``fashion_retrieval/runs/``) writes them; they live here, below the stages, so
``report`` and ``self-train`` read them without importing ``runs/``."""

from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure.json"


def read_metrics(output_dir: str | Path) -> dict[str, float]:
    """The run's ``metrics.json`` as ``{name: value}``; empty when the run has none yet."""
    path = Path(output_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
