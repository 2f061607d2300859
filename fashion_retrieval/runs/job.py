"""The function Hydra runs for each job, single run or multirun, whichever launcher runs it.

A failed job of a multirun must not stop the sweep: Hydra's basic sweeper re-raises a job's exception
once its batch is done (so later batches never run), and the Optuna sweeper does so as soon as a batch
holds a failure (``max_failure_rate: 0``). In a multirun the job therefore records its failure
(``failure.json``, written by ``run_stages``, which also closes the W&B run), logs it and returns
``None``: the sweep goes on, ``report`` marks the job ``failed``, and the Optuna sweeper, which cannot
cast ``None`` to a float, records the trial as failed (NaN would crash it: Optuna 2 refuses a NaN value,
then the sweeper's own fallback ``tell`` refuses a value for a failed trial). A single run still raises,
so its exit status is non-zero; an error whose message is the whole story (a malformed submission's problem
list, a wrong ``trainer:`` value type) is printed alone, without a traceback, and the exit status is 1.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from fashion_retrieval.machine import register_resolvers
from fashion_retrieval.pipelines.registry import STAGES

log = logging.getLogger(__name__)
# ${auto_workers:...} in the configs: here, not in the package's __init__, so --help does not import
# omegaconf; every Hydra run and every launcher's worker process (unpickling StageTask) imports this module.
register_resolvers()


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (``-m``), in whatever process or machine runs it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def subcommand_stages(subcommand: str, cfg: DictConfig) -> list[str]:
    """The stages a subcommand runs: ``run`` takes ``cfg.stages``; a stage's subcommand is that stage, by
    its registry name (``detect-train`` -> ``detect_train``)."""
    if subcommand == "run":
        return list(cfg.stages)
    return [next(stage.name for stage in STAGES if stage.command == subcommand)]


def user_errors() -> tuple[type[Exception], ...]:
    """Errors about the user's input whose message says everything: printed alone, exit status 1."""
    from fashion_retrieval.evaluation.submission import SubmissionError
    from fashion_retrieval.runs.trainer_config import TrainerConfigError

    return SubmissionError, TrainerConfigError


class StageTask:
    """Hydra's task function for ``fashion-retrieval <subcommand>``; returns ``val/recall@15`` (what
    sweepers optimise), ``None`` for a failed multirun job or when the stages compute no such metric.

    A module-level class rather than a closure: launchers that run jobs in other processes (joblib) or on
    other machines (submitit, SLURM) pickle it, and plain ``pickle`` only handles importable objects.
    """

    def __init__(self, subcommand: str) -> None:
        self.subcommand = subcommand

    def __call__(self, cfg: DictConfig) -> float | None:
        from fashion_retrieval.runs.stages import run_stages

        try:
            return run_stages(cfg, subcommand_stages(self.subcommand, cfg))
        except Exception as error:
            if not in_multirun():
                if isinstance(error, user_errors()):
                    # The message is the whole story (a list of what to fix): no traceback around it.
                    print(f"fashion-retrieval {self.subcommand}: {error}", file=sys.stderr)
                    raise SystemExit(1) from None
                raise
            # Exception, not BaseException: Ctrl-C and SystemExit still end the whole sweep.
            log.exception(
                "job failed in %s (failure.json); the sweep goes on with the next job", cfg.paths.output_dir
            )
            return None

    def __repr__(self) -> str:
        return f"StageTask({self.subcommand!r})"
