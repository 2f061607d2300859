"""Batched embedding of an image loader with any encoder function, with optional test-time views."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fashion_retrieval.models.views import check_views
from fashion_retrieval.progress import progress

CENTRE_CROP_FRACTION = 0.85  # the centre view keeps 85% of each side: trims background, keeps the garment


def flip_view(images: torch.Tensor) -> torch.Tensor:
    """Mirror ``(B, 3, H, W)`` images left-right (garments are near-symmetric; prints are not always)."""
    return torch.flip(images, dims=[3])


def centre_crop_view(images: torch.Tensor, fraction: float = CENTRE_CROP_FRACTION) -> torch.Tensor:
    """The central ``fraction`` of ``(B, 3, H, W)`` images resized back to ``(H, W)``; float in [0, 1]."""
    height, width = images.shape[-2:]
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = images[..., top : top + crop_h, left : left + crop_w].float()
    if images.dtype == torch.uint8:
        crop = crop / 255.0
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


# By the names of fashion_retrieval.models.views.VIEW_NAMES (tested to be the same).
TEST_TIME_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "flip": flip_view,
    "centre_crop": centre_crop_view,
}


def embed_views(
    encode: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
) -> torch.Tensor:
    """``(B, D)`` float32 embeddings of ``(B, 3, H, W)`` images; with test-time ``views`` (functions from
    ``TEST_TIME_VIEWS``), the L2-normalised mean of the embeddings of the image and of each view."""
    embeddings = encode(images).float()
    if views:
        embeddings = embeddings + sum(encode(view(images)).float() for view in views)
        embeddings = F.normalize(embeddings, dim=-1)
    return embeddings


@torch.no_grad()
def embed_loader(
    encode: Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    device: torch.device | str = "cpu",
    views: Sequence[str] = (),
    description: str | None = None,
) -> np.ndarray:
    """Embed every item of a loader yielding ``{"image": (B, 3, H, W), "index": (B,)}``.

    ``views``: test-time augmentation (names in ``TEST_TIME_VIEWS``); each item's embedding is then the
    L2-normalised mean of the embeddings of the image and of each view. ``description``: show a progress
    bar with that label (:mod:`fashion_retrieval.progress`; for long loops outside a Lightning loop).

    Returns ``(N, D)`` float32 rows in dataset order (placed by ``index``, so the loader may shuffle).
    """
    transforms = [TEST_TIME_VIEWS[view] for view in check_views(views)]
    rows: np.ndarray | None = None
    filled = np.zeros(len(loader.dataset), dtype=bool)
    batches = loader if description is None else progress(loader, len(loader), description, unit="batch")
    for batch in batches:
        embeddings = embed_views(encode, batch["image"].to(device), transforms).cpu().numpy()
        if rows is None:
            rows = np.empty((len(loader.dataset), embeddings.shape[1]), dtype=np.float32)
        index = batch["index"].numpy()
        rows[index] = embeddings
        filled[index] = True
    if rows is None or not filled.all():
        raise RuntimeError(f"loader yielded {int(filled.sum())} of {len(filled)} items")
    return rows
