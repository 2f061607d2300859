"""The table of a sweep: one row per run directory below a folder, its metric and the config it varied.

A run directory holds ``config_resolved.yaml`` (written when a run starts) and, once a stage finished,
``metrics.json``. Hydra multirun jobs (``multirun/<date>/<n>/``), ``hydra.sweep.subdir`` layouts and a
plain ``outputs/`` tree of single runs all qualify, at any depth.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fashion_retrieval.evaluation.run_files import FAILURE_FILE, METRICS_FILE, read_metrics
from fashion_retrieval.io import RUN_CONFIG_FILE, atomic_open, atomic_path

log = logging.getLogger(__name__)

# Config values that name files or moments differ between any two runs without being a choice of the
# sweep: the paths group, keys ending in dir/path (index.dir, infer.submission_path, ckpt_path, ...)
# and any value holding a Hydra-style timestamp.
IGNORED_KEY = re.compile(r"(^paths\.|(^|[._])(dir|dirpath|path)$)")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[_T ]\d{2}[-:]\d{2}[-:]\d{2}")
# A sweep varies a few values; past this many panels the figure is unreadable, so the rest are left out.
MAX_PANELS = 12


@dataclass
class RunRow:
    """One run of the sweep: where it is, whether it failed, its metric and flattened config."""

    run: str
    failed: bool
    metric: float | None
    error: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def find_run_dirs(root: str | Path) -> list[Path]:
    """Directories below ``root`` (not ``root`` itself) holding ``config_resolved.yaml``, sorted.

    The walk does not descend into a run directory (its checkpoints, W&B files and index can be large)
    nor into hidden folders such as ``.hydra``. ``root`` itself is skipped: a ``report`` launched in a
    sweep folder writes its own config there.
    """
    found: list[Path] = []
    for current, subdirs, files in os.walk(root):
        here = Path(current)
        if RUN_CONFIG_FILE in files and here != Path(root):
            found.append(here)
            subdirs.clear()
            continue
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
    return sorted(found)


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}``; lists stay whole leaves (a swept ``[flip]`` is one value)."""
    if not isinstance(config, Mapping):
        return {prefix: config} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_run(run_dir: Path, root: Path, metric: str) -> RunRow:
    """The row of one run directory; failed when it recorded a failure or never wrote ``metrics.json``."""
    config = flatten(yaml.safe_load((run_dir / RUN_CONFIG_FILE).read_text()) or {})
    # The run's own path appears in every output-derived value; blank it so only choices differ.
    own_path = str(run_dir.resolve())
    config = {key: value for key, value in config.items() if own_path not in str(value)}
    failure_file = run_dir / FAILURE_FILE
    if failure_file.is_file():
        failure = json.loads(failure_file.read_text())
        error = f"{failure.get('stage')}: {failure.get('error')}: {failure.get('message')}"
    elif not (run_dir / METRICS_FILE).is_file():
        error = "no metrics.json"
    else:
        error = ""
    value = read_metrics(run_dir).get(metric)
    return RunRow(
        run=run_dir.relative_to(root).as_posix(),
        failed=bool(error),
        metric=None if value is None else float(value),
        error=error,
        config=config,
    )


def swept_keys(rows: Sequence[RunRow]) -> list[str]:
    """Config keys that take more than one value among the runs that have them, paths and timestamps
    excepted, sorted. A key missing from some runs does not count by itself: runs made before a config
    option existed would otherwise list every later option."""
    keys = sorted({key for row in rows for key in row.config})
    swept = []
    for key in keys:
        if IGNORED_KEY.search(key):
            continue
        values = [row.config[key] for row in rows if key in row.config]
        if any(TIMESTAMP.search(str(value)) for value in values):
            continue
        if len({json.dumps(value, sort_keys=True, default=str) for value in values}) > 1:
            swept.append(key)
    return swept


def sort_rows(rows: Sequence[RunRow]) -> list[RunRow]:
    """Best metric first; runs without the metric (failed ones included) last, in path order."""
    return sorted(rows, key=lambda row: (row.metric is None, -(row.metric or 0.0), row.run))


def table_rows(rows: Sequence[RunRow], metric: str, keys: Sequence[str]) -> list[list[str]]:
    """Header and cells of the sweep table: run, status, metric, each swept key, and the error when any
    run failed."""
    with_errors = any(row.failed for row in rows)
    header = ["run", "status", metric, *keys, *(["error"] if with_errors else [])]
    lines = [header]
    for row in rows:
        cells = [row.run, "failed" if row.failed else "ok", "" if row.metric is None else f"{row.metric:.4f}"]
        cells += [_cell(row.config.get(key)) for key in keys]
        lines.append(cells + ([row.error] if with_errors else []))
    return lines


def _cell(value: Any) -> str:
    return "" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def to_markdown(lines: Sequence[Sequence[str]]) -> str:
    """A Markdown table from a header and rows (pipes in cells escaped)."""
    escaped = [[cell.replace("|", "\\|") for cell in line] for line in lines]
    header, *body = escaped
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(out)


def to_csv(lines: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def plot_sweep(rows: Sequence[RunRow], metric: str, keys: Sequence[str], path: Path) -> bool:
    """Save one panel per swept key: the metric of each finished run against that key's value.

    Returns False (and writes nothing) when matplotlib is not installed or there is nothing to plot.
    """
    points = [row for row in rows if row.metric is not None]
    if not keys or not points:
        log.info("sweep report: no swept value or no finished run, no plot")
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a training machine
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("sweep report: matplotlib is not installed, no plot")
        return False
    if len(keys) > MAX_PANELS:
        log.info("sweep report: plotting the first %d of %d swept values", MAX_PANELS, len(keys))
        keys = keys[:MAX_PANELS]
    columns = min(len(keys), 3)
    figure_rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(
        figure_rows, columns, figsize=(4.5 * columns, 3.5 * figure_rows), squeeze=False
    )
    for axis, key in zip(axes.flat, keys, strict=False):
        values = [row.config.get(key) for row in points]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        # Categorical values (model names, lists) sit at evenly spaced positions in first-seen order.
        labels = list(dict.fromkeys(_cell(v) for v in values))
        xs = values if numeric else [labels.index(_cell(v)) for v in values]
        axis.scatter(xs, [row.metric for row in points])
        if not numeric:
            axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        axis.set_xlabel(key)
        axis.set_ylabel(metric)
    for axis in list(axes.flat)[len(keys) :]:
        axis.set_visible(False)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return True


def sweep_report(root: str | Path, metric: str) -> str | None:
    """Write ``report.csv``, ``report.md`` and ``report.png`` into ``root`` for the run directories below
    it and return the Markdown table; ``None`` when ``root`` holds no run directory."""
    root = Path(root)
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        return None
    rows = sort_rows([read_run(run_dir, root, metric) for run_dir in run_dirs])
    keys = swept_keys(rows)
    lines = table_rows(rows, metric, keys)
    table = to_markdown(lines)
    with atomic_open(root / "report.csv", "w", newline="") as handle:
        handle.write(to_csv(lines))
    with atomic_open(root / "report.md", "w") as handle:
        handle.write(table + "\n")
    plot_sweep(rows, metric, keys, root / "report.png")
    return table
