"""The one list of stages and subcommands: the CLI's subcommands and ``--help``, ``run``'s stage names and
the stages every distributed process joins are all derived from :data:`STAGES` and :data:`COMMANDS`.

Adding a stage is one :class:`Stage` entry here plus its module ``fashion_retrieval/pipelines/<name>.py``
defining the function ``<name>(cfg, context) -> dict[str, float]``. Importing this module imports no stage
(nor torch): ``--help`` and did-you-mean read it, and each stage module is imported only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from fashion_retrieval.pipelines.context import RunContext

    StageFunction = Callable[[DictConfig, RunContext], dict[str, float]]

# The order ``--help`` lists the groups in: a dataset, a model, a ranking, its scores, the run's records.
GROUPS = ("data", "training", "search", "evaluation", "runs")


# NamedTuple rather than a dataclass: `dataclasses` (with `inspect`) would be most of `--help`'s imports.
class Stage(NamedTuple):
    """One stage: ``name`` is its module and function (``detect_train``), what ``stages=[...]`` lists.

    ``distributed``: every process of a distributed launch runs it (the others run on the first process
    only). ``reader_data``: it also runs on a reader's dataset (``data=reader``, a model and its validation
    scores); the others read the challenge format (bundles, catalogue, submission) and refuse it.
    ``uses_torch``: False for stages that never import torch (nor Lightning, torchmetrics, transformers:
    checked by tests/test_cli.py), so their runs start at once and their provenance names no GPU.
    ``uses_gpu``: False for stages that compute on the CPU whatever the machine (``serve``): their
    provenance names no GPU either, so recording it imports no torch (``serve``'s parent process, which
    leaves the model to its workers, never does).
    """

    name: str
    help: str
    group: str
    distributed: bool = False
    reader_data: bool = False
    uses_torch: bool = True
    uses_gpu: bool = True

    @property
    def command(self) -> str:
        """The subcommand: the name spelled with hyphens (``detect-train``)."""
        return self.name.replace("_", "-")

    @property
    def module(self) -> str:
        return f"fashion_retrieval.pipelines.{self.name}"

    def load(self) -> StageFunction:
        """The stage function, its module imported now (stages pull torch, Lightning, ... on import)."""
        return getattr(importlib.import_module(self.module), self.name)


class Command(NamedTuple):
    """A subcommand that is not one stage (``run``, ``reproduce``): ``module`` holds what it calls."""

    command: str
    help: str
    group: str
    module: str


STAGES: tuple[Stage, ...] = (
    Stage(
        "download",
        "fetch the catalogue's image URLs into paths.data_dir/images (the real challenge data)",
        "data",
        reader_data=True,
        uses_torch=False,
    ),
    Stage(
        "generate", "make the synthetic dataset in paths.data_dir", "data", reader_data=True, uses_torch=False
    ),
    Stage(
        "generate_collage",
        "write the real-photo collage set (clothing-dataset-small) to paths.data_dir",
        "data",
        reader_data=True,
    ),
    # `index` embeds the catalogue through Lightning predict (the feature cache), so every process joins it.
    Stage(
        "train",
        "fit + validate (Recall@15) + export catalogue embeddings and FAISS index",
        "training",
        distributed=True,
        reader_data=True,
    ),
    Stage(
        "distill",
        "train a small student (model=) to reproduce a teacher's embeddings (docs/distill.md)",
        "training",
    ),
    # Every process joins: DDP trains the backbone, rank 0 exports it.
    Stage(
        "pretrain",
        "self-supervised pre-training of model='s backbone (method=dino|simclr|mae, docs/pretraining.md); "
        "writes backbone.safetensors",
        "training",
        distributed=True,
        reader_data=True,
    ),
    Stage(
        "detect_train",
        "train the YOLO garment detector on the synthetic boxes; writes detector/best.pt",
        "training",
    ),
    Stage(
        "train_adapter",
        "train adapter= on cached frozen-backbone crop features, score the validation bundles",
        "training",
    ),
    Stage(
        "train_text",
        "train a dual encoder (model='s image tower x text='s text tower) on (packshot, caption) pairs",
        "training",
    ),
    Stage(
        "train_fusion",
        "a fusion head for composed queries on a train-text run's frozen towers (fusion.run_dir=)",
        "training",
    ),
    Stage(
        "wise_ft",
        "interpolate ckpt_path's backbone with its pretrained weights (wise_ft.alpha); new checkpoint",
        "training",
    ),
    Stage(
        "index", "embed the catalogue with ckpt_path and build the FAISS index", "search", distributed=True
    ),
    Stage("infer", "write submission.csv for the test bundles with ckpt_path", "search"),
    Stage(
        "export_onnx",
        "write ckpt_path's encoder as ONNX (+ JSON sidecar) after a parity check against PyTorch",
        "search",
    ),
    Stage(
        "self_train",
        "infer with bundle priors fed back their confident test predictions (self_train.passes)",
        "search",
    ),
    Stage(
        "serve",
        "search as a service: HTTP API and web page over run_dir= on serve.host:serve.port (docs/serving.md)",
        "search",
        uses_gpu=False,
    ),
    Stage(
        "search_text",
        "print the products a train-text run_dir= finds for search_text.query='...' (docs/text.md)",
        "search",
    ),
    Stage(
        "baselines",
        "score random, colour-histogram and pretrained-backbone retrieval on validation",
        "evaluation",
    ),
    Stage(
        "validate",
        "score the validation bundles with ckpt_path through detector=none|zones|yolo|truth",
        "evaluation",
    ),
    Stage("evaluate", "validate and score a submission against a truth file", "evaluation", uses_torch=False),
    Stage(
        "retrieval_eval",
        "precision@k, MAP@R by class on reader=... (ckpt_path, or the pretrained backbone)",
        "evaluation",
        reader_data=True,
    ),
    Stage(
        "text_eval",
        "text -> product and image + colour queries on held-out products (keyword and no-model baselines)",
        "evaluation",
    ),
    Stage(
        "report",
        "the results table of a run directory, or one row per run below a sweep folder",
        "runs",
        reader_data=True,
        uses_torch=False,
    ),
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "run",
        "the stages listed in `stages` (an experiment's recipe), in order, in one run directory",
        "runs",
        "fashion_retrieval.runs.job",
    ),
    Command(
        "reproduce",
        "rerun a past run directory from its provenance and compare the metrics (own flags: --help)",
        "runs",
        "fashion_retrieval.runs.reproduce",
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
DISTRIBUTED_STAGES: tuple[str, ...] = tuple(stage.name for stage in STAGES if stage.distributed)
READER_DATA_STAGES: tuple[str, ...] = tuple(stage.name for stage in STAGES if stage.reader_data)
TORCH_FREE_STAGES: frozenset[str] = frozenset(stage.name for stage in STAGES if not stage.uses_torch)
GPU_FREE_STAGES: frozenset[str] = frozenset(
    stage.name for stage in STAGES if not (stage.uses_torch and stage.uses_gpu)
)


def subcommands() -> dict[str, str]:
    """Every subcommand with its one-line help: the stages', then the other commands'."""
    return {entry.command: entry.help for entry in (*STAGES, *COMMANDS)}


def stage(name: str) -> Stage:
    """The stage called ``name`` (module spelling, ``detect_train``); ``ValueError`` naming the choices."""
    for entry in STAGES:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown stage {name!r}; choose from {list(STAGE_NAMES)}")
