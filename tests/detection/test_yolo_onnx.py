"""``detector=yolo detector.weights=<ultralytics' own ONNX export>``: the same detections as the ``.pt``."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.detection.yolo import YoloDetector, offline_ultralytics

GROUPS = {"top": ["T-SHIRT"], "bottom": ["JEANS"], "footwear": ["SHOES"]}


def test_an_onnx_export_detects_what_its_pt_detects(tmp_path):
    untrained = YoloDetector(
        GROUPS, architecture="yolov8n.yaml", confidence=0.0, image_size=64, max_detections=5
    )
    untrained.model.save(tmp_path / "tiny.pt")
    settings = {"confidence": 0.0, "image_size": 64, "max_detections": 5}
    from_pt = YoloDetector(GROUPS, weights=str(tmp_path / "tiny.pt"), **settings)
    with offline_ultralytics():
        # dynamic: ultralytics then letterboxes as for the .pt (minimal padding), not to a fixed square.
        exported = from_pt.model.export(format="onnx", imgsz=64, dynamic=True, simplify=False)
    from_onnx = YoloDetector(GROUPS, weights=exported, **settings)
    assert from_onnx.class_names == from_pt.class_names
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (96, 64, 3), dtype=np.uint8),
        rng.integers(0, 255, (40, 50, 3), dtype=np.uint8),
    ]
    expected, found = from_pt.detect(images, ["B_0", "B_1"]), from_onnx.detect(images, ["B_0", "B_1"])
    assert [len(f) for f in found] == [len(e) for e in expected] and sum(map(len, found)) > 0
    pairs = [pair for got, want in zip(found, expected) for pair in zip(got, want)]
    for got, want in pairs:
        assert got.label == want.label and got.score == pytest.approx(want.score, abs=1e-4)
        np.testing.assert_allclose(got.box, want.box, atol=1e-2)
