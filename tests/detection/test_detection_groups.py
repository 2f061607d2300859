"""Garment groups and body zones: the label -> category maps, their validation, their config."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_configs import compose_config

from fashion_retrieval.detection.groups import (
    DEFAULT_GROUP_CATEGORIES,
    GROUPS,
    category_groups,
    count_unmapped,
    validate_group_map,
)
from fashion_retrieval.detection.zones import WholeImageDetector, ZoneDetector
from fashion_retrieval.synthetic.taxonomy import CATEGORIES


def test_default_groups_cover_every_synthetic_category_once():
    group_of = category_groups(validate_group_map(DEFAULT_GROUP_CATEGORIES))
    assert sorted(group_of) == sorted(c.name for c in CATEGORIES)
    assert list(DEFAULT_GROUP_CATEGORIES) == list(GROUPS)
    assert group_of["SNEAKERS"] == "footwear" and group_of["COAT"] == "outerwear"


def test_the_config_map_is_the_default_map():
    cfg = compose_config([])
    assert OmegaConf.to_container(cfg.garment_groups) == DEFAULT_GROUP_CATEGORIES


@pytest.mark.parametrize(
    ("groups", "error", "message"),
    [
        ({"top": ["SHIRT"], "tops": ["T-SHIRT"]}, ValueError, r"unknown label\(s\) \['tops'\]"),
        ({"top": ["SHIRT"], "outerwear": ["COAT", "SHIRT"]}, ValueError, r"SHIRT in \['top', 'outerwear'\]"),
        ({"top": ["SHIRT"], "bag": []}, ValueError, r"garment_groups.bag: no categories"),
        ({"top": "SHIRT"}, TypeError, r"garment_groups.top: expected a list"),
        ({}, ValueError, "empty"),
    ],
)
def test_group_map_errors_name_the_problem(groups, error, message):
    with pytest.raises(error, match=message):
        validate_group_map(groups)


def test_a_group_map_from_the_config_validates():
    groups = validate_group_map(compose_config(["garment_groups.dress=[DRESS,JUMPSUIT]"]).garment_groups)
    assert groups["dress"] == ["DRESS", "JUMPSUIT"] and isinstance(groups["top"], list)


def test_unmapped_categories_are_counted_and_logged(caplog):
    group_of = category_groups(DEFAULT_GROUP_CATEGORIES)
    with caplog.at_level(logging.WARNING):
        unmapped = count_unmapped(["SHIRT", "JUMPSUIT", "JUMPSUIT", "KIMONO"], group_of, context="test")
    assert unmapped == {"JUMPSUIT": 2, "KIMONO": 1}
    assert "3 box(es)" in caplog.text and "JUMPSUIT" in caplog.text
    caplog.clear()
    assert not count_unmapped(["SHIRT"], group_of, context="test") and not caplog.text


def test_zones_from_the_config_cut_fractions_of_the_image():
    detector = instantiate(compose_config(["detector=zones"]).detector)
    (detections,) = detector.detect([np.zeros((200, 100, 3), np.uint8)], ["B_1"])
    by_label = {d.label: d for d in detections}
    assert list(by_label) == ["head", "upper", "lower", "feet"]
    assert by_label["head"].box == pytest.approx((25, 0, 75, 64))
    assert all(d.score == 1.0 for d in detections)
    assert "DRESS" in detector.label_categories["upper"] and "DRESS" in detector.label_categories["lower"]
    assert detector.label_categories["feet"] == ["SHOES", "SNEAKERS", "BOOTS", "SOCKS"]


@pytest.mark.parametrize(
    ("zones", "categories", "message"),
    [
        ({"head": [0.5, 0.0, 0.4, 0.2]}, {"head": ["HAT"]}, "left < right"),
        ({"head": [0.0, 0.0, 1.0, 1.2]}, {"head": ["HAT"]}, "bottom <= 1"),
        ({"head": [0.0, 0.0, 1.0]}, {"head": ["HAT"]}, r"\[left, top, right, bottom\]"),
        ({"head": [0.0, 0.0, 1.0, 0.2]}, {"torso": ["SHIRT"]}, r"unknown label\(s\) \['torso'\]"),
        ({"head": [0.0, 0.0, 1.0, 0.2]}, {"head": []}, "detector.categories.head: no categories"),
        ({}, {}, "no zones"),
    ],
)
def test_zone_errors_name_the_problem(zones, categories, message):
    with pytest.raises(ValueError, match=message):
        ZoneDetector(zones, categories)


def test_zone_fingerprint_follows_the_boxes_only():
    base = ZoneDetector({"head": [0, 0, 1, 0.2]}, {"head": ["HAT"]})
    assert base.fingerprint() == ZoneDetector({"head": [0, 0, 1, 0.2]}, {"head": ["SCARF"]}).fingerprint()
    assert base.fingerprint() != ZoneDetector({"head": [0, 0, 1, 0.3]}, {"head": ["HAT"]}).fingerprint()


def test_whole_image_detector_is_detector_none():
    detector = instantiate(compose_config(["detector=none"]).detector)
    assert isinstance(detector, WholeImageDetector)
    images = [np.zeros((30, 20, 3), np.uint8), np.zeros((5, 7, 3), np.uint8)]
    boxes = [[d.box for d in found] for found in detector.detect(images, ["a", "b"])]
    assert boxes == [[(0, 0, 20, 30)], [(0, 0, 7, 5)]]
    assert detector.label_categories == {}
