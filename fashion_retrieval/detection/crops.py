"""From bundle photos to the garment regions the pipelines crop: select, pad, clip, fall back, cache.

:func:`detect_crops` is the one entry point: it reads only the images whose detections are not cached,
runs the detector on them in batches, and returns the final detections of every image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.data.transforms import load_rgb
from fashion_retrieval.detection.cache import DetectionCache
from fashion_retrieval.detection.geometry import pad_and_clip, select_detections
from fashion_retrieval.detection.types import Detection, Detector
from fashion_retrieval.io import content_digest
from fashion_retrieval.locks import directory_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSettings:
    """Which detections become crops (``crops:`` in conf/config.yaml).

    ``min_score``: lowest detector confidence kept; ``min_area``: smallest box (after clipping to the
    image) as a fraction of the image area; ``max_crops``: at most this many per image, best score first;
    ``padding``: each side grows by this fraction of the box's width or height, then the box is clipped;
    ``fallback``: the detector used on an image where nothing passes (zones, the whole image) or ``None``
    (the image gets no crop); ``batch_size``: images per detector call.
    """

    min_score: float = 0.25
    min_area: float = 0.0
    max_crops: int = 6
    padding: float = 0.0
    fallback: Detector | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        checks = {
            "min_score": 0.0 <= self.min_score <= 1.0,
            "min_area": 0.0 <= self.min_area < 1.0,
            "max_crops": self.max_crops >= 1,
            "padding": self.padding >= 0.0,
            "batch_size": self.batch_size >= 1,
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            values = {name: getattr(self, name) for name in wrong}
            raise ValueError(
                f"crops: out of range: {values} (min_score in [0, 1], min_area in [0, 1), max_crops >= 1, "
                "padding >= 0, batch_size >= 1)"
            )

    def cache_settings(self) -> dict[str, Any]:
        """What changes the final detections of an image: keys the cache (``batch_size`` does not)."""
        return {
            "min_score": self.min_score,
            "min_area": self.min_area,
            "max_crops": self.max_crops,
            "padding": self.padding,
            "fallback": None if self.fallback is None else self.fallback.fingerprint(),
        }


def finalize_detections(
    detections: Sequence[Detection], width: int, height: int, settings: CropSettings
) -> list[Detection]:
    """Select (score, area, count), then pad and clip, the detections of one ``width`` x ``height`` image."""
    selected = select_detections(
        detections,
        width,
        height,
        min_score=settings.min_score,
        min_area=settings.min_area,
        max_crops=settings.max_crops,
    )
    return [pad_and_clip(d, settings.padding, width, height) for d in selected]


def detect_images(
    detector: Detector, images: Sequence[np.ndarray], image_ids: Sequence[str], settings: CropSettings
) -> tuple[list[list[Detection]], int]:
    """The final detections of decoded ``(H, W, 3)`` uint8 RGB ``images`` in one detector call: selected,
    padded, clipped, with ``settings.fallback`` where nothing passed; and how many fell back."""
    results, fallbacks = [], 0
    for image, image_id, detections in zip(images, image_ids, detector.detect(images, image_ids)):
        height, width = image.shape[:2]
        final = finalize_detections(detections, width, height, settings)
        if not final and settings.fallback is not None:
            fallbacks += 1
            final = finalize_detections(
                settings.fallback.detect([image], [image_id])[0], width, height, settings
            )
        results.append(final)
    return results, fallbacks


def detect_crops(
    detector: Detector,
    image_paths: Sequence[str],
    image_ids: Sequence[str],
    settings: CropSettings,
    cache: DetectionCache | None = None,
) -> list[list[Detection]]:
    """The final detections of each image (same order as ``image_ids``): selected, padded, clipped, with
    ``settings.fallback`` where nothing passed. Cached images are not decoded (only hashed,
    to catch a changed image behind a known id); the others are read with
    :func:`load_rgb` and detected ``settings.batch_size`` at a time, and their results cached."""
    if len(image_paths) != len(image_ids):
        raise ValueError(f"{len(image_paths)} image paths for {len(image_ids)} image ids")
    results: dict[int, list[Detection]] = {}
    digests: list[str | None] = [None] * len(image_ids)
    if cache is not None:
        for position, image_id in enumerate(image_ids):
            digests[position] = content_digest(image_paths[position])
            found = cache.get(image_id, digests[position])
            if found is not None:
                results[position] = found
    missing = [position for position in range(len(image_ids)) if position not in results]
    fallbacks = 0
    for start in range(0, len(missing), settings.batch_size):
        batch = missing[start : start + settings.batch_size]
        images = [load_rgb(image_paths[p]) for p in batch]
        ids = [image_ids[p] for p in batch]
        found, fell_back = detect_images(detector, images, ids, settings)
        fallbacks += fell_back
        for position, image_id, final in zip(batch, ids, found):
            results[position] = final
            if cache is not None:
                cache.put(image_id, final, digests[position])
    if missing:
        log.info("detect: %d image(s) detected, %d of them by the fallback", len(missing), fallbacks)
    if cache is not None:
        log.info(cache.summary())
    return [results[position] for position in range(len(image_ids))]


def detect_crops_cached(
    detector: Detector,
    image_paths: Sequence[str],
    image_ids: Sequence[str],
    settings: CropSettings,
    cache_dir: str | Path | None,
) -> list[list[Detection]]:
    """:func:`detect_crops` with the cache of ``detector`` and ``settings`` under ``cache_dir``
    (``None``: no cache). The cache entry's folder is locked meanwhile: another process detecting with the
    same detector and settings (a sweep's parallel jobs) waits, then finds the detections cached."""
    if not cache_dir:
        return detect_crops(detector, image_paths, image_ids, settings, None)
    cache = DetectionCache(cache_dir, detector.fingerprint(), settings.cache_settings())
    with directory_lock(cache.directory, "garment detection", wait=True):
        return detect_crops(detector, image_paths, image_ids, settings, cache)
