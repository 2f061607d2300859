"""``run_stages``: the stages of one invocation, in order, in one run directory, with its records
(resolved config, provenance, merged metrics, failure) and its lock. Stages come from the registry
(:mod:`fashion_retrieval.pipelines.registry`); no stage imports this module."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.io import RUN_CONFIG_FILE, atomic_open, write_json
from fashion_retrieval.locks import directory_lock, is_launch_leader
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.registry import DISTRIBUTED_STAGES, READER_DATA_STAGES, STAGE_NAMES, stage
from fashion_retrieval.runs.provenance import PROVENANCE_FILE, provenance
from fashion_retrieval.runs.run_dir import invocation_file, record_failure, update_metrics
from fashion_retrieval.runs.trainer_config import check_trainer_config

log = logging.getLogger(__name__)

# Training on a reader's dataset (`data=reader`, conf/data/reader.yaml) leaves a model and its validation
# scores; stages without `reader_data` in the registry read the challenge format and refuse it.
READER_DATA_TARGET = "fashion_retrieval.data.reader_datamodule.ReaderDataModule"


def check_stage_data(cfg: DictConfig, stages: Sequence[str]) -> None:
    """Refuse, before anything runs, a stage that needs the challenge format when ``data=reader``."""
    if cfg.get("data") is None or cfg.data.get("_target_") != READER_DATA_TARGET:
        return
    refused = [s for s in stages if s not in READER_DATA_STAGES]
    if refused:
        raise ValueError(
            f"stage(s) {refused} read the challenge format (bundles, catalogue, submission) and do not run "
            f"on data=reader; stages for a reader's dataset: {list(READER_DATA_STAGES)}"
        )


def run_stages(cfg: DictConfig, stages: Sequence[str]) -> float | None:
    """Run ``stages`` in order in the current run directory; returns the validation Recall@15 when known
    (:func:`sweep_objective`, the value Hydra sweepers optimise).

    The run directory is locked for the whole invocation (:func:`~fashion_retrieval.locks.directory_lock`):
    a second invocation writing the same directory meanwhile is refused, naming the holder."""
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGE_NAMES)}")
    check_trainer_config(OmegaConf.to_container(cfg.trainer, resolve=True) if "trainer" in cfg else {})
    check_stage_data(cfg, stages)
    output_dir = Path(cfg.paths.output_dir)
    if not is_launch_leader():
        return _run_as_follower(cfg, stages, output_dir)
    with directory_lock(output_dir, f"fashion-retrieval {' '.join(stages)}"):
        return _run_as_leader(cfg, stages, output_dir)


def _run_as_leader(cfg: DictConfig, stages: Sequence[str], output_dir: Path) -> float | None:
    with atomic_open(invocation_file(output_dir, RUN_CONFIG_FILE, stages), "w") as handle:
        handle.write(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(invocation_file(output_dir, PROVENANCE_FILE, stages), provenance(cfg, stages))
    context = RunContext(output_dir=output_dir)
    metrics: dict[str, float] = {}
    try:
        if "train" in stages:
            current = "train"
            check_model_weights(cfg)
        for current in stages:
            log.info("stage %s", current)
            metrics = update_metrics(output_dir, stage(current).load()(cfg, context))
            if current == "train":
                context.trained_checkpoint = output_dir / "checkpoints" / "best.ckpt"
    except Exception as error:
        record_failure(output_dir, current, error)
        _close_wandb(failed=True)
        raise
    finally:
        _close_wandb()
    return sweep_objective(metrics)


def check_model_weights(cfg: DictConfig) -> None:
    """``train`` builds ``model=`` from its pretrained weights: check them (present, or ``random`` asked for)
    before any stage runs, so a missing file fails in seconds rather than after ``generate``."""
    from fashion_retrieval.models.weights import check_pretrained  # torch: only runs that train pay for it

    check_pretrained(cfg.model)


def sweep_objective(metrics: dict[str, float]) -> float | None:
    """The value a sweeper optimises: ``val/recall@15`` (training's validation), else the one
    ``val_<name>/recall@15`` of ``validate`` or ``train-adapter``; ``None`` when absent or ambiguous."""
    if "val/recall@15" in metrics:
        return metrics["val/recall@15"]
    scored = [key for key in metrics if re.fullmatch(r"val_[^/]+/recall@15", key)]
    return metrics[scored[0]] if len(scored) == 1 else None


def _run_as_follower(cfg: DictConfig, stages: Sequence[str], output_dir: Path) -> None:
    """Another DDP process: join the distributed stages; the leader writes every file and runs the rest."""
    context = RunContext(output_dir=output_dir)
    for name in stages:
        if name in DISTRIBUTED_STAGES:
            stage(name).load()(cfg, context)
        if name == "train":
            context.trained_checkpoint = output_dir / "checkpoints" / "best.ckpt"
    return None


def _close_wandb(failed: bool = False) -> None:
    """A failed job must not leave a W&B run open: the next job of a multirun would log into it. Its run
    is finished with exit code 1, so W&B shows it as failed."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else None)
