"""Shared fixtures. Importing the package first puts every library in offline mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fashion_retrieval  # noqa: F401 - offline defaults before timm/transformers/wandb are imported
from fashion_retrieval.machine import register_resolvers

register_resolvers()  # ${auto_workers:...}: the tests compose configs without the CLI


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """``fashion-retrieval run experiment=tiny`` once per session (about 30 s on 2 cores), shared by the
    end-to-end and notebook tests: ``(workdir, run_dir, completed process)``; the dataset is
    ``workdir/data/synthetic_tiny``. Tests may add folders to ``workdir`` but must not change ``run_dir``."""
    workdir = tmp_path_factory.mktemp("e2e")
    run_dir = workdir / "run"
    # logger=default: the CSV logger and W&B in offline mode, as in real runs.
    command = [sys.executable, "-m", "fashion_retrieval.cli", "run", "experiment=tiny", "logger=default"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={run_dir}"], cwd=workdir, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"the tiny run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return workdir, run_dir, result


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``experiment=tiny``'s synthetic data (a few seconds to generate), once per session, read-only."""
    from test_configs import compose_config

    from fashion_retrieval.pipelines.context import RunContext
    from fashion_retrieval.pipelines.generate import generate

    data_dir = tmp_path_factory.mktemp("tiny_data") / "data"
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={data_dir}", "generate.num_workers=1"])
    generate(cfg, RunContext(output_dir=data_dir.parent))
    return data_dir
