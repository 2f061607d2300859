"""``wise-ft``: interpolate the trained checkpoint's backbone with its pretrained weights (WiSE-FT).

Reads the checkpoint of ``train`` in this run, else ``ckpt_path`` (as data only); rebuilds the pretrained
encoder from the config stored in it (our encoder classes only; the pretrained weights it names must be
installed) and writes a checkpoint of the same layout to ``wise_ft.output_path``, which every later
stage of the run then uses (``index``,
``validate``, ``infer``, ``retrieval-eval`` load it like any trained checkpoint). The curve over alpha:
one invocation per ``wise_ft.alpha`` (experiments/recipes/README.md).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from omegaconf import DictConfig

from fashion_retrieval.callbacks.checkpointing import AtomicCheckpointIO
from fashion_retrieval.models.checkpoint import (
    CheckpointError,
    build_encoder,
    load_checkpoint,
    names_pretrained_weights,
)
from fashion_retrieval.models.wise_ft import backbone_keys, interpolate_weights
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

ENCODER_PREFIX = "encoder."


def wise_ft(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    source = context.checkpoint(cfg)
    alpha = float(cfg.wise_ft.alpha)
    checkpoint = load_checkpoint(source)
    config = checkpoint.get("encoder_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{source}: no encoder_config in the checkpoint; was it written by fashion-retrieval train?"
        )
    if not names_pretrained_weights(config):
        raise ValueError(
            f"{source}: its encoder names no pretrained weights (random initialisation), "
            "so there is nothing to interpolate towards"
        )
    # Built only from the project's encoder classes (the stored config is data); the pretrained weights
    # it names are read like any weights file (models/weights.py).
    pretrained = build_encoder(copy.deepcopy(config)).state_dict()
    state = checkpoint["state_dict"]
    tuned = {
        key[len(ENCODER_PREFIX) :]: value for key, value in state.items() if key.startswith(ENCODER_PREFIX)
    }
    keys = backbone_keys(tuned)
    mixed = interpolate_weights(pretrained, tuned, alpha, keys)
    checkpoint["state_dict"] = {**state, **{ENCODER_PREFIX + key: value for key, value in mixed.items()}}
    checkpoint["wise_ft"] = {"alpha": alpha, "source": str(source)}
    output = Path(cfg.wise_ft.output_path)
    AtomicCheckpointIO().save_checkpoint(checkpoint, output)  # the writer of training's checkpoints
    log.info(
        "WiSE-FT alpha %.3g: %d backbone tensors interpolated, %s -> %s", alpha, len(keys), source, output
    )
    context.trained_checkpoint = output
    return {"wise_ft/alpha": alpha}
