"""Early checks of the ``trainer:`` config: a wrong value type fails before any stage runs, naming the key,
instead of as a ``TypeError`` from deep inside Lightning minutes later."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Lightning Trainer arguments by the values they take (None is allowed for every one of them).
INT_KEYS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "accumulate_grad_batches",
    "num_sanity_val_steps",
    "num_nodes",
)
NUMBER_KEYS = (  # int (batches) or float (a fraction)
    "gradient_clip_val",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "val_check_interval",
    "overfit_batches",
)
BOOL_KEYS = (
    "enable_checkpointing",
    "enable_progress_bar",
    "enable_model_summary",
    "inference_mode",
    "sync_batchnorm",
    "use_distributed_sampler",
    "barebones",
)
INT_OR_BOOL_KEYS = ("fast_dev_run",)


class TrainerConfigError(ValueError):
    """A ``trainer:`` value has the wrong type; the message names every such key."""


def _problem(key: str, value: Any) -> str | None:
    """What is wrong with ``trainer.<key>=value``, ``None`` when nothing is."""
    is_bool = isinstance(value, bool)
    if value is None:
        return None
    if key in INT_KEYS and (is_bool or not isinstance(value, int)):
        return "an integer"
    if key in NUMBER_KEYS and (is_bool or not isinstance(value, (int, float))):
        return "a number (an int counts batches, a float is a fraction)"
    if key in BOOL_KEYS and not is_bool:
        return "true or false"
    if key in INT_OR_BOOL_KEYS and not isinstance(value, int):
        return "true, false or an integer"
    return None


def check_trainer_config(trainer: Mapping[str, Any]) -> None:
    """Raise :class:`TrainerConfigError` listing every ``trainer.<key>`` whose value has the wrong type (e.g.
    ``trainer.max_epochs=abc``); keys not listed here are left to Lightning."""
    problems = []
    for key, value in trainer.items():
        expected = _problem(str(key), value)
        if expected is not None:
            problems.append(f"trainer.{key}: expected {expected}, got {value!r} ({type(value).__name__})")
    if problems:
        raise TrainerConfigError(
            "invalid trainer config:\n" + "\n".join(f"- {problem}" for problem in problems)
        )
