"""``fashion-retrieval reproduce``: the recipe read back from a run directory, the metric comparison, the
code-version warnings, and the ledger of named experiments."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_configs import EXPERIMENTS

from fashion_retrieval.cli import SUBCOMMANDS
from fashion_retrieval.runs import reproduce as reproduce_module
from fashion_retrieval.runs.provenance import PROVENANCE_FILE
from fashion_retrieval.runs.reproduce import (
    COMPARISON_JSON,
    ReproduceError,
    compare_metrics,
    comparison_table,
    config_changes,
    git_warnings,
    read_recipe,
    reproduced_ok,
    rerun_overrides,
)

LEDGER = Path(__file__).resolve().parents[2] / "experiments"


def fashion_retrieval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fashion_retrieval.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_compare_metrics_statuses():
    saved = {
        "val/recall@15": 0.2,
        "val/map@15": 0.1,
        "test/recall@15": 0.3,
        "generate/seconds": 4.0,
        "x": math.nan,
    }
    rerun = {
        "val/recall@15": 0.2 + 1e-9,
        "val/map@15": 0.12,
        "generate/seconds": 9.0,
        "new/metric": 1.0,
        "x": math.nan,
    }
    rows = {row.name: row for row in compare_metrics(saved, rerun, atol=1e-6)}
    assert {name: row.status for name, row in rows.items()} == {
        "val/recall@15": "same",
        "val/map@15": "differs",
        "test/recall@15": "missing",
        "generate/seconds": "ignored",
        "new/metric": "new",
        "x": "same",
    }
    assert rows["val/map@15"].difference == pytest.approx(0.02)
    assert not reproduced_ok(list(rows.values()))
    # A relative tolerance of 25% accepts 0.12 for 0.1; the missing metric still fails.
    relaxed = compare_metrics(saved, {**rerun, "test/recall@15": 0.3}, atol=0.0, rtol=0.25)
    assert reproduced_ok(relaxed)
    table = comparison_table(relaxed)
    assert "| val/map@15 | 0.1 | 0.12 | 0.02 | same |" in table and "generate/seconds" not in table


def test_rerun_overrides_take_the_names_of_issue_16():
    task = [
        "head=residual_adapter",
        "+head/averaging@head.module.weight_averaging=ema",
        "dataset=clothing_small",
    ]
    assert rerun_overrides([*task, "head_path=x", "readers=1"], "train-adapter", ["train_adapter"]) == [
        "adapter=residual_adapter",
        "+adapter/averaging@adapter.module.weight_averaging=ema",
        "reader=clothing_small",
        "head_path=x",  # names that only start like an old one stay
        "readers=1",
        "hydra.mode=RUN",
    ]


def test_rerun_overrides_drop_the_sweep_and_name_the_stages():
    task = ["experiment=tiny", "hparams_search=recall_optuna", "launcher=joblib", "loss.temperature=0.07"]
    assert rerun_overrides([*task, "stages=[train]"], "run", ["generate", "train"]) == [
        "experiment=tiny",
        "loss.temperature=0.07",
        "stages=[generate,train]",
        "hydra.mode=RUN",
    ]
    assert rerun_overrides(["experiment=tiny", "hydra/launcher=submitit_local"], "train", ["train"]) == [
        "experiment=tiny",
        "hydra.mode=RUN",
    ]


def test_git_warnings():
    clean = {"commit": "a" * 40, "dirty": False, "reason": None}
    assert git_warnings(clean, clean) == []
    moved = git_warnings(clean, {"commit": "b" * 40, "dirty": True, "reason": None})
    assert any("commit aaaaaaaaaaaa" in w and "bbbbbbbbbbbb" in w for w in moved)
    assert any("this checkout has uncommitted changes" in w for w in moved)
    unknown = git_warnings({"commit": None, "dirty": None, "reason": "no git"}, clean)
    assert unknown == ["the code version cannot be compared (no git)"]


def test_config_changes_list_both_sides():
    saved = {"loss.temperature": 0.05, "seed": 1, "old.key": True}
    rerun = {"loss.temperature": 0.05, "seed": 2, "new.key": "x"}
    assert config_changes(saved, rerun) == [("new.key", None, "x"), ("old.key", True, None), ("seed", 1, 2)]


def test_read_recipe_refuses_a_folder_without_provenance(tmp_path):
    with pytest.raises(RuntimeError, match=r"provenance.json not found"):
        read_recipe(tmp_path, list(SUBCOMMANDS))


@pytest.mark.parametrize(
    "override", ["+callbacks.x._target_=shutil.rmtree", "+callbacks.x={_target_: os.system, command: ls}"]
)
def test_read_recipe_refuses_overrides_that_name_what_to_build(tmp_path, override):
    """A run directory is data: an override from its provenance that names a class or function for
    Hydra to build is refused, not rerun."""
    overrides = {"task": ["experiment=tiny", override], "hydra": ["hydra.job.name=train"]}
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps({"overrides": overrides, "stages": ["train"]}))
    with pytest.raises(ReproduceError, match=r"provenance\.json: override .*_target_.* names what Hydra"):
        read_recipe(tmp_path, list(SUBCOMMANDS))


def test_reproduce_a_run_through_the_cli(tmp_path):
    """A ``report`` run (torch-free, seconds) stands in for a training: the recipe is read back, rerun into
    a new directory, and the comparison decides the exit status."""
    run_dir = tmp_path / "run"
    result = fashion_retrieval(
        "report", "experiment=tiny", "seed=7", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    recipe = read_recipe(run_dir, list(SUBCOMMANDS))
    assert recipe.subcommand == "report" and recipe.run_name == "tiny"
    assert recipe.overrides == ["experiment=tiny", "seed=7", "hydra.mode=RUN"]
    assert recipe.root_dir == tmp_path and recipe.log_dir == tmp_path / "outputs"

    # Only wall-clock metrics: nothing to compare, reproduced. The saved run's commit is another one.
    (run_dir / "metrics.json").write_text(json.dumps({"generate/seconds": 3.0}))
    provenance = json.loads((run_dir / "provenance.json").read_text())
    provenance["git"] = {"commit": "0" * 40, "dirty": False, "reason": None}
    (run_dir / "provenance.json").write_text(json.dumps(provenance))
    again = tmp_path / "again"
    result = fashion_retrieval("reproduce", str(run_dir), "--output-dir", str(again), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: the run was made at commit 000000000000" in result.stderr
    assert "reproduced:" in result.stdout
    assert json.loads((again / "provenance.json").read_text())["seed"] == 7
    assert json.loads((again / COMPARISON_JSON).read_text())["reproduced"] is True


def fake_run_dir(run_dir: Path, metrics: dict[str, float]) -> Path:
    """A run directory as ``fashion-retrieval train experiment=tiny`` leaves it, as far as reproduce reads."""
    run_dir.mkdir(parents=True)
    provenance = {
        "stages": ["train"],
        "seed": 1,
        "overrides": {
            "task": ["experiment=tiny"],
            "hydra": ["hydra.job.name=train", f"hydra.run.dir={run_dir}"],
        },
        "git": {"commit": None, "dirty": None, "reason": "not in a git checkout"},
    }
    (run_dir / "provenance.json").write_text(json.dumps(provenance))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    config = {"run_name": "tiny", "paths": {"root_dir": str(run_dir.parent), "output_dir": str(run_dir)}}
    (run_dir / "config_resolved.yaml").write_text(json.dumps(config))
    return run_dir


@pytest.mark.parametrize(
    ("rerun_metrics", "rerun_status", "expected"),
    [
        ({"val/recall@15": 0.25, "val/new": 1.0}, 0, 0),
        ({"val/recall@15": 0.2}, 0, 1),
        ({}, 0, 1),
        ({"val/recall@15": 0.25}, 1, 2),
    ],
)
def test_exit_status_follows_the_comparison(
    rerun_metrics, rerun_status, expected, tmp_path, monkeypatch, capsys
):
    run_dir = fake_run_dir(tmp_path / "run", {"val/recall@15": 0.25})
    calls = []

    def fake_rerun(recipe, output_dir: Path, extra, cwd: Path) -> int:
        calls.append((recipe.subcommand, recipe.overrides, list(extra), cwd))
        output_dir.mkdir(parents=True)
        (output_dir / "metrics.json").write_text(json.dumps(rerun_metrics))
        return rerun_status

    monkeypatch.setattr(reproduce_module, "rerun", fake_rerun)
    status = reproduce_module.reproduce(
        [str(run_dir), "seed=2", "--output-dir", str(tmp_path / "new")], list(SUBCOMMANDS)
    )
    assert status == expected
    assert calls == [("train", ["experiment=tiny", "hydra.mode=RUN"], ["seed=2"], tmp_path)]
    if rerun_status == 0:
        written = json.loads((tmp_path / "new" / COMPARISON_JSON).read_text())
        assert written["reproduced"] is (expected == 0)
        assert "reproduced" in capsys.readouterr().out


def test_reproduce_of_a_folder_that_is_no_run(tmp_path):
    result = fashion_retrieval("reproduce", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "provenance.json not found" in result.stderr


@pytest.mark.slow
def test_deterministic_tiny_training_reproduces_exactly(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    result = fashion_retrieval(
        "run",
        "experiment=tiny",
        "trainer.deterministic=true",
        "logger=csv",
        "stages=[train]",
        f"paths.data_dir={tiny_data}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    again = tmp_path / "again"
    result = fashion_retrieval(
        "reproduce", str(run_dir), "--output-dir", str(again), "--atol", "0", cwd=tmp_path
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    comparison = json.loads((again / COMPARISON_JSON).read_text())
    statuses = {row["name"]: row["status"] for row in comparison["metrics"]}
    assert statuses["val/recall@15"] == "same"


def ledger_table_experiments() -> set[str]:
    """Experiment names in the first column of experiments/README.md's table (``experiment=NAME`` or
    a link whose text is the name)."""
    names = set()
    for line in (LEDGER / "README.md").read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.strip("|").split("|")[0]
            names.update(re.findall(r"`([\w/.-]+)`", first_cell))
    return names


def test_every_experiment_is_in_the_ledger_table():
    missing = sorted(set(EXPERIMENTS) - ledger_table_experiments())
    assert not missing, f"experiments/README.md's table lacks {missing}"
