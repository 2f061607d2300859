"""Detections cached on disk, so a detector runs once per image and setting, not once per epoch or run.

Layout: ``<root>/<key>/<image id>.json``, where ``key`` hashes the detector's fingerprint (weights hash,
inference settings) and the crop settings; ``<root>/<key>/key.json`` records what the key stands for. Each
entry is one small JSON file of boxes, scores and labels (no pixels), written to a temporary file and
renamed, so an interrupted run leaves whole entries or none; an entry that cannot be read anyway (a
truncated file from another tool, a disk error) counts as a miss and is rewritten.

Ids are not content: a regenerated dataset, or another dataset in the same cache root, reuses image ids for
other pictures. So each entry also records the SHA-256 of the image file
(:func:`~fashion_retrieval.io.content_digest`, memoised per file size and time), and an entry whose
digest differs from the file's now is stale: a miss, rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.io import atomic_open, is_safe_name

log = logging.getLogger(__name__)

KEY_FILE = "key.json"


def entry_name(image_id: str) -> str:
    """File name of an image's entry: the id itself when it is a safe file name, else its SHA-256 (real
    ids could hold slashes or start with a dot)."""
    if is_safe_name(image_id) and image_id != KEY_FILE.removesuffix(".json"):
        return f"{image_id}.json"
    return f"{hashlib.sha256(image_id.encode()).hexdigest()}.json"


def encode_detections(
    image_id: str, detections: Sequence[Detection], digest: str | None = None
) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "image_sha256": digest,
        "detections": [{"box": list(d.box), "score": d.score, "label": d.label} for d in detections],
    }


def decode_detections(image_id: str, entry: Mapping[str, Any]) -> list[Detection]:
    """The detections of a cache entry; ``ValueError`` when it is not a well-formed entry of ``image_id``."""
    if entry.get("image_id") != image_id:
        raise ValueError(f"entry of {entry.get('image_id')!r}, not {image_id!r}")
    detections = []
    for item in entry["detections"]:
        box = tuple(float(v) for v in item["box"])
        if len(box) != 4:
            raise ValueError(f"box {item['box']!r} does not have 4 coordinates")
        detections.append(
            Detection((box[0], box[1], box[2], box[3]), float(item["score"]), str(item["label"]))
        )
    return detections


class DetectionCache:
    """Per-image detections under ``root``, for one detector fingerprint and one set of crop settings.

    ``hits``, ``misses``, ``corrupt`` (unreadable entries) and ``stale`` (entries of another image with the
    same id), the last two counted among the misses, are kept for the log (:meth:`summary`).
    """

    def __init__(self, root: str | Path, detector_fingerprint: str, crop_settings: Mapping[str, Any]) -> None:
        key = {"detector": detector_fingerprint, "crops": dict(crop_settings)}
        self.directory = Path(root) / settings_digest(key)
        self.hits = self.misses = self.corrupt = self.stale = 0
        key_file = self.directory / KEY_FILE
        if not key_file.is_file():
            with atomic_open(key_file, "w") as handle:
                json.dump(key, handle, indent=2, sort_keys=True)

    def get(self, image_id: str, digest: str | None = None) -> list[Detection] | None:
        """The cached detections of ``image_id`` (possibly ``[]``), or ``None`` on a miss. With ``digest``
        (``content_digest`` of the image now), an entry computed from other bytes is a (stale) miss."""
        path = self.directory / entry_name(image_id)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            entry = json.loads(path.read_text())
            detections = decode_detections(image_id, entry)
        except (OSError, ValueError, KeyError, TypeError) as error:
            # json.JSONDecodeError is a ValueError: a truncated or overwritten entry lands here.
            self.misses += 1
            self.corrupt += 1
            log.warning(
                "detection cache: unreadable entry %s (%s); treated as a miss, rewritten", path, error
            )
            return None
        if digest is not None and entry.get("image_sha256") != digest:
            self.misses += 1
            self.stale += 1
            return None
        self.hits += 1
        return detections

    def put(self, image_id: str, detections: Sequence[Detection], digest: str | None = None) -> None:
        with atomic_open(self.directory / entry_name(image_id), "w") as handle:
            json.dump(encode_detections(image_id, detections, digest), handle)

    def summary(self) -> str:
        return (
            f"detection cache {self.directory}: {self.hits} hit(s), {self.misses} miss(es)"
            f" ({self.corrupt} unreadable, {self.stale} of changed images; rewritten)"
        )
