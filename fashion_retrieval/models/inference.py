"""Batched embedding of an image loader with any encoder function."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader


@torch.no_grad()
def embed_loader(
    encode: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Embed every item of a loader yielding ``{"image": (B, 3, H, W), "index": (B,)}``.

    Returns ``(N, D)`` float32 rows in dataset order (placed by ``index``, so the loader may shuffle).
    """
    rows: np.ndarray | None = None
    filled = np.zeros(len(loader.dataset), dtype=bool)
    for batch in loader:
        embeddings = encode(batch["image"].to(device)).float().cpu().numpy()
        if rows is None:
            rows = np.empty((len(loader.dataset), embeddings.shape[1]), dtype=np.float32)
        index = batch["index"].numpy()
        rows[index] = embeddings
        filled[index] = True
    if rows is None or not filled.all():
        raise RuntimeError(f"loader yielded {int(filled.sum())} of {len(filled)} items")
    return rows
