"""Fixtures shared by the pipeline tests: one tiny synthetic dataset per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_configs import compose_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``experiment=tiny``'s synthetic data (a few seconds to generate), in a temporary folder."""
    from fashion_retrieval.pipelines.context import RunContext
    from fashion_retrieval.pipelines.generate import generate

    data_dir = tmp_path_factory.mktemp("pipelines") / "data"
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={data_dir}", "generate.num_workers=1"])
    generate(cfg, RunContext(output_dir=data_dir.parent))
    return data_dir
