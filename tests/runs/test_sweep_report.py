"""The sweep table: run directories found at any depth, swept config values, failed runs kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from fashion_retrieval.evaluation.sweep_report import (
    find_run_dirs,
    flatten,
    read_run,
    sweep_report,
    swept_keys,
)
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.report import report

METRIC = "val/recall@15"


def make_run(
    run_dir: Path, config: dict[str, Any], metrics: dict[str, float] | None, failure: str | None = None
) -> None:
    """A run directory as run_stages leaves it; output-derived values hold the run's own path."""
    run_dir.mkdir(parents=True)
    full = {
        **config,
        "paths": {"output_dir": str(run_dir), "data_dir": f"/data/{run_dir.name}"},
        "index": {"dir": f"{run_dir}/index"},
        "trainer": {"default_root_dir": str(run_dir)},
        "started": f"outputs/x/2026-01-0{len(run_dir.name)}_10-00-00",
    }
    (run_dir / "config_resolved.yaml").write_text(yaml.safe_dump(full))
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config_resolved.yaml").write_text("not: a run")
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if failure is not None:
        (run_dir / "failure.json").write_text(
            json.dumps({"stage": "train", "error": failure, "message": "x"})
        )


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A multirun folder: three finished jobs, one that raised, one killed before any metric."""
    root = tmp_path / "multirun" / "2026-01-01_10-00-00"
    base = {"seed": 1, "model": {"name": "lite0"}, "stages": ["train"]}
    make_run(root / "0", {**base, "loss": {"temperature": 0.05}, "tta": []}, {METRIC: 0.2, "val/map@15": 0.1})
    make_run(root / "1", {**base, "loss": {"temperature": 0.1}, "added_later": 1}, {METRIC: 0.3})
    make_run(root / "2", {**base, "loss": {"temperature": 0.2}, "tta": ["flip"]}, {METRIC: 0.25})
    make_run(root / "3", {**base, "loss": {"temperature": 0.5}}, {"train/loss": 1.0}, failure="ValueError")
    make_run(root / "nested" / "4", {**base, "loss": {"temperature": 1.0}}, None)
    return root


def test_flatten_keeps_lists_whole() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}


def test_run_dirs_at_any_depth_but_not_the_root_nor_hidden_folders(sweep: Path) -> None:
    (sweep / "config_resolved.yaml").write_text("run_name: report\n")
    assert [p.relative_to(sweep).as_posix() for p in find_run_dirs(sweep)] == ["0", "1", "2", "3", "nested/4"]


def test_swept_keys_ignore_paths_timestamps_and_keys_merely_missing(sweep: Path) -> None:
    rows = [read_run(run_dir, sweep, METRIC) for run_dir in find_run_dirs(sweep)]
    assert swept_keys(rows) == ["loss.temperature", "tta"]


def test_failed_runs_are_rows_marked_failed(sweep: Path) -> None:
    rows = {row.run: row for row in (read_run(d, sweep, METRIC) for d in find_run_dirs(sweep))}
    assert not rows["0"].failed and rows["0"].metric == 0.2
    assert rows["3"].failed and rows["3"].error == "train: ValueError: x" and rows["3"].metric is None
    assert rows["nested/4"].failed and rows["nested/4"].error == "no metrics.json"


def test_sweep_report_writes_sorted_csv_markdown_and_plot(sweep: Path) -> None:
    table = sweep_report(sweep, METRIC)
    assert table == (sweep / "report.md").read_text().rstrip("\n")
    with open(sweep / "report.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["run", "status", METRIC, "loss.temperature", "tta", "error"]
    assert [line[:3] for line in lines[1:]] == [
        ["1", "ok", "0.3000"],
        ["2", "ok", "0.2500"],
        ["0", "ok", "0.2000"],
        ["3", "failed", ""],
        ["nested/4", "failed", ""],
    ]
    assert lines[2][3:5] == ["0.2", '["flip"]'] and lines[3][4] == "[]" and lines[1][4] == ""
    pytest.importorskip("matplotlib")
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_report_stage_keeps_the_single_run_table(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = OmegaConf.create({"report": {"metric": "val/map@15"}})
    report(cfg, RunContext(output_dir=sweep / "0"))
    assert "| fine-tuned | " in (sweep / "0" / "results.md").read_text()
    assert not (sweep / "0" / "report.csv").exists()
    report(cfg, RunContext(output_dir=sweep))
    assert "by val/map@15" in capsys.readouterr().out
    assert (sweep / "report.md").read_text().splitlines()[2].startswith("| 0 | ok | 0.1000 |")


def test_no_run_directory_no_sweep_report(tmp_path: Path) -> None:
    assert sweep_report(tmp_path, METRIC) is None
