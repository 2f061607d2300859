"""Garment boxes in pixel space: ``(x1, y1, x2, y2)``, ``x2``/``y2`` exclusive, origin at the top-left (the
convention of ``bundle_garment_boxes.csv`` and of every detector).

Here, below detection, because datasets crop query regions with them; detection builds on them
(:mod:`fashion_retrieval.detection.geometry`).
"""

from __future__ import annotations

import math

import numpy as np

Box = tuple[float, float, float, float]


def pad_box(box: Box, fraction: float) -> Box:
    """Grow each side by ``fraction`` of the box's width (left, right) or height (top, bottom): a tight
    box cuts off the garment's edges, which carry its outline."""
    if fraction < 0:
        raise ValueError(f"padding must be >= 0, got {fraction}")
    x1, y1, x2, y2 = box
    dx, dy = fraction * (x2 - x1), fraction * (y2 - y1)
    return (x1 - dx, y1 - dy, x2 + dx, y2 + dy)


def clip_box(box: Box, width: int, height: int) -> Box:
    """Clip to the ``width`` x ``height`` image; a box entirely outside becomes empty (zero area)."""
    x1, y1, x2, y2 = box
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return (x1, y1, max(x1, x2), max(y1, y2))


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixels a box touches, clipped to the image: ``floor`` of the start, ``ceil`` of the
    (exclusive) end, at least one pixel each way so a crop is never empty."""
    x1, y1, x2, y2 = clip_box(box, width, height)
    left, top = min(math.floor(x1), width - 1), min(math.floor(y1), height - 1)
    right, bottom = max(math.ceil(x2), left + 1), max(math.ceil(y2), top + 1)
    return left, top, right, bottom


def region(image: np.ndarray, box: Box | None, padding: float = 0.0) -> np.ndarray:
    """The ``(h, w, 3)`` view of an ``(H, W, 3)`` image under ``box`` grown by ``padding`` (a fraction of
    its size per side) and clipped to the image; ``None``: the whole image."""
    if box is None:
        return image
    height, width = image.shape[:2]
    left, top, right, bottom = pixel_box(pad_box(box, padding), width, height)
    return image[top:bottom, left:right]
