"""A trained dual encoder loaded from its run directory or checkpoint: texts and images into one space.

``train-text`` writes ``checkpoints/best.ckpt`` (the image tower's config as every checkpoint, plus
``text_config``, both plain data) and ``checkpoints/tokenizer.json`` beside it. :func:`load_dual_encoder`
rebuilds both towers from those files alone (random initialisation, then the trained weights; no
pretrained file, no hub) for the CLI and the service::

    dual = load_dual_encoder("outputs/text_quickstart/<run>")
    texts = dual.embed_texts(["red striped shirt"])        # (1, D) float32, L2-normalised
    images = dual.embed_images(uint8_batch)                # (B, D), same space
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fashion_retrieval.models.checkpoint import CheckpointError, load_checkpoint, load_encoder
from fashion_retrieval.models.text import TOKENIZER_FILE, TextEncoder

BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"
TEXT_PREFIX = "text_encoder."


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run directory's ``checkpoints/best.ckpt``."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST_CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint; is {path.parent.parent} a train-text run?")
    return path


class DualEncoder(nn.Module):
    """The two trained towers, in eval mode. ``embed_texts`` and ``embed_images`` return ``(N, D)`` float32
    L2-normalised NumPy arrays in one space (cosine similarity = dot product)."""

    def __init__(self, image_encoder: nn.Module, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.image_encoder = image_encoder.eval()
        self.text_encoder = text_encoder.eval()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """``texts`` (N strings) -> ``(N, D)`` float32."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        parts = [
            self.text_encoder.encode_text(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
        ]
        if not parts:
            return np.zeros((0, self.text_encoder.embedding_dim), dtype=np.float32)
        return torch.cat(parts).cpu().numpy()

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> np.ndarray:
        """``(B, 3, H, W)`` uint8 (0..255) or float (0..1) RGB -> ``(B, D)`` float32."""
        device = next(self.image_encoder.parameters()).device
        return self.image_encoder(images.to(device)).float().cpu().numpy()


def load_text_encoder(ckpt_path: str | Path) -> TextEncoder:
    """The trained text tower of a ``train-text`` checkpoint, its tokenizer read from ``tokenizer.json``
    beside it (eval mode). Errors name the file."""
    path = Path(ckpt_path)
    checkpoint = load_checkpoint(path)
    config = checkpoint.get("text_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: no text_config in the checkpoint; was it written by train-text?")
    try:
        encoder = TextEncoder.from_checkpoint_config(copy.deepcopy(config), path.parent / TOKENIZER_FILE)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    state = {
        k[len(TEXT_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(TEXT_PREFIX)
    }
    encoder.load_state_dict(state)
    return encoder.eval()


def load_dual_encoder(path: str | Path) -> DualEncoder:
    """Both towers of a ``train-text`` run directory (its best checkpoint) or checkpoint file."""
    checkpoint = resolve_checkpoint(path)
    return DualEncoder(load_encoder(checkpoint), load_text_encoder(checkpoint))
