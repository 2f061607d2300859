"""Detected garments for training: a detector's boxes on bundle photos that match a ground-truth garment,
each with that garment's product (``data.detected_garments``; see docs/detection.md)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from fashion_retrieval.data.garments import Garment
from fashion_retrieval.detection.crops import CropSettings, detect_crops_cached
from fashion_retrieval.detection.geometry import match_boxes
from fashion_retrieval.detection.types import Box, Detector

log = logging.getLogger(__name__)


class DetectedGarments:
    """A :class:`fashion_retrieval.data.garments.GarmentMatcher`: every box of ``detector`` (selected by
    ``crops``, cached in ``cache``) that matches one ground-truth garment of its photo, one-to-one with IoU
    at least ``min_iou``. Without a detector it finds none (ground-truth garments only)."""

    def __init__(
        self,
        detector: Detector | None = None,
        crops: CropSettings | None = None,
        min_iou: float = 0.5,
        cache: str | None = None,
    ) -> None:
        self.detector = detector
        # Unpadded: the dataset pads every query box by data.garment_padding itself.
        self.settings = dataclasses.replace(crops or CropSettings(), padding=0.0)
        self.min_iou = min_iou
        self.cache = cache

    def __call__(self, garments: Sequence[Garment], photos: Mapping[str, str]) -> list[Garment]:
        """``(bundle, product, detected box)`` for the matches on the bundles of ``garments``."""
        if self.detector is None:
            return []
        truth: dict[str, list[tuple[str, Box]]] = {}
        for bundle, product, box in garments:
            truth.setdefault(bundle, []).append((product, box))
        bundle_ids = list(truth)
        found = detect_crops_cached(
            self.detector, [photos[b] for b in bundle_ids], bundle_ids, self.settings, self.cache
        )
        matched: list[Garment] = []
        for bundle, detections in zip(bundle_ids, found):
            boxes = [box for _, box in truth[bundle]]
            for i, j in match_boxes([d.box for d in detections], boxes, self.min_iou):
                matched.append((bundle, truth[bundle][j][0], detections[i].box))
        log.info(
            "detected garments: %d of %d detections matched one of %d ground-truth garments",
            len(matched),
            sum(len(d) for d in found),
            len(garments),
        )
        return matched
