"""The detection cache and the crop entry point: hits, misses, invalidation, interrupted writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from detection_data import write_image

from fashion_retrieval.detection.cache import DetectionCache, entry_name
from fashion_retrieval.detection.crops import CropSettings, detect_crops
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.detection.zones import WholeImageDetector


class CountingDetector:
    """A fixed answer per image id, counting the images it is asked about."""

    def __init__(self, answers: dict[str, list[Detection]], name: str = "counting") -> None:
        self.answers, self.name, self.calls, self.seen = answers, name, 0, 0
        self.label_categories: dict[str, list[str]] = {}

    def fingerprint(self) -> str:
        return self.name

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        self.calls += 1
        self.seen += len(images)
        return [list(self.answers.get(i, [])) for i in image_ids]


SETTINGS = CropSettings(min_score=0.5, max_crops=2, batch_size=3)
ANSWERS = {
    "B_0": [Detection((2, 3, 12, 20), 0.9, "top"), Detection((1, 1, 30, 40), 0.6, "dress")],
    "B_1": [Detection((0, 0, 5, 5), 0.2, "bag")],  # below min_score: the fallback cuts the image
    "B_2": [Detection((-10, 30, 10, 60), 0.7, "footwear")],  # clipped to the image
    "B_3": [],
}


def test_a_second_pass_reads_the_cache_only(tmp_path, images):
    paths, ids = images
    detector = CountingDetector(ANSWERS)
    settings = CropSettings(min_score=0.5, max_crops=2, batch_size=3, fallback=WholeImageDetector())
    cache = DetectionCache(tmp_path / "cache", detector.fingerprint(), settings.cache_settings())
    first = detect_crops(detector, paths, ids, settings, cache)
    assert (detector.calls, detector.seen) == (2, 4)  # batches of 3 and 1
    assert (cache.hits, cache.misses) == (0, 4)
    assert [d.label for d in first[0]] == ["top", "dress"]
    assert first[1] == [Detection((0, 0, 32, 48), 1.0, "whole")]
    assert first[2] == [Detection((0, 30, 10, 48), 0.7, "footwear")]
    assert first[3] == [Detection((0, 0, 32, 48), 1.0, "whole")]

    again = DetectionCache(tmp_path / "cache", detector.fingerprint(), settings.cache_settings())
    assert detect_crops(detector, paths, ids, settings, again) == first
    assert (detector.seen, again.hits, again.misses) == (4, 4, 0)  # no image detected again


def test_a_changed_image_behind_a_cached_id_is_detected_again(tmp_path, images):
    """Ids are not content: a regenerated dataset reuses them for other pictures."""
    paths, ids = images
    detector = CountingDetector(ANSWERS)
    settings = CropSettings(min_score=0.5, max_crops=2, batch_size=3, fallback=WholeImageDetector())
    first = DetectionCache(tmp_path, "weights", settings.cache_settings())
    detect_crops(detector, paths, ids, settings, first)
    write_image(Path(paths[0]), 200)  # another picture under the same id
    again = DetectionCache(tmp_path, "weights", settings.cache_settings())
    detect_crops(detector, paths, ids, settings, again)
    assert (detector.seen, again.hits, again.stale) == (5, 3, 1)


def test_without_fallback_an_image_may_get_no_crop_and_that_is_cached(tmp_path, images):
    paths, ids = images
    detector = CountingDetector(ANSWERS)
    cache = DetectionCache(tmp_path, detector.fingerprint(), SETTINGS.cache_settings())
    assert detect_crops(detector, paths, ids, SETTINGS, cache)[3] == []
    assert cache.get("B_3") == [] and cache.hits == 1


def test_padding_applies_after_selection(images):
    paths, ids = images
    padded = detect_crops(CountingDetector(ANSWERS), paths[:1], ids[:1], CropSettings(padding=0.1))
    assert padded[0][0] == Detection((1.0, pytest.approx(1.3), 13.0, pytest.approx(21.7)), 0.9, "top")


@pytest.mark.parametrize(
    "change",
    [
        {"fingerprint": "other-weights"},
        {"settings": CropSettings(min_score=0.4, max_crops=2, batch_size=3)},
        {"settings": CropSettings(min_score=0.5, max_crops=2, batch_size=3, padding=0.1)},
        {"settings": CropSettings(min_score=0.5, max_crops=2, batch_size=3, fallback=WholeImageDetector())},
    ],
)
def test_a_new_fingerprint_or_setting_is_a_new_cache(tmp_path, change):
    cache = DetectionCache(tmp_path, "weights", SETTINGS.cache_settings())
    cache.put("B_0", ANSWERS["B_0"])
    fingerprint, settings = change.get("fingerprint", "weights"), change.get("settings", SETTINGS)
    other = DetectionCache(tmp_path, fingerprint, settings.cache_settings())
    assert other.directory != cache.directory
    assert other.get("B_0") is None and other.misses == 1
    assert json.loads((other.directory / "key.json").read_text())["detector"] == fingerprint


def test_batch_size_does_not_change_the_key():
    larger_batches = CropSettings(min_score=0.5, max_crops=2, batch_size=64)
    assert SETTINGS.cache_settings() == larger_batches.cache_settings()


def test_interrupted_writes_are_never_hits(tmp_path, caplog):
    cache = DetectionCache(tmp_path, "weights", SETTINGS.cache_settings())
    # An interrupted atomic write leaves (at most) its temporary file: not the entry's name.
    (cache.directory / f".{entry_name('B_0')}.x1y2z3.tmp").write_text('{"image_id": "B_0", "detec')
    assert cache.get("B_0") is None
    # A truncated entry (written by something else, or a disk fault) is a miss, logged, then rewritten.
    (cache.directory / entry_name("B_1")).write_text('{"image_id": "B_1", "detections": [{"box": [1, 2')
    with caplog.at_level(logging.WARNING):
        assert cache.get("B_1") is None
    assert "unreadable entry" in caplog.text and (cache.misses, cache.corrupt) == (2, 1)
    cache.put("B_1", ANSWERS["B_0"])
    assert cache.get("B_1") == ANSWERS["B_0"]
    assert sorted(p.name for p in cache.directory.iterdir()) == sorted(
        ["key.json", "B_1.json", f".{entry_name('B_0')}.x1y2z3.tmp"]
    )


def test_an_entry_of_another_image_is_a_miss(tmp_path):
    cache = DetectionCache(tmp_path, "weights", SETTINGS.cache_settings())
    cache.put("B_0", ANSWERS["B_0"])
    (cache.directory / entry_name("B_1")).write_bytes((cache.directory / entry_name("B_0")).read_bytes())
    assert cache.get("B_1") is None and cache.corrupt == 1


def test_unsafe_ids_get_hashed_names():
    assert entry_name("B_abc.1") == "B_abc.1.json"
    for unsafe in ("../x", ".hidden", "a/b", "key"):
        name = entry_name(unsafe)
        assert "/" not in name and not name.startswith(".") and name != "key.json"


@pytest.mark.parametrize(
    ("field", "value"), [("min_score", 1.5), ("min_area", 1.0), ("max_crops", 0), ("padding", -0.1)]
)
def test_crop_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        CropSettings(**{field: value})
