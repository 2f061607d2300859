"""Crop geometry in pixel space: padding, clipping at the borders, integer crops, selection."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.detection.geometry import (
    box_iou,
    crop,
    match_boxes,
    pad_and_clip,
    select_detections,
)
from fashion_retrieval.detection.types import Detection


def test_crop_cuts_the_box_and_clips_at_the_borders():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    inside = crop(image, Detection((2, 1, 5, 4), 1.0, "top"))
    assert inside.shape == (3, 3, 3)
    np.testing.assert_array_equal(inside, image[1:4, 2:5])
    corner = crop(image, Detection((-4, -4, 3, 2), 1.0, "top"))
    np.testing.assert_array_equal(corner, image[0:2, 0:3])
    assert crop(image, Detection((6.5, 4.5, 20, 20), 1.0, "top")).shape == (2, 2, 3)


def test_pad_and_clip_pads_then_clips():
    padded = pad_and_clip(Detection((0, 10, 20, 30), 0.9, "bag"), 0.5, 25, 100)
    assert padded == Detection((0, 0, 25, 40), 0.9, "bag")


def test_selection_by_score_area_and_count():
    detections = [
        Detection((0, 0, 10, 10), 0.30, "top"),  # 100 px
        Detection((0, 0, 2, 2), 0.90, "headwear"),  # 4 px: too small
        Detection((0, 0, 10, 10), 0.10, "bottom"),  # below min_score
        Detection((5, 5, 30, 30), 0.80, "bag"),  # clipped to 5..20: 225 px
        Detection((0, 0, 10, 10), 0.30, "dress"),  # ties keep the detector's order
    ]
    kept = select_detections(detections, 20, 20, min_score=0.2, min_area=0.05)  # 5% of 400 = 20 px
    assert [d.label for d in kept] == ["bag", "top", "dress"]
    assert [d.label for d in select_detections(detections, 20, 20, min_score=0.2, max_crops=2)] == [
        "headwear",
        "bag",
    ]
    assert select_detections(detections, 20, 20, min_score=0.95) == []


def reference_matches(found, truth, min_iou):
    """Every one-to-one assignment is tried; the greedy one is what a by-hand check gives on tiny cases."""
    pairs, used = [], set()
    for i, f in enumerate(found):
        best = max(((box_iou(f, t), j) for j, t in enumerate(truth) if j not in used), default=(0.0, -1))
        if best[0] >= min_iou:
            pairs.append((i, best[1]))
            used.add(best[1])
    return pairs


def test_box_iou_by_hand():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_matching_is_one_to_one_and_best_first():
    truth = [(0, 0, 10, 10), (20, 0, 30, 10)]
    # Detection 0 overlaps truth 0 a little, detection 1 overlaps it more: 1 gets it, 0 gets nothing.
    found = [(3, 0, 13, 10), (1, 0, 11, 10), (21, 0, 31, 10), (50, 50, 60, 60)]
    assert match_boxes(found, truth, 0.5) == [(1, 0), (2, 1)]
    assert match_boxes(found, truth, 0.95) == []
    assert match_boxes([], truth) == [] and match_boxes(found, []) == []
    separated = [(0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 10)]
    shifted = [(41, 0, 51, 10), (1, 0, 11, 10)]
    assert sorted(match_boxes(shifted, separated)) == sorted(reference_matches(shifted, separated, 0.5))
