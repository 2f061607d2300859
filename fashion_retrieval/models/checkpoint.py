"""Rebuild a trained encoder from a checkpoint alone (its config travels inside the checkpoint)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from hydra.utils import instantiate

from fashion_retrieval.models.encoder import ImageEncoder


def load_encoder(ckpt_path: str | Path) -> ImageEncoder:
    """Instantiate the encoder recorded in ``ckpt_path`` and load its trained weights (eval mode)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train first, or pass ckpt_path=...)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = checkpoint.get("encoder_config")
    if config is None:
        raise ValueError(
            f"{path}: no encoder_config in the checkpoint; was it written by fashion-retrieval train?"
        )
    config = copy.deepcopy(dict(config))
    # The trained weights replace the pretrained ones: do not read the pretrained file again.
    config["backbone"] = {**config["backbone"], "weights": None}
    encoder: ImageEncoder = instantiate(config)
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    encoder.load_state_dict(state)
    return encoder.eval()
