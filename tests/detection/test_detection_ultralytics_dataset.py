"""Our boxes in the Ultralytics layout: label lines, linked images, data.yaml, unmapped categories."""

from __future__ import annotations

import logging

from detection_data import write_boxes, write_image
from omegaconf import OmegaConf

from fashion_retrieval.data.catalogue import read_garment_boxes
from fashion_retrieval.detection.groups import DEFAULT_GROUP_CATEGORIES
from fashion_retrieval.detection.ultralytics_dataset import write_ultralytics_dataset, yolo_label_line


def test_label_line_of_a_known_box():
    # x 10..30 (20 px wide, centre 20) of 40 px; y 20..80 (60 px high, centre 50) of 100 px.
    assert yolo_label_line(3, (10, 20, 30, 80), 40, 100) == "3 0.500000 0.500000 0.500000 0.600000"
    assert yolo_label_line(0, (0, 0, 40, 100), 40, 100) == "0 0.500000 0.500000 1.000000 1.000000"


def test_dataset_layout(tmp_path, caplog):
    data = tmp_path / "data"
    paths = {b: write_image(data / "images" / "bundles" / f"{b}.jpg", 100) for b in ("B_0", "B_1", "B_2")}
    write_boxes(
        data,
        [
            ("B_0", "I_1", "T-SHIRT", 8, 12, 24, 36),
            ("B_0", "I_2", "KIMONO", 0, 0, 32, 48),
            ("B_1", "I_3", "SNEAKERS", 0, 40, 16, 48),
            ("B_2", "I_4", "HAT", 0, 0, 4, 4),  # B_2 is in neither split
        ],
    )
    out = tmp_path / "yolo"
    with caplog.at_level(logging.WARNING):
        data_yaml = write_ultralytics_dataset(
            read_garment_boxes(data), paths, {"train": ["B_0"], "val": ["B_1"]}, DEFAULT_GROUP_CATEGORIES, out
        )
    assert "KIMONO" in caplog.text  # left out, counted and logged
    config = OmegaConf.load(data_yaml)
    assert config.names == list(DEFAULT_GROUP_CATEGORIES) and config.path == str(out.resolve())
    assert (out / config.train / "B_0.jpg").is_file() and (out / config.val / "B_1.jpg").is_file()
    assert not (out / "images" / "train" / "B_2.jpg").exists()
    # 32 x 48 images; top = class 0, footwear = class 4.
    assert (out / "labels/train/B_0.txt").read_text() == "0 0.500000 0.500000 0.500000 0.500000\n"
    assert (out / "labels/val/B_1.txt").read_text() == "4 0.250000 0.916667 0.500000 0.166667\n"
    linked = out / "images/train/B_0.jpg"
    assert linked.samefile(paths["B_0"])  # a link, not a copy


def test_a_bundle_without_boxes_is_a_background_image(tmp_path):
    data = tmp_path / "data"
    paths = {"B_0": write_image(data / "B_0.jpg", 10), "B_1": write_image(data / "B_1.jpg", 20)}
    write_boxes(data, [("B_0", "I_1", "HAT", 1, 1, 5, 5)])
    out = tmp_path / "yolo"
    write_ultralytics_dataset(
        read_garment_boxes(data), paths, {"train": ["B_0"], "val": ["B_1"]}, {"headwear": ["HAT"]}, out
    )
    assert (out / "labels/val/B_1.txt").read_text() == ""
    assert (out / "labels/train/B_0.txt").read_text().startswith("0 ")


def test_rewriting_the_dataset_replaces_the_links(tmp_path):
    data = tmp_path / "data"
    paths = {"B_0": write_image(data / "B_0.jpg", 10)}
    write_boxes(data, [("B_0", "I_1", "HAT", 1, 1, 5, 5)])
    boxes = read_garment_boxes(data)
    for _ in range(2):
        write_ultralytics_dataset(
            boxes, paths, {"train": ["B_0"], "val": []}, DEFAULT_GROUP_CATEGORIES, tmp_path / "y"
        )
    assert (tmp_path / "y/labels/train/B_0.txt").read_text().startswith("6 ")  # headwear
