"""Detector ``truth``: the ground-truth garment boxes of the synthetic data, the ceiling of any detector."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fashion_retrieval.data.catalogue import BOXES_FILE, read_garment_boxes
from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.detection.groups import category_groups, count_unmapped, validate_group_map
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.io import file_digest

log = logging.getLogger(__name__)

# Label of a box whose category has no garment group: kept (the ceiling must not lose garments), and
# absent from label_categories, so it restricts nothing.
UNGROUPED_LABEL = "ungrouped"


class TruthDetector:
    """One detection (score 1) per listed product of a bundle, from ``bundle_garment_boxes.csv`` in
    ``data_dir``; its label is the garment group of the product's category (``groups``: group ->
    categories, see :mod:`fashion_retrieval.detection.groups`). A bundle the file does not list gets no
    detection. Fails at construction when the file is missing (real data has none)."""

    def __init__(self, data_dir: str | Path, groups: Mapping[str, Sequence[str]]) -> None:
        self.label_categories = validate_group_map(groups)
        frame = read_garment_boxes(data_dir)
        group_of = category_groups(self.label_categories)
        count_unmapped(frame["product_description"], group_of, context=f"detector truth ({BOXES_FILE})")
        self.boxes: dict[str, list[Detection]] = {}
        for row in frame.itertuples(index=False):
            box = (float(row.x1), float(row.y1), float(row.x2), float(row.y2))
            label = group_of.get(row.product_description, UNGROUPED_LABEL)
            self.boxes.setdefault(row.bundle_asset_id, []).append(Detection(box, 1.0, label))
        self._digest = settings_digest(
            {"boxes": file_digest(Path(data_dir) / BOXES_FILE), "groups": self.label_categories}
        )
        log.info("detector truth: %d boxes of %d bundles", len(frame), len(self.boxes))

    def fingerprint(self) -> str:
        return f"truth-{self._digest}"

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        return [list(self.boxes.get(image_id, [])) for image_id in image_ids]
