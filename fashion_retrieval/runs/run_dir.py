"""What the run machinery writes into a run directory: merged ``metrics.json``, the failure record
``failure.json``, and the naming rule for files each invocation writes (config, provenance). The file
names and the reader stages use are in :mod:`fashion_retrieval.evaluation.run_files`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from fashion_retrieval.evaluation.run_files import FAILURE_FILE, METRICS_FILE, read_metrics
from fashion_retrieval.io import write_json


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
