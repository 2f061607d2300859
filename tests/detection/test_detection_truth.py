"""The ground-truth detector and the box file reader: labels from the group map, clear failures."""

from __future__ import annotations

import logging

import pytest
from detection_data import write_boxes

from fashion_retrieval.data.catalogue import CatalogueError, read_garment_boxes
from fashion_retrieval.detection.groups import DEFAULT_GROUP_CATEGORIES
from fashion_retrieval.detection.truth import UNGROUPED_LABEL, TruthDetector
from fashion_retrieval.detection.types import Detection

ROWS = [
    ("B_0", "I_1", "T-SHIRT", 4, 5, 20, 30),
    ("B_0", "I_2", "JUMPSUIT", 2, 6, 28, 44),
    ("B_1", "I_3", "SNEAKERS", 8, 40, 16, 48),
]


def test_boxes_are_labelled_with_their_group(tmp_path, caplog):
    write_boxes(tmp_path, ROWS)
    with caplog.at_level(logging.WARNING):
        detector = TruthDetector(tmp_path, DEFAULT_GROUP_CATEGORIES)
    assert "JUMPSUIT" in caplog.text  # a category without a group is kept, counted and logged
    found = detector.detect([], ["B_1", "B_0", "B_unknown"])
    assert found[0] == [Detection((8, 40, 16, 48), 1.0, "footwear")]
    assert [d.label for d in found[1]] == ["top", UNGROUPED_LABEL]
    assert found[2] == []
    assert detector.label_categories["footwear"] == DEFAULT_GROUP_CATEGORIES["footwear"]
    assert UNGROUPED_LABEL not in detector.label_categories  # restricts nothing


def test_fingerprint_follows_the_file_and_the_map(tmp_path):
    write_boxes(tmp_path / "a", ROWS)
    write_boxes(tmp_path / "b", ROWS[:2])
    first = TruthDetector(tmp_path / "a", DEFAULT_GROUP_CATEGORIES).fingerprint()
    assert first == TruthDetector(tmp_path / "a", DEFAULT_GROUP_CATEGORIES).fingerprint()
    assert first != TruthDetector(tmp_path / "b", DEFAULT_GROUP_CATEGORIES).fingerprint()
    regrouped = {**DEFAULT_GROUP_CATEGORIES, "dress": ["DRESS", "JUMPSUIT"]}
    assert first != TruthDetector(tmp_path / "a", regrouped).fingerprint()


def test_a_missing_box_file_says_real_data_has_none(tmp_path):
    with pytest.raises(CatalogueError, match=r"garment_boxes.csv: file not found.*real challenge data"):
        TruthDetector(tmp_path, DEFAULT_GROUP_CATEGORIES)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("B_0", "I_1", "HAT", 1, 2, "x", 4), r"line 3: field x2: expected an integer pixel, got 'x'"),
        (("B_0", "I_1", "HAT", 1, 2.5, 3, 4), r"line 3: field y1"),
        (("B_0", "I_1", "HAT", 5, 2, 5, 4), r"line 3: empty box"),
    ],
)
def test_bad_boxes_name_the_line_and_field(tmp_path, row, message):
    write_boxes(tmp_path, [ROWS[0], row])
    with pytest.raises(CatalogueError, match=message):
        read_garment_boxes(tmp_path)
