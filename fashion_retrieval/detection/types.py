"""What every detector returns: garment regions of one image, in pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fashion_retrieval.data.boxes import Box


@dataclass(frozen=True)
class Detection:
    """One garment region of an image.

    ``box`` is ``(x1, y1, x2, y2)`` in the image's pixels, ``x2``/``y2`` exclusive (the convention of
    ``bundle_garment_boxes.csv``); ``score`` the detector's confidence in [0, 1] (1 for zones, the whole
    image and ground truth); ``label`` the garment group (``top``, ``footwear``...) or zone (``upper``...)
    that selects the catalogue categories the crop may match (see ``Detector.label_categories``).
    """

    box: Box
    score: float
    label: str

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class Detector(Protocol):
    """Turns bundle photos into garment regions.

    ``label_categories`` maps each label a detector can emit to the catalogue categories
    (``product_description`` values) a crop with that label may be matched to; a label missing from it, or
    mapped to an empty list, restricts nothing. ``fingerprint`` changes whenever the detector's output for
    the same image could change (weights file hash, architecture, thresholds): it keys the crop cache.
    """

    label_categories: dict[str, list[str]]

    def fingerprint(self) -> str: ...

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        """``images``: RGB ``(H, W, 3)`` uint8 arrays; ``image_ids``: their bundle ids. One list per image."""
        ...
