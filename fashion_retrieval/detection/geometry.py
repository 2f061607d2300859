"""Box geometry in pixel space: ``(x1, y1, x2, y2)``, ``x2``/``y2`` exclusive, origin at the top-left.

Pure functions on :class:`Detection` and boxes; no detector, file or cache in here. Padding, clipping and
integer pixels of a single box live below, in :mod:`fashion_retrieval.data.boxes` (datasets crop with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fashion_retrieval.data.boxes import Box, clip_box, pad_box, pixel_box
from fashion_retrieval.detection.types import Detection


def select_detections(
    detections: Sequence[Detection],
    width: int,
    height: int,
    *,
    min_score: float = 0.0,
    min_area: float = 0.0,
    max_crops: int | None = None,
) -> list[Detection]:
    """Keep detections with ``score >= min_score`` and a clipped area of at least ``min_area`` (a fraction
    of the image area), best score first (ties keep the detector's order), at most ``max_crops``."""
    smallest = min_area * width * height
    kept = [
        d
        for d in detections
        if d.score >= min_score and replace(d, box=clip_box(d.box, width, height)).area >= smallest
    ]
    kept.sort(key=lambda d: -d.score)
    return kept if max_crops is None else kept[:max_crops]


def pad_and_clip(detection: Detection, fraction: float, width: int, height: int) -> Detection:
    """The detection with its box padded by ``fraction`` and clipped to the image."""
    return replace(detection, box=clip_box(pad_box(detection.box, fraction), width, height))


def crop(image: np.ndarray, detection: Detection) -> np.ndarray:
    """The ``(h, w, C)`` view of an ``(H, W, C)`` image under the detection's box (see :func:`pixel_box`)."""
    height, width = image.shape[:2]
    left, top, right, bottom = pixel_box(detection.box, width, height)
    return image[top:bottom, left:right]


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two pixel boxes (0 when either is empty)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    intersection = max(0.0, width) * max(0.0, height)
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    union = area - intersection
    return intersection / union if union > 0 else 0.0


def match_boxes(found: Sequence[Box], truth: Sequence[Box], min_iou: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one ``(found index, truth index)`` pairs, greedily by decreasing IoU, each at least
    ``min_iou`` (ties: lower indices first), in the order they were matched."""
    candidates = sorted((-box_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth))
    used_found: set[int] = set()
    used_truth: set[int] = set()
    pairs = []
    for negative_iou, i, j in candidates:
        if -negative_iou < min_iou:
            break
        if i not in used_found and j not in used_truth:
            pairs.append((i, j))
            used_found.add(i)
            used_truth.add(j)
    return pairs
