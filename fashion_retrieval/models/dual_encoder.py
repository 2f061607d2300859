"""A trained dual encoder loaded from its run directory or checkpoint: texts and images into one space.

``train-text`` writes ``checkpoints/best.ckpt`` (the image tower's config as every checkpoint, plus
``text_config``, both plain data) and ``checkpoints/tokenizer.json`` beside it. :func:`load_dual_encoder`
rebuilds both towers from those files alone (random initialisation, then the trained weights; no
pretrained file, no hub) for the CLI and the service::

    dual = load_dual_encoder("outputs/text_quickstart/<run>")
    texts = dual.embed_texts(["red striped shirt"])        # (1, D) float32, L2-normalised
    images = dual.embed_images(uint8_batch)                # (B, D), same space
    products = dual.embed_products(packshot_paths)         # (N, D), at the training packshot size

``embed_texts`` and ``embed_products`` are the two functions text-eval's
:class:`~fashion_retrieval.evaluation.text_retrieval.TextImageEncoder` asks of a model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.models.checkpoint import CheckpointError, load_checkpoint, load_encoder
from fashion_retrieval.models.inference import embed_loader
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
    """The two trained towers, in eval mode. ``embed_texts``, ``embed_images`` and ``embed_products``
    return ``(N, D)`` float32 L2-normalised NumPy arrays in one space (cosine similarity = dot product);
    ``image_size``: ``(H, W)`` packshots are resized to by ``embed_products`` (the training's)."""

    def __init__(
        self, image_encoder: nn.Module, text_encoder: TextEncoder, image_size: Sequence[int]
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder.eval()
        self.text_encoder = text_encoder.eval()
        self.image_size = tuple(int(x) for x in image_size)

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

    @torch.no_grad()
    def embed_products(self, image_paths: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Packshot files -> ``(N, D)`` float32, each resized to :attr:`image_size` as in training."""
        loader = DataLoader(ImageDataset(image_paths, eval_transform(self.image_size)), batch_size=batch_size)
        return embed_loader(self.image_encoder, loader, next(self.image_encoder.parameters()).device)


def load_text_encoder(ckpt_path: str | Path, checkpoint: dict | None = None) -> TextEncoder:
    """The trained text tower of a ``train-text`` checkpoint (``checkpoint``: its contents, when already
    read), its tokenizer read from ``tokenizer.json`` beside it (eval mode). Errors name the file."""
    path = Path(ckpt_path)
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
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
    """Both towers of a ``train-text`` run directory (its best checkpoint) or checkpoint file; products
    are embedded at the training's packshot size (``data.catalogue_size``), else the backbone's native one."""
    checkpoint_path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(checkpoint_path)
    image_encoder = load_encoder(checkpoint_path)
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    size = data.get("catalogue_size") or image_encoder.native_input_size
    return DualEncoder(image_encoder, load_text_encoder(checkpoint_path, checkpoint), size)
