"""Colour similarity of two images from HSV histograms over horizontal stripes (the original system's colour
bonus): a top's colours sit in the upper stripe of its crop and of its packshot alike, so comparing stripe by
stripe keeps a little layout that a single histogram would lose."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from PIL import Image

from fashion_retrieval.detection.types import Box


def stripe_histograms(hsv: np.ndarray, stripes: int = 3, bins: Sequence[int] = (12, 8, 4)) -> np.ndarray:
    """Joint HSV histograms of ``stripes`` horizontal bands of an image.

    Args:
        hsv: ``(H, W, 3)`` uint8 hue, saturation, value (PIL's ``HSV`` mode, each channel in ``[0, 255]``).
        stripes: bands of (nearly) equal height, top to bottom.
        bins: bins per channel, ``(hue, saturation, value)``; equal-width over ``[0, 256)``.

    Returns:
        ``(stripes, prod(bins))`` float64, each row summing to 1 (all zero for a band with no pixel).
    """
    hsv = np.asarray(hsv)
    if hsv.ndim != 3 or hsv.shape[2] != 3 or hsv.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 HSV image, got {hsv.shape} {hsv.dtype}")
    if len(bins) != 3 or min(bins) < 1:
        raise ValueError(f"bins must be three positive counts (hue, saturation, value), got {list(bins)}")
    channel_bins = [(hsv[..., c].astype(np.int64) * int(b)) >> 8 for c, b in enumerate(bins)]
    codes = (channel_bins[0] * bins[1] + channel_bins[1]) * bins[2] + channel_bins[2]
    size = int(np.prod(bins))
    bounds = np.linspace(0, hsv.shape[0], stripes + 1).round().astype(int)
    histograms = np.zeros((stripes, size))
    for stripe, (top, bottom) in enumerate(itertools.pairwise(bounds)):
        counts = np.bincount(codes[top:bottom].reshape(-1), minlength=size)
        if counts.sum():
            histograms[stripe] = counts / counts.sum()
    return histograms


def bhattacharyya(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient ``sum_i sqrt(p_i q_i)`` over the last axis of normalised histograms
    (broadcast): 1 for identical distributions, 0 for disjoint ones."""
    return np.sqrt(np.asarray(p) * np.asarray(q)).sum(axis=-1)


def colour_similarity(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Stripe-averaged Bhattacharyya coefficient of a query's ``(S, B)`` histograms and ``(..., S, B)``
    gallery histograms: ``(...)`` in ``[0, 1]``."""
    return bhattacharyya(query, gallery).mean(axis=-1)


def image_hsv(path: str, box: Box | None = None, size: int = 64) -> np.ndarray:
    """The photo at ``path`` (its pixel ``box`` region when given), shrunk to fit ``size`` x ``size`` (enough
    for a colour histogram, and keeps the bonus cheap): ``(H, W, 3)`` uint8 HSV."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if box is not None:
            image = image.crop(tuple(round(v) for v in box))
        image.thumbnail((size, size))
        return np.asarray(image.convert("HSV"))
