"""What the stages of one invocation share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig


@dataclass
class RunContext:
    output_dir: Path
    trained_checkpoint: Path | None = None

    def checkpoint(self, cfg: DictConfig) -> Path:
        """The model to use: the one ``train`` just wrote in this run, else ``ckpt_path``."""
        if self.trained_checkpoint is not None:
            return self.trained_checkpoint
        if not cfg.get("ckpt_path"):
            raise ValueError(
                "no trained model: run the train stage first or pass ckpt_path=/path/to/best.ckpt"
            )
        return Path(cfg.ckpt_path)
