"""provenance.json: git state, library versions, machine, and its writing by run_stages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import fashion_retrieval
from fashion_retrieval.pipelines.registry import Stage
from fashion_retrieval.runs.provenance import git_state, hardware, package_versions, provenance
from fashion_retrieval.runs.stages import run_stages


def _git(repo: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(repo), *arguments], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A one-commit repository tracking ``module.py``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "module.py").write_text("x = 1\n")
    _git(repo, "add", "module.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return repo


def test_git_state_of_a_clean_then_dirty_checkout(checkout: Path) -> None:
    state = git_state(checkout / "module.py")
    assert len(state["commit"]) == 40 and state["dirty"] is False and state["reason"] is None
    (checkout / "untracked.txt").write_text("outputs do not make the code dirty")
    assert git_state(checkout / "module.py")["dirty"] is False
    (checkout / "module.py").write_text("x = 2\n")
    assert git_state(checkout / "module.py")["dirty"] is True


def test_git_state_of_an_untracked_file_inside_a_repository_is_unknown(checkout: Path) -> None:
    # A wheel installed in a virtualenv that lives inside some other repository.
    installed = checkout / "venv" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    state = git_state(installed / "__init__.py")
    assert state["commit"] is None and state["dirty"] is None and "not in a git checkout" in state["reason"]


def test_git_state_without_git(monkeypatch: pytest.MonkeyPatch, checkout: Path) -> None:
    monkeypatch.setenv("PATH", "")
    assert git_state(checkout / "module.py") == {
        "commit": None,
        "dirty": None,
        "reason": "git is not installed",
    }


def test_package_versions_marks_missing_packages_none() -> None:
    versions = package_versions({"omegaconf": ("omegaconf",), "absent": ("no_such_module_xyz",)})
    assert versions["python"].count(".") == 2
    assert versions["omegaconf"] and versions["absent"] is None


def test_package_versions_are_looked_up_by_module_whatever_the_distribution_is_called() -> None:
    import importlib.metadata

    # The modules yaml and PIL come from the distributions PyYAML and pillow; ultralytics may come from
    # ultralytics-opencv-headless (this environment's), which a lookup by distribution name missed.
    versions = package_versions({"yaml": ("yaml",), "PIL": ("no_such_module_xyz", "PIL")})
    assert versions["yaml"] == importlib.metadata.version("PyYAML")
    assert versions["PIL"] == importlib.metadata.version("pillow")
    assert package_versions()["ultralytics"] is not None


def test_hardware_reports_the_machine() -> None:
    machine = hardware()
    assert machine["cpu_count"] >= 1
    assert machine["memory_bytes"] is None or machine["memory_bytes"] > 0
    assert machine["cuda_devices"] is None or isinstance(machine["cuda_devices"], list)


def test_provenance_outside_hydra_is_json_serialisable(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    # Tests that compose configs leave Hydra's process-wide config set: this one is about "no Hydra job".
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    record = provenance(OmegaConf.create({"seed": 7}), ["report"])
    assert record["seed"] == 7 and record["overrides"] is None and record["stages"] == ["report"]
    assert set(record["packages"]) >= {"torch", "faiss", "numpy", "hydra-core", "python"}
    json.dumps(record)


def test_run_stages_writes_provenance_once(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"seed": 3, "paths": {"output_dir": str(tmp_path)}, "report": {"metric": "m"}})
    run_stages(cfg, ["report"])
    first = json.loads((tmp_path / "provenance.json").read_text())
    assert first["seed"] == 3 and first["git"] == git_state(fashion_retrieval.__file__)
    # A later invocation in the same directory writes beside the run's record, not over it.
    run_stages(cfg, ["report"])
    assert json.loads((tmp_path / "provenance.json").read_text()) == first
    assert (tmp_path / "provenance_report.json").is_file()


def test_run_stages_records_the_failed_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_stage(cfg: object, context: object) -> dict[str, float]:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Stage, "load", lambda self: failing_stage)
    # `train` checks model='s weights first: an encoder without a backbone has none to check.
    cfg = OmegaConf.create({"seed": 3, "paths": {"output_dir": str(tmp_path)}, "model": {"encoder": {}}})
    with pytest.raises(RuntimeError):
        run_stages(cfg, ["train"])
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert failure == {"stage": "train", "error": "RuntimeError", "message": "out of memory"}
    assert (tmp_path / "provenance.json").is_file()


def test_torch_free_stages_do_not_name_gpus(monkeypatch) -> None:
    import importlib

    from omegaconf import OmegaConf

    module = importlib.import_module("fashion_retrieval.runs.provenance")
    calls: list[int] = []
    monkeypatch.setattr(module, "cuda_devices", lambda: calls.append(1) or [])
    cfg = OmegaConf.create({"seed": 1})
    assert module.provenance(cfg, ["generate", "report"])["hardware"]["cuda_devices"] is None and not calls
    assert module.provenance(cfg, ["train"])["hardware"]["cuda_devices"] == [] and calls == [1]
