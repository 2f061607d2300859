"""Tiny bundle photos and box files for the detection tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fashion_retrieval.data.catalogue import BOX_COLUMNS, BOXES_FILE

IMAGE_SIZE = (48, 32)  # (H, W)


def write_image(path: Path, value: int, size: tuple[int, int] = IMAGE_SIZE) -> str:
    """A flat grey ``(H, W)`` JPEG; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))
    return str(path)


def write_boxes(directory: Path, rows: list[tuple]) -> Path:
    """A ``bundle_garment_boxes.csv`` of ``rows`` (bundle, product, category, x1, y1, x2, y2)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [",".join(BOX_COLUMNS)] + [",".join(map(str, (*row, "1.0"))) for row in rows]
    path = directory / BOXES_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
