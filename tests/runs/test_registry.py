"""The stage registry: one list from which the CLI's subcommands, ``run``'s stage names, the distributed
stages and the reader-data stages are derived."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fashion_retrieval import cli
from fashion_retrieval.pipelines import registry
from fashion_retrieval.runs.job import subcommand_stages
from fashion_retrieval.runs.stages import check_stage_data, run_stages

DOCS = Path(__file__).parents[2] / "docs"


def test_names_are_unique_and_groups_known() -> None:
    commands = [entry.command for entry in (*registry.STAGES, *registry.COMMANDS)]
    assert len(commands) == len(set(commands))
    assert {entry.group for entry in (*registry.STAGES, *registry.COMMANDS)} == set(registry.GROUPS)


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda stage: stage.name)
def test_each_stage_names_its_module_and_function(stage: registry.Stage) -> None:
    function = stage.load()
    assert function.__module__ == stage.module == f"fashion_retrieval.pipelines.{stage.name}"
    assert list(inspect.signature(function).parameters) == ["cfg", "context"]


def test_the_cli_run_and_ddp_lists_derive_from_the_registry() -> None:
    assert list(cli.SUBCOMMANDS) == [e.command for e in (*registry.STAGES, *registry.COMMANDS)]
    # The lists as they were written by hand before the registry (main 3d3f838), and issue 19's pretrain,
    # which trains under DDP as train does.
    assert registry.DISTRIBUTED_STAGES == ("train", "pretrain", "index")
    assert set(registry.READER_DATA_STAGES) == {
        "download",
        "generate",
        "train",
        "pretrain",  # issue 19: a reader's train split (pretrain.images=reader)
        "retrieval_eval",
        "generate_collage",
        "report",
    }
    assert {"download", "generate", "evaluate", "report"} == registry.TORCH_FREE_STAGES
    for stage in registry.STAGES:
        assert subcommand_stages(stage.command, OmegaConf.create({})) == [stage.name]
    assert subcommand_stages("run", OmegaConf.create({"stages": ["generate", "train"]})) == [
        "generate",
        "train",
    ]


def test_an_unknown_stage_is_refused_with_the_registry_names(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['trian'\]; choose from \['download'"):
        run_stages(cfg, ["generate", "trian"])
    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        registry.stage("trian")


def test_reader_data_refuses_the_stages_the_registry_marks() -> None:
    cfg = OmegaConf.create(
        {"data": {"_target_": "fashion_retrieval.data.reader_datamodule.ReaderDataModule"}}
    )
    check_stage_data(cfg, ["generate", "train", "report"])
    with pytest.raises(ValueError, match=r"\['infer'\] read the challenge format"):
        check_stage_data(cfg, ["train", "infer"])


def test_docs_cli_lists_every_subcommand() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = [name for name in cli.SUBCOMMANDS if f"`{name}`" not in text]
    assert not missing, f"docs/cli.md does not list {missing}"


def test_no_stage_imports_the_run_machinery() -> None:
    """``runs/`` sits above the stages: it runs them through the registry, and they never import it
    (at module level or inside a function)."""
    offenders = []
    for path in sorted((Path(registry.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):  # `from fashion_retrieval import runs` too
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[:2] == ["fashion_retrieval", "runs"]
            ]
    assert not offenders


# The modules of pipelines/ that are not stages: the stage interface, the registry, and code shared by stages
# of one kind (train and distill fit the same way).
STAGE_SUPPORT = {"context", "registry", "fitting"}


def test_no_stage_module_imports_another_stage_module() -> None:
    """Stages share code through the packages below them (search/, evaluation/, ...), never through each
    other: each stage module imports at most the stage interface and the shared support modules."""
    package = Path(registry.__file__).parent
    stages = {path.stem for path in package.glob("*.py")} - STAGE_SUPPORT - {"__init__"}
    offenders = []
    for stage in sorted(stages):
        for node in ast.walk(ast.parse((package / f"{stage}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            parts = [name.split(".") for name in names]
            offenders += [
                f"{stage}.py imports {'.'.join(p[:3])}"
                for p in parts
                if p[:2] == ["fashion_retrieval", "pipelines"] and len(p) > 2 and p[2] in stages
            ]
    assert not offenders, sorted(set(offenders))
