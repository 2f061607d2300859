"""The command line: Hydra flags and overrides in any order, the job named after the subcommand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_malformed_submission_prints_its_problems_without_a_traceback(tmp_path: Path) -> None:
    from tests.data.test_catalogue import write_dataset

    root = write_dataset(tmp_path / "data")
    (root / "truth.csv").write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_000000000001\n")
    submission = tmp_path / "submission.csv"
    submission.write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_00000000dead\n")
    result = run_cli(
        "evaluate",
        f"paths.data_dir={root}",
        f"evaluate.submission_path={submission}",
        f"evaluate.truth_path={root / 'truth.csv'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "logger=none",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fashion-retrieval evaluate: submission" in result.stderr
    assert "without exactly 15 rows" in result.stderr and "I_00000000dead" in result.stderr


def test_a_trainer_value_of_the_wrong_type_is_named_before_anything_runs(tmp_path: Path) -> None:
    result = run_cli("train", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run'}", "logger=none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "trainer.max_epochs: expected an integer, got 'abc' (str)" in result.stderr
