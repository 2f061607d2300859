"""Fixtures of the detection tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from detection_data import write_image


@pytest.fixture
def images(tmp_path: Path) -> tuple[list[str], list[str]]:
    """Paths and ids of four tiny bundle photos."""
    ids = [f"B_{i}" for i in range(4)]
    return [write_image(tmp_path / "images" / f"{i}.jpg", 40 * n) for n, i in enumerate(ids)], ids
