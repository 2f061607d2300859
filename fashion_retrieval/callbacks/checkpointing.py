"""Checkpoints that survive a full disk and a resume into another directory.

- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file beside its target, flushes it to
  disk and renames it (:func:`~fashion_retrieval.io.atomic_path`). Lightning's own writer stages the file
  in the system's temporary folder and moves it, which is a copy when the outputs are on another
  filesystem: a full disk then left a truncated ``last.ckpt`` under its final name.
  :func:`use_atomic_checkpoints` installs it on a Trainer; every Trainer the stages build for fitting
  goes through it.
- :class:`BestCheckpoint` is Lightning's ``ModelCheckpoint`` keeping the best model across a resume into
  a new directory: Lightning restores the best score only when the directory is the same, so the first
  epoch after such a resume always became "best", however bad. Here the best score is restored and the
  best checkpoint is copied into the new directory.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from fashion_retrieval.io import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CheckpointWriteError",
    "carry_best_checkpoint",
    "checkpoint_write_error",
    "copy_checkpoint",
    "use_atomic_checkpoints",
]

# "No space left", "quota exceeded", "file too large" (a size limit): where it is written, not what.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names it and says what to do."""


def checkpoint_write_error(path: Path, error: OSError) -> CheckpointWriteError:
    """The error to raise when writing checkpoint ``path`` failed with ``error`` (the previous file at
    ``path``, if any, is untouched: the write went to a temporary file beside it)."""
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was left behind"
    if error.errno in _FULL:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        cause = "a file-size limit (ulimit -f) was reached" if error.errno == errno.EFBIG else "it is full"
        advice = (
            f"the disk holding {path.parent} has {free} and {cause}. Make room there, or send the outputs "
            "to a disk with room (paths.output_dir=...), then resume with "
            "ckpt_path=<run dir>/checkpoints/last.ckpt"
        )
    else:
        advice = "check that the folder exists and is writable"
    return CheckpointWriteError(
        error.errno, f"cannot write checkpoint {path}: {error.strerror or error}; {kept}; {advice}"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to memory, then to a temporary file beside the target, fsync, rename; remote URLs go to
    Lightning's writer. Serialised first (as Lightning does) because torch's file writer reports a failed
    write as a ``RuntimeError`` ("unexpected pos") that no longer says the disk was full."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            with atomic_path(target, durable=True) as tmp, open(tmp, "wb") as handle:
                handle.write(buffer.getbuffer())
        except OSError as error:
            raise checkpoint_write_error(target, error) from error


def use_atomic_checkpoints(trainer: pl.Trainer) -> pl.Trainer:
    """Make ``trainer`` write its checkpoints through :class:`AtomicCheckpointIO`, unless its config chose
    another writer than Lightning's default (e.g. an asynchronous one, ``plugins=``). Returns ``trainer``."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


def carry_best_checkpoint(source: str | os.PathLike[str], directory: str | os.PathLike[str]) -> Path:
    """Copy the best checkpoint ``source`` of an earlier run into ``directory`` (same file name, written
    atomically); returns the copy. FileNotFoundError, saying what to do, when ``source`` is gone."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(
            f"the checkpoint being resumed records its best model as {source}, which is gone: without it "
            "this run's best.ckpt, metrics and index would follow a worse epoch. Restore that file, or "
            "resume in its run directory"
        )
    target = Path(directory) / source.name
    copy_checkpoint(source, target)
    return target


def copy_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a checkpoint file to ``target`` atomically (temporary file beside it, fsync, rename); a failed
    write raises :func:`checkpoint_write_error`, ``target``'s previous content intact."""
    target = Path(target)
    try:
        with atomic_path(target, durable=True) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as error:
        raise checkpoint_write_error(target, error) from error


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) whose best score and best checkpoint survive a resume into
    another ``dirpath``: the best file is copied into this ``dirpath`` and tracking goes on from its score,
    so a later epoch replaces it only by beating it. Checkpoints without a monitored score (``monitor``
    unset) resume as Lightning's do."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        source_dir = state_dict.get("dirpath")
        score = state_dict.get("best_model_score")
        best = state_dict.get("best_model_path")
        if self.monitor is None or score is None or not best or source_dir is None or self.dirpath is None:
            super().load_state_dict(state_dict)
            return
        if os.path.realpath(source_dir) == os.path.realpath(self.dirpath):
            super().load_state_dict(state_dict)
            return
        copy = str(carry_best_checkpoint(best, self.dirpath))
        # Lightning's loader would only warn that it drops the score; the copy below replaces what it drops.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)
        self.best_model_path = self.kth_best_model_path = copy
        self.best_model_score = self.kth_value = score
        self.best_k_models = {copy: score}
        log.info("resume: best checkpoint %s (%s %s) copied to %s", best, self.monitor, float(score), copy)
