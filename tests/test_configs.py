"""Every config composes, and every ``_target_`` names a real class or function."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from fashion_retrieval.cli import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def targets(node, path="") -> list[tuple[str, str]]:
    found = []
    if isinstance(node, DictConfig):
        for key in node:
            if key == "hydra":
                continue
            value = node._get_node(key)
            if key == "_target_":
                found.append((path, node[key]))
            elif isinstance(value, (DictConfig, ListConfig)):
                found += targets(value, f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node):
            found += targets(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_targets_exist(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.run_name == experiment
    for path, target in targets(cfg):
        assert get_object(target) is not None, f"{experiment}: {path}._target_={target}"


def test_every_group_option_composes():
    for group in ("model", "logger", "trainer", "callbacks", "synthetic", "data", "loss"):
        for option in sorted(p.stem for p in (config_dir() / group).glob("*.yaml")):
            cfg = compose_config([f"{group}={option}"])
            for path, target in targets(cfg):
                assert get_object(target) is not None, f"{group}={option}: {path}._target_={target}"


def test_each_experiment_has_a_ledger_entry():
    ledger = Path(__file__).resolve().parents[1] / "experiments"
    missing = [name for name in EXPERIMENTS if not (ledger / name / "README.md").is_file()]
    assert not missing, f"experiments without experiments/<name>/README.md: {missing}"


def test_resolved_default_config_has_no_missing_values():
    cfg = compose_config(["experiment=tiny"])
    OmegaConf.resolve(cfg.model)
    assert cfg.data.mean == cfg.model.encoder.backbone.mean
