"""``experiment=NAME`` with the same seed gives identical metrics on CPU in deterministic mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig
from test_configs import job_config

from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.runs.reproduce import DEFAULT_IGNORE, compare_metrics, reproduced_ok

DETERMINISTIC = ["experiment=tiny", "trainer.deterministic=true", "logger=none"]
SMALL = ["data.query_size=[64,48]", "data.catalogue_size=[48,32]", "data.batch_size=4"]


def tiny_config(overrides: list[str], data_dir: Path, output_dir: Path) -> DictConfig:
    cfg = job_config([*overrides, f"paths.data_dir={data_dir}"], output_dir=str(output_dir))
    return cfg


def test_tiny_config_trains_deterministically(tiny_data, tmp_path):
    """Two trainings of the same config and seed, in one process: the same validation metrics, exactly."""
    overrides = [*DETERMINISTIC, *SMALL, "callbacks.embedding_exporter=null"]
    first, second = (
        train(tiny_config(overrides, tiny_data, tmp_path / name), RunContext(output_dir=tmp_path / name))
        for name in ("first", "second")
    )
    assert "val/recall@15" in first
    assert first == second


@pytest.mark.slow
def test_experiment_run_twice_through_the_cli_gives_identical_metrics(tiny_data, tmp_path):
    """The whole recipe of ``experiment=tiny`` (train, baselines, infer, evaluate) in two processes."""
    metrics = []
    for name in ("first", "second"):
        command = [
            sys.executable,
            "-m",
            "fashion_retrieval.cli",
            "run",
            *DETERMINISTIC,
            f"paths.data_dir={tiny_data}",
            f"hydra.run.dir={tmp_path / name}",
        ]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    rows = compare_metrics(*metrics, atol=0.0, ignore=DEFAULT_IGNORE)
    assert reproduced_ok(rows), [row for row in rows if row.status != "same"]
    assert {"val/recall@15", "test/recall@15", "baseline/pretrained/recall@15"} <= set(metrics[0])
