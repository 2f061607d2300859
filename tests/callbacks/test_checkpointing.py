"""Checkpoints on a full disk and across resumes: the previous file survives a failed write, the error says
what happened and what to do, and the best checkpoint follows a resume into another directory."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from test_configs import compose_config

from fashion_retrieval.callbacks import checkpointing
from fashion_retrieval.callbacks.checkpointing import (
    AtomicCheckpointIO,
    BestCheckpoint,
    CheckpointWriteError,
    use_atomic_checkpoints,
)

MONITOR = {"monitor": "val/recall@15", "mode": "max", "filename": "best", "save_top_k": 1}


def test_a_full_disk_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 1, "weights": torch.ones(4)}, target)
    previous = target.read_bytes()

    real_open = open

    class FullDisk:
        """A file whose write puts part of the bytes on disk, then finds the disk full."""

        def __init__(self, path: Path, mode: str) -> None:
            self.handle = real_open(path, mode)

        def write(self, data: bytes) -> int:
            self.handle.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    monkeypatch.setattr(checkpointing, "open", FullDisk, raising=False)
    with pytest.raises(CheckpointWriteError) as failed:
        writer.save_checkpoint({"epoch": 2, "weights": torch.zeros(4)}, target)
    assert failed.value.errno == errno.ENOSPC
    message = str(failed.value)
    assert str(target) in message and "full" in message and "intact" in message and "ckpt_path=" in message
    assert target.read_bytes() == previous
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"], "no temporary file is left"
    assert torch.load(target, weights_only=True)["epoch"] == 1


FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from fashion_retrieval.callbacks.checkpointing import AtomicCheckpointIO
writer = AtomicCheckpointIO()
writer.save_checkpoint({"epoch": 1, "weights": torch.ones(8)}, sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    writer.save_checkpoint({"epoch": 2, "weights": torch.ones(100_000)}, sys.argv[1])
except OSError as error:
    print(type(error).__name__, error.errno, error)
"""


def test_a_real_write_failure_from_the_os_keeps_the_previous_checkpoint(tmp_path) -> None:
    """No mock: the file-size limit makes the kernel refuse the write part-way (``[Errno 27]``)."""
    target = tmp_path / "last.ckpt"
    result = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT, str(target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"CheckpointWriteError {errno.EFBIG} "), result.stdout
    assert str(target) in result.stdout
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_every_trainer_config_writes_atomic_checkpoints(trainer: str, tmp_path) -> None:
    cfg = compose_config([f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1"])
    built = use_atomic_checkpoints(instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False))
    assert type(built.strategy.checkpoint_io) is AtomicCheckpointIO


def checkpoint_state(directory: Path, best: Path, score: float) -> dict:
    return {
        "monitor": MONITOR["monitor"],
        "best_model_score": torch.tensor(score),
        "best_model_path": str(best),
        "current_score": torch.tensor(score - 0.1),
        "dirpath": str(directory),
        "best_k_models": {str(best): torch.tensor(score)},
        "kth_best_model_path": str(best),
        "kth_value": torch.tensor(score),
        "last_model_path": "",
    }


def test_resuming_into_a_new_directory_keeps_the_best_score_and_copies_the_best_checkpoint(tmp_path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    best = old / "best.ckpt"
    torch.save({"epoch": 1}, best)
    callback = BestCheckpoint(dirpath=str(new), **MONITOR)
    callback.load_state_dict(checkpoint_state(old, best, 0.5))
    assert callback.best_model_path == str(new / "best.ckpt")
    assert float(callback.best_model_score) == pytest.approx(0.5)
    assert callback.best_k_models == {str(new / "best.ckpt"): callback.best_model_score}
    assert (new / "best.ckpt").read_bytes() == best.read_bytes()
    assert best.is_file(), "the earlier run's files are left alone"


def test_resuming_without_the_earlier_best_checkpoint_fails_naming_it(tmp_path) -> None:
    callback = BestCheckpoint(dirpath=str(tmp_path / "new"), **MONITOR)
    gone = tmp_path / "old" / "best.ckpt"
    with pytest.raises(FileNotFoundError, match=str(gone)):
        callback.load_state_dict(checkpoint_state(tmp_path / "old", gone, 0.5))
