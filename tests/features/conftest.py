"""Tiny images on disk for the feature-cache tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.transforms import eval_transform


@pytest.fixture
def image_paths(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = tmp_path / "images" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (24 + i, 20, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


@pytest.fixture
def dataset(image_paths: list[str]) -> ImageDataset:
    return ImageDataset(image_paths, eval_transform((16, 16)))


@pytest.fixture
def ids(image_paths: list[str]) -> list[str]:
    return [f"prod-{i}" for i in range(len(image_paths))]
