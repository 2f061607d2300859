"""The W&B logger with its run name, group and tags taken from the experiment and the Hydra sweep.

Offline unless configured otherwise (``conf/logger/wandb.yaml``); what is logged besides Lightning's
metrics is in :mod:`fashion_retrieval.callbacks.wandb_tables`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)

# W&B refuses longer tags.
MAX_TAG_LENGTH = 64


@dataclass(frozen=True)
class Sweep:
    """A Hydra multirun job: the sweep folder's name (its timestamp by default) and the job number."""

    name: str
    job: int


@dataclass(frozen=True)
class RunLabels:
    name: str
    group: str
    tags: tuple[str, ...]


def run_labels(
    run_name: str,
    experiment: str | None = None,
    sweep: Sweep | None = None,
    group: str | None = None,
    extra_tags: Sequence[str] = (),
) -> RunLabels:
    """Name, group and tags of a W&B run.

    A single run is grouped with the other runs of its ``run_name``; a sweep job is grouped with the other
    jobs of its sweep (``<run_name>-sweep-<sweep name>``) and named ``<run_name>-<job>``. An explicit
    ``group`` wins. Tags: the run name, ``experiment:<name>``, ``sweep:<name>``, then ``extra_tags``
    (duplicates dropped, each cut to W&B's 64 characters).
    """
    name = run_name if sweep is None else f"{run_name}-{sweep.job}"
    if group is None:
        group = run_name if sweep is None else f"{run_name}-sweep-{sweep.name}"
    tags = [run_name]
    if experiment:
        tags.append(f"experiment:{experiment}")
    if sweep is not None:
        tags.append(f"sweep:{sweep.name}")
    tags.extend(str(tag) for tag in extra_tags)
    unique = dict.fromkeys(tag[:MAX_TAG_LENGTH] for tag in tags if tag)
    return RunLabels(name=name, group=group, tags=tuple(unique))


def hydra_sweep() -> Sweep | None:
    """The current job's sweep under ``-m`` multirun; ``None`` in a single run or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    return Sweep(name=Path(str(hydra.sweep.dir)).name, job=int(hydra.job.num))


class ExperimentWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` named, grouped and tagged by :func:`run_labels` from the run name,
    ``experiment_name`` (``hydra:runtime.choices.experiment``) and the Hydra sweep this job belongs to.

    Every other argument goes to ``WandbLogger`` (and from there to ``wandb.init``).
    """

    def __init__(
        self,
        name: str = "default",
        group: str | None = None,
        tags: Sequence[str] = (),
        experiment_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        labels = run_labels(name, experiment_name, hydra_sweep(), group, tags)
        log.debug("wandb run %s, group %s, tags %s", labels.name, labels.group, labels.tags)
        super().__init__(name=labels.name, group=labels.group, tags=list(labels.tags), **kwargs)
        self.labels = labels
