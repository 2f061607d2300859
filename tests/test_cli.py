"""The command line: Hydra flags and overrides in any order, the job named after the subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fashion_retrieval.cli import with_job_name


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], ["hydra.job.name=train"]),
        (["seed=3"], ["hydra.job.name=train", "seed=3"]),
        (["--cfg", "job", "seed=3"], ["--cfg", "job", "hydra.job.name=train", "seed=3"]),
        (["seed=3", "--cfg", "job"], ["hydra.job.name=train", "seed=3", "--cfg", "job"]),
        (["-m", "--config-dir=/x", "a=1,2"], ["-m", "--config-dir=/x", "hydra.job.name=train", "a=1,2"]),
    ],
)
def test_job_name_joins_the_run_of_overrides(arguments: list[str], expected: list[str]) -> None:
    assert with_job_name(arguments, "train") == expected


@pytest.mark.parametrize("order", ["flag_first", "flag_last"])
def test_print_config_with_flag_before_or_after_overrides(order: str) -> None:
    overrides, flag = ["experiment=hardneg/mined_balanced", "seed=7"], ["--cfg", "job"]
    arguments = [*flag, *overrides] if order == "flag_first" else [*overrides, *flag]
    result = subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", "train", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "run_name: hardneg/mined_balanced" in result.stdout
    assert "seed: 7" in result.stdout
