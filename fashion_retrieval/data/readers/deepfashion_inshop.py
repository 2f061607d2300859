"""DeepFashion In-shop Clothes Retrieval: query and gallery photos of the same shop items.

Layout (as released): ``Eval/list_eval_partition.txt`` and ``Anno/list_bbox_inshop.txt`` under the root, the
images under ``img/`` (``img/WOMEN/Dresses/id_00000002/02_1_front.jpg``; unzip ``Img/img.zip`` into the
root, or pass ``image_root``). Both lists are a count line, a header line, then whitespace-separated rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fashion_retrieval.data.catalogue import CatalogueError, ImageCheck, MissingImagePolicy
from fashion_retrieval.data.readers.retrieval_set import (
    ImageList,
    RetrievalSet,
    check_images,
    label_by,
    match_by,
)

PARTITION_FILE = "Eval/list_eval_partition.txt"
BBOX_FILE = "Anno/list_bbox_inshop.txt"
PARTITION_COLUMNS = ("image_name", "item_id", "evaluation_status")
BBOX_COLUMNS = ("image_name", "clothes_type", "pose_type", "x_1", "y_1", "x_2", "y_2")
STATUSES = ("train", "query", "gallery")


def read_listing(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Rows of a DeepFashion list file as ``(line number, fields)``, after checking count and header."""
    if not path.is_file():
        raise CatalogueError(f"{path}: file not found")
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise CatalogueError(f"{path}: expected a count line and a header line, found {len(lines)} line(s)")
    try:
        expected = int(lines[0].strip())
    except ValueError as error:
        raise CatalogueError(f"{path}: line 1: expected the row count, got {lines[0]!r}") from error
    header = tuple(lines[1].split())
    if header != columns:
        raise CatalogueError(f"{path}: line 2: expected columns {list(columns)}, found {list(header)}")
    rows = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue  # trailing blank lines
        if len(fields) != len(columns):
            raise CatalogueError(
                f"{path}: line {number}: expected {len(columns)} fields {list(columns)}, found {len(fields)}"
            )
        rows.append((number, fields))
    # A truncated download passes every other check: the count line is the only witness.
    if len(rows) != expected:
        raise CatalogueError(f"{path}: line 1 announces {expected} rows, the file holds {len(rows)}")
    return rows


def _category(image_name: str, path: Path, line: int) -> str:
    """``img/WOMEN/Dresses/id_00000002/02_1_front.jpg`` -> ``WOMEN/Dresses``."""
    parts = image_name.split("/")
    if len(parts) != 5 or parts[0] != "img":
        raise CatalogueError(
            f"{path}: line {line}: field image_name: expected img/<GENDER>/<Category>/<item>/<file>, "
            f"got {image_name!r}"
        )
    return f"{parts[1]}/{parts[2]}"


def _read_boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    boxes = {}
    for line, fields in read_listing(path, BBOX_COLUMNS):
        try:
            x1, y1, x2, y2 = (float(value) for value in fields[3:])
        except ValueError as error:
            raise CatalogueError(
                f"{path}: line {line}: fields x_1..y_2: expected numbers, got {fields[3:]}"
            ) from error
        if x2 <= x1 or y2 <= y1:
            raise CatalogueError(f"{path}: line {line}: empty box {fields[3:]} (need x_1 < x_2, y_1 < y_2)")
        boxes[fields[0]] = (x1, y1, x2, y2)
    return boxes


def load_deepfashion_inshop(
    root: str | Path,
    *,
    image_root: str | Path | None = None,
    use_boxes: bool = True,
    image_check: ImageCheck = "none",
    missing_images: MissingImagePolicy = "fail",
) -> RetrievalSet:
    """Read the In-shop query/gallery split; a query's positives are the gallery photos of its item id.

    Categories come from the image path (``WOMEN/Dresses``). ``use_boxes`` reads ``Anno/list_bbox_inshop.txt``
    (every image of the partition must have a box there). The ``train`` rows become the set's ``train``,
    labelled by item id (``None`` when the partition has none).
    """
    root = Path(root)
    image_root = root if image_root is None else Path(image_root)
    partition_path = root / PARTITION_FILE
    rows = read_listing(partition_path, PARTITION_COLUMNS)
    sides: dict[str, list[tuple[int, list[str]]]] = {status: [] for status in STATUSES}
    for line, fields in rows:
        status = fields[2]
        if status not in sides:
            raise CatalogueError(
                f"{partition_path}: line {line}: field evaluation_status: {status!r} "
                f"is not one of {list(STATUSES)}"
            )
        sides[status].append((line, fields))

    boxes = _read_boxes(root / BBOX_FILE) if use_boxes else None
    dropped: dict[str, int] = {}
    lists = {}
    for side, side_rows in sides.items():
        names = [fields[0] for _, fields in side_rows]
        paths = [image_root / name for name in names]
        kept = check_images(
            paths, [f"line {line}" for line, _ in side_rows], partition_path, image_check, missing_images
        )
        if len(kept) < len(side_rows):
            dropped[f"{side}_missing_images"] = len(side_rows) - len(kept)
        side_boxes = None
        if boxes is not None:
            unboxed = [(line, names[i]) for i, (line, _) in enumerate(side_rows) if names[i] not in boxes]
            if unboxed:
                line, name = unboxed[0]
                raise CatalogueError(
                    f"{partition_path}: line {line}: {len(unboxed)} image(s) without a box in {BBOX_FILE}, "
                    f"first {name!r} (pass use_boxes=false to read whole images)"
                )
            side_boxes = np.asarray([boxes[name] for name in names], np.float32).reshape(-1, 4)
        lists[side] = ImageList(
            paths=tuple(paths),
            item_ids=tuple(fields[1] for _, fields in side_rows),
            categories=tuple(_category(fields[0], partition_path, line) for line, fields in side_rows),
            boxes=side_boxes,
        ).select(kept)
    train = label_by("deepfashion_inshop/train", lists["train"], "item_id") if lists["train"] else None
    return match_by(
        "deepfashion_inshop", lists["query"], lists["gallery"], "item_id", dropped=dropped, train=train
    )
