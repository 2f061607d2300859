"""The YOLO detector: offline failure messages, an untrained tiny model end to end, the offline patches."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from payloads import write_pickle_payload
from test_configs import compose_config

from fashion_retrieval.detection.groups import DEFAULT_GROUP_CATEGORIES
from fashion_retrieval.detection.yolo import YoloDetector, load_yolo, offline_ultralytics

GROUPS = {"top": ["SHIRT"], "bottom": ["JEANS"], "footwear": ["SHOES"]}


def test_missing_weights_fail_before_ultralytics_with_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # any import of ultralytics would raise
    missing = tmp_path / "best.pt"
    with pytest.raises(FileNotFoundError) as error:
        YoloDetector(DEFAULT_GROUP_CATEGORIES, weights=str(missing))
    message = str(error.value)
    assert str(missing) in message and "detector.weights=" in message and "detect-train" in message


def test_detector_yolo_without_weights_says_what_to_pass():
    cfg = compose_config(["detector=yolo"])
    with pytest.raises(InstantiationException, match=r"detector.weights=.*detect-train"):
        instantiate(cfg.detector)


@pytest.fixture(scope="module")
def untrained() -> YoloDetector:
    return YoloDetector(GROUPS, architecture="yolov8n.yaml", confidence=0.0, image_size=64, max_detections=5)


def test_an_untrained_tiny_model_detects_garment_groups(untrained):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (96, 64, 3), dtype=np.uint8),
        rng.integers(0, 255, (40, 50, 3), dtype=np.uint8),
    ]
    found = untrained.detect(images, ["B_0", "B_1"])
    assert len(found) == 2 and all(0 < len(f) <= 5 for f in found)
    for detections, image in zip(found, images):
        for d in detections:
            assert d.label in GROUPS and 0.0 <= d.score <= 1.0
            x1, y1, x2, y2 = d.box
            assert -1 <= x1 < x2 <= image.shape[1] + 1 and -1 <= y1 < y2 <= image.shape[0] + 1  # pixels
    assert untrained.label_categories == GROUPS
    assert untrained.detect([], []) == []


def test_fingerprint_follows_the_weights_and_the_inference_settings(untrained):
    first = untrained.fingerprint()
    assert first.startswith("yolo-") and first == untrained.fingerprint()
    untrained.settings["confidence"] = 0.5
    try:
        assert untrained.fingerprint() != first
    finally:
        untrained.settings["confidence"] = 0.0


def test_model_classes_must_be_garment_groups(tmp_path, untrained):
    untrained.model.save(tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match=r"YOLO classes \['top'\] .* not garment groups"):
        YoloDetector({"bottom": ["JEANS"], "footwear": ["SHOES"]}, weights=str(tmp_path / "tiny.pt"))
    reloaded = YoloDetector(GROUPS, weights=str(tmp_path / "tiny.pt"), confidence=0.0, image_size=64)
    assert reloaded.class_names == {0: "top", 1: "bottom", 2: "footwear"}
    assert reloaded.settings["weights"] != untrained.settings["weights"]  # sha256 of the file


def test_load_yolo_names_the_override_of_the_calling_stage(tmp_path):
    with pytest.raises(ValueError, match=r"detector\.weights="):
        load_yolo(None, None)
    with pytest.raises(FileNotFoundError, match=r"detect_train\.weights=/path/to/best\.pt"):
        load_yolo(tmp_path / "missing.pt", "yolov8n.yaml", override="detect_train.weights")


def test_offline_block_disables_font_and_amp_downloads_and_restores_them():
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer

    originals = data_utils.check_font, trainer.check_amp
    with offline_ultralytics():
        assert data_utils.check_font("Arial.ttf") is None
        assert trainer.check_amp(load_yolo(architecture="yolov8n.yaml").model) is False  # a CPU model
    assert (data_utils.check_font, trainer.check_amp) == originals


@pytest.mark.parametrize("kind", ["pickle", "empty"])
def test_weights_holding_code_or_nothing_are_refused_before_they_run(tmp_path, kind):
    """A ``.pt`` file is data: a pickle payload is refused by ultralytics' restricted loader before
    anything in it runs, and an empty file is named, both before ultralytics' ordinary loader sees it."""
    marker, weights = tmp_path / "marker", tmp_path / "best.pt"
    if kind == "pickle":
        write_pickle_payload(weights, marker, epoch=0)
    else:
        weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"YOLO weights .*best\.pt refused: not an ultralytics checkpoint"):
        YoloDetector(GROUPS, weights=str(weights))
    assert not marker.exists()


def test_loading_a_detector_leaves_pillows_image_open_alone(tmp_path):
    # ultralytics patches PIL.Image.open on import (an unidentified image then raises ModuleNotFoundError:
    # pi_heif offline); the project undoes it, so image checks behave the same in any test order.
    from PIL import Image, UnidentifiedImageError

    load_yolo(architecture="yolov8n.yaml")
    assert Image.open.__module__.startswith("PIL")
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(UnidentifiedImageError):
        Image.open(tmp_path / "x.jpg")
