"""The trivial colour baseline: a global HSV histogram per image, compared with the Bhattacharyya
coefficient (the inner product of square-rooted histograms)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fashion_retrieval.data.transforms import crop_fraction, load_rgb


def hsv_histogram(image: np.ndarray, bins: Sequence[int] = (12, 4, 4)) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB -> ``(prod(bins),)`` float32 unit vector, the square root of the
    normalised HSV histogram, so that inner products are Bhattacharyya coefficients."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256]).ravel()
    root = np.sqrt(histogram / max(histogram.sum(), 1.0)).astype(np.float32)
    return root / max(float(np.linalg.norm(root)), 1e-12)


def histogram_embeddings(
    paths: Sequence[str], bins: Sequence[int] = (12, 4, 4), crop: Sequence[float] | None = None
) -> np.ndarray:
    """``(N, prod(bins))`` float32 histogram embeddings of image files (of their ``crop`` region)."""
    return np.stack([hsv_histogram(crop_fraction(load_rgb(path), crop), bins) for path in paths])
