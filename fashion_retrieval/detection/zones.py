"""Detectors without a model: fixed body zones, and the whole image.

Bundle photos frame one standing person, centred, head at the top, so fixed fractions of the frame find
the head, the upper body, the lower body and the feet well enough to be the fallback when a model finds
nothing (and a baseline for one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.detection.groups import validate_label_map
from fashion_retrieval.detection.types import Box, Detection

WHOLE_LABEL = "whole"


def fraction_box(fractions: Sequence[float], width: int, height: int) -> Box:
    """``(left, top, right, bottom)`` fractions of a ``width`` x ``height`` image -> a pixel box."""
    left, top, right, bottom = fractions
    return (left * width, top * height, right * width, bottom * height)


def check_fractions(name: str, fractions: Sequence[float]) -> list[float]:
    """``fractions`` as a list of 4 floats with ``0 <= left < right <= 1`` and ``0 <= top < bottom <= 1``."""
    values = [float(v) for v in fractions]
    if len(values) != 4:
        raise ValueError(f"zone {name}: expected [left, top, right, bottom], got {list(fractions)}")
    left, top, right, bottom = values
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ValueError(
            f"zone {name}: fractions must satisfy 0 <= left < right <= 1 and 0 <= top < bottom <= 1, "
            f"got {values}"
        )
    return values


class ZoneDetector:
    """One detection (score 1) per body zone, at fixed fractions of the image.

    ``zones``: zone name -> ``[left, top, right, bottom]`` fractions of the width and height; zones may
    overlap. ``categories``: zone name -> the catalogue categories a crop of that zone may be (a zone
    missing from it restricts nothing); a category may sit in several zones (a dress spans two).
    """

    def __init__(self, zones: Mapping[str, Sequence[float]], categories: Mapping[str, Sequence[str]]) -> None:
        if not zones:
            raise ValueError("detector.zones: no zones; give at least one [left, top, right, bottom]")
        self.zones = {str(name): check_fractions(str(name), fractions) for name, fractions in zones.items()}
        self.label_categories = validate_label_map(
            categories, what="detector.categories", allowed=list(self.zones)
        )

    def fingerprint(self) -> str:
        # Only the boxes: the categories are read from the detector at use time, never cached.
        return f"zones-{settings_digest({'zones': self.zones})}"

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        return [
            [
                Detection(fraction_box(fractions, image.shape[1], image.shape[0]), 1.0, name)
                for name, fractions in self.zones.items()
            ]
            for image in images
        ]


class WholeImageDetector:
    """Detector ``none``: the whole image is the one crop, labelled ``whole``; it restricts nothing."""

    def __init__(self) -> None:
        self.label_categories: dict[str, list[str]] = {}

    def fingerprint(self) -> str:
        return WHOLE_LABEL

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        whole = (0.0, 0.0, 1.0, 1.0)
        return [[Detection(fraction_box(whole, i.shape[1], i.shape[0]), 1.0, WHOLE_LABEL)] for i in images]
