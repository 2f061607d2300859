"""DeepFashion2 consumer-to-shop retrieval: garments in user photos against garments in shop photos.

Layout (one split, e.g. ``validation/``): ``annos/<name>.json`` and ``image/<name>.jpg``. Each JSON holds
``source`` ("shop" | "user"), ``pair_id`` and items ``item1``, ``item2``, ... with ``category_id``,
``category_name``, ``style`` and ``bounding_box`` ``[x1, y1, x2, y2]``. Within a pair, items of the same
``style`` > 0 are the same garment; style 0 marks garments that have no counterpart and are not retrievable.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.data.catalogue import CatalogueError, ImageCheck, MissingImagePolicy
from fashion_retrieval.data.readers.retrieval_set import (
    ImageList,
    RetrievalSet,
    check_images,
    label_by,
    match_by,
)

log = logging.getLogger(__name__)

ITEM_KEY = re.compile(r"item\d+")
SIDES = {"user": "query", "shop": "gallery"}
TRAIN_SIDES = {"user": "train", "shop": "train"}  # training: every garment, labelled by item


def _field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in record:
        raise CatalogueError(f"{where}: field {name} missing")
    value = record[name]
    # bool is an int subclass; a JSON true where a number belongs is still malformed.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CatalogueError(f"{where}: field {name}: unexpected value {value!r}")
    return value


def _read_annotation(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CatalogueError(f"{path}: line {error.lineno}: invalid JSON: {error.msg}") from error
    if not isinstance(record, dict):
        raise CatalogueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def _garments(
    root: Path, sides: Mapping[str, str], image_check: ImageCheck, missing_images: MissingImagePolicy
) -> tuple[dict[str, ImageList], dict[str, int]]:
    """The garments with style > 0 of one split directory, one row per garment, grouped by
    ``sides[source]``; and the drop counts (``style_0``, ``<side>_missing_images``)."""
    anno_dir, image_dir = root / "annos", root / "image"
    if not anno_dir.is_dir():
        raise CatalogueError(f"{anno_dir}: annotation directory not found")
    files = sorted(anno_dir.glob("*.json"))
    if not files:
        raise CatalogueError(f"{anno_dir}: no .json annotation files")
    rows: dict[str, list[tuple[str, Path, str, str, tuple[float, ...]]]] = {
        side: [] for side in sides.values()
    }
    style_0 = 0
    for path in files:
        record = _read_annotation(path)
        source = _field(record, "source", str, str(path))
        if source not in SIDES:
            raise CatalogueError(f"{path}: field source: {source!r} is not one of {list(SIDES)}")
        pair_id = _field(record, "pair_id", int, str(path))
        items = sorted((key for key in record if ITEM_KEY.fullmatch(key)), key=lambda key: int(key[4:]))
        if not items:
            raise CatalogueError(f"{path}: no item1, item2, ... entries")
        for key in items:
            where = f"{path}: {key}"
            item = _field(record, key, dict, str(path))
            style = _field(item, "style", int, where)
            category_id = _field(item, "category_id", int, where)
            category = _field(item, "category_name", str, where)
            box = _field(item, "bounding_box", list, where)
            if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
                raise CatalogueError(f"{where}: field bounding_box: expected [x1, y1, x2, y2], got {box!r}")
            if box[2] <= box[0] or box[3] <= box[1]:
                raise CatalogueError(f"{where}: field bounding_box: empty box {box} (need x1 < x2, y1 < y2)")
            if style == 0:
                style_0 += 1
                continue
            item_id = f"{pair_id}/{style}/{category_id}"
            rows[sides[source]].append(
                (path.name, image_dir / f"{path.stem}.jpg", item_id, category, tuple(box))
            )
    dropped = {"style_0": style_0}
    log.info("%s: %d style-0 garment(s) left out (no counterpart to retrieve)", anno_dir, style_0)

    lists = {}
    for side, side_rows in rows.items():
        kept = check_images(
            [row[1] for row in side_rows],
            [row[0] for row in side_rows],
            anno_dir,
            image_check,
            missing_images,
        )
        if len(kept) < len(side_rows):
            dropped[f"{side}_missing_images"] = len(side_rows) - len(kept)
        lists[side] = ImageList(
            paths=tuple(row[1] for row in side_rows),
            item_ids=tuple(row[2] for row in side_rows),
            categories=tuple(row[3] for row in side_rows),
            boxes=np.asarray([row[4] for row in side_rows], np.float32).reshape(-1, 4),
        ).select(kept)
    return lists, dropped


def load_deepfashion2(
    root: str | Path,
    *,
    train_root: str | Path | None = None,
    image_check: ImageCheck = "none",
    missing_images: MissingImagePolicy = "fail",
) -> RetrievalSet:
    """Read one DeepFashion2 split as consumer-to-shop retrieval; one row per garment (image + box).

    Queries: user garments with style > 0; gallery: shop garments with style > 0. The item id is
    ``<pair_id>/<style>/<category_id>``: a positive shares pair, style and (to be safe) category.
    Style-0 garments are counted under ``dropped['style_0']`` and logged.

    ``train_root``: another split directory (``train/``) whose garments, user and shop photos alike, become
    the set's ``train``, labelled by item id; ``None``: no training split.
    """
    train = None
    if train_root is not None:
        garments, dropped = _garments(Path(train_root), TRAIN_SIDES, image_check, missing_images)
        train = label_by("deepfashion2/train", garments["train"], "item_id", dropped=dropped)
    lists, dropped = _garments(Path(root), SIDES, image_check, missing_images)
    return match_by("deepfashion2", lists["query"], lists["gallery"], "item_id", dropped=dropped, train=train)
