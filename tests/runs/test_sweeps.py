"""Sweeps: the Optuna search configs, the SLURM and joblib launchers, a picklable job function, and a
multirun that survives a failed job."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import OmegaConf
from test_configs import compose_config

from fashion_retrieval.cli import config_dir
from fashion_retrieval.pipelines.registry import Stage
from fashion_retrieval.runs.job import StageTask, subcommand_stages

SEARCHES = sorted(p.stem for p in (config_dir() / "hparams_search").glob("*.yaml"))
# The experiment each search is written for: its searched keys must exist there.
SEARCH_EXPERIMENTS = {"recall_optuna": "quickstart", "hardneg_optuna": "hardneg/combined"}


def fashion_retrieval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fashion_retrieval.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_every_search_names_its_experiment():
    assert set(SEARCHES) == set(SEARCH_EXPERIMENTS)


@pytest.mark.parametrize("search", SEARCHES)
def test_search_maximises_recall_over_keys_of_its_experiment(search):
    cfg = compose_config([f"experiment={SEARCH_EXPERIMENTS[search]}", f"hparams_search={search}"])
    sweeper = cfg.hydra.sweeper
    assert get_class(sweeper._target_).__name__ == "OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.n_trials > 0
    assert sweeper.sampler.seed == cfg.seed, "a search is repeatable from its seed"
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert "train" in cfg.stages
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, default="absent") != "absent", f"{search}: no {key} in the config"


def test_slurm_launcher_composes_with_submitit():
    cfg = compose_config(["experiment=quickstart", "launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.tasks_per_node == 1 and launcher.timeout_min > 0


def test_joblib_launcher_composes():
    cfg = compose_config(["experiment=tiny", "launcher=joblib"])
    assert get_class(cfg.hydra.launcher._target_).__name__ == "JoblibLauncher"
    assert cfg.hydra.launcher.n_jobs == 2


def test_job_function_survives_pickle_and_cloudpickle():
    """submitit pickles the launcher with its task function and config (cloudpickle) to run it on a node;
    joblib's loky workers do the same locally."""
    task = StageTask("run")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        copy = loads(dumps(task))
        assert isinstance(copy, StageTask) and copy.subcommand == "run"
    cfg = compose_config(["experiment=tiny", "launcher=slurm"])
    copy = cloudpickle.loads(cloudpickle.dumps(cfg))
    assert copy.hydra.launcher.partition is None and copy.run_name == "tiny"
    assert subcommand_stages("run", copy) == list(cfg.stages)
    assert subcommand_stages("detect-train", copy) == ["detect_train"]


def test_submitit_launcher_object_pickles(tmp_path):
    """What ``SlurmLauncher.launch`` sends to the cluster: the launcher itself (config, Hydra context,
    task function) and each job's overrides."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import HydraContext

    cfg = compose_config(["experiment=tiny", "launcher=slurm", f"hydra.sweep.dir={tmp_path}"])
    launcher_config = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    launcher_class = get_class(launcher_config.pop("_target_"))
    launcher = launcher_class(**launcher_config)
    context = HydraContext(
        config_loader=ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir()))),
        callbacks=Callbacks(),
    )
    launcher.setup(hydra_context=context, task_function=StageTask("train"), config=cfg)
    copy = cloudpickle.loads(cloudpickle.dumps(launcher))
    assert copy.task_function.subcommand == "train"


@pytest.fixture
def failing_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    def stage(cfg: object, context: object) -> dict[str, float]:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Stage, "load", lambda self: stage)


def as_hydra_job(monkeypatch: pytest.MonkeyPatch, mode: RunMode) -> None:
    hydra_cfg = OmegaConf.create({"hydra": {"mode": mode, "overrides": {"task": [], "hydra": []}}})
    monkeypatch.setattr(HydraConfig.instance(), "cfg", hydra_cfg)


def test_a_failed_multirun_job_is_recorded_and_returns_none(failing_stage, monkeypatch, tmp_path):
    as_hydra_job(monkeypatch, RunMode.MULTIRUN)
    cfg = OmegaConf.create({"seed": 1, "stages": ["report"], "paths": {"output_dir": str(tmp_path)}})
    assert StageTask("run")(cfg) is None
    assert json.loads((tmp_path / "failure.json").read_text())["message"] == "out of memory"


def test_a_failed_single_run_still_raises(failing_stage, monkeypatch, tmp_path):
    as_hydra_job(monkeypatch, RunMode.RUN)
    cfg = OmegaConf.create({"seed": 1, "paths": {"output_dir": str(tmp_path)}})
    with pytest.raises(RuntimeError, match="out of memory"):
        StageTask("report")(cfg)
    assert (tmp_path / "failure.json").is_file()


@pytest.mark.parametrize(
    "launcher",
    # About 10 s of CPU each; submitit's (slow-marked) adds a process per job.
    ["launcher=joblib", pytest.param("hydra/launcher=submitit_local", marks=pytest.mark.slow)],
)
def test_multirun_through_another_process_launcher(launcher, tmp_path):
    """A real multirun whose jobs run in other processes: joblib's workers, and submitit's local executor,
    which unpickles the job exactly as a SLURM node would. ``report`` is the cheapest stage."""
    sweep = tmp_path / "sweep"
    result = fashion_retrieval(
        "report", "-m", "experiment=tiny", launcher, "seed=1,2", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    for job, seed in (("0", 1), ("1", 2)):
        assert json.loads((sweep / job / "provenance.json").read_text())["seed"] == seed
        assert (sweep / job / "results.md").is_file()


FAILING_MONITOR = "no/such_metric"  # early stopping raises at the first validation: a mid-fit failure


def assert_one_failed_one_finished(sweep: Path) -> float:
    """Job 0 failed mid-fit (recorded), job 1 ran to the end; returns job 1's validation Recall@15."""
    failure = json.loads((sweep / "0" / "failure.json").read_text())
    assert failure["stage"] == "train" and FAILING_MONITOR in failure["message"]
    assert not (sweep / "1" / "failure.json").exists()
    for job in ("0", "1"):
        # Lightning finalised the CSV logger of the failed fit too: its logged steps are on disk.
        assert "train/loss" in (sweep / job / "csv" / "metrics.csv").read_text(), job
    return json.loads((sweep / "1" / "metrics.json").read_text())["val/recall@15"]


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_sweep_nor_leave_loggers_open(tiny_data, tmp_path):
    """Two jobs with the CSV logger and offline W&B; the first fails mid-fit. The second still runs, into
    its own W&B run (an open run of the first job would have captured its logging), and the sweep exits 0."""
    sweep = tmp_path / "sweep"
    result = fashion_retrieval(
        "train",
        "-m",
        "experiment=tiny",
        "logger=default",
        f"paths.data_dir={tiny_data}",
        f"callbacks.early_stopping.monitor={FAILING_MONITOR},val/recall@15",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert_one_failed_one_finished(sweep)
    for job in ("0", "1"):
        assert len(list((sweep / job / "wandb").glob("offline-run-*/run-*.wandb"))) == 1, job


@pytest.mark.slow
def test_a_failed_trial_does_not_stop_an_optuna_search(tiny_data, tmp_path):
    """The Optuna sweeper aborts on a trial that raises (or returns NaN); a failed trial here is recorded
    as failed and the search ends with the finished trial as the best. The random sampler's seed 10 draws
    the failing value first."""
    sweep = tmp_path / "sweep"
    result = fashion_retrieval(
        "train",
        "-m",
        "experiment=tiny",
        "logger=csv",
        f"paths.data_dir={tiny_data}",
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=10",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        f"callbacks.early_stopping.monitor=choice({FAILING_MONITOR},val/recall@15)",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    recall = assert_one_failed_one_finished(sweep)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(recall)
    assert best["best_params"] == {"callbacks.early_stopping.monitor": "val/recall@15"}


def test_the_sweep_objective_is_the_validation_recall_of_any_stage() -> None:
    from fashion_retrieval.runs.stages import sweep_objective

    assert sweep_objective({"val/recall@15": 0.3, "val_yolo/recall@15": 0.2}) == 0.3
    assert sweep_objective({"val_yolo/recall@15": 0.2, "val_yolo/map@15": 0.1}) == 0.2  # train-adapter
    assert sweep_objective({"val_yolo/recall@15": 0.2, "val_zones/recall@15": 0.1}) is None  # ambiguous
    assert sweep_objective({"test/recall@15": 0.2}) is None
