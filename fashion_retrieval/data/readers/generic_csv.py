"""A user's own catalogue as one CSV: ``image_path,item_id,category,split`` (+ optional ``x1,y1,x2,y2``).

``split`` is ``query``, ``gallery`` or ``train``. A query's positives are the gallery rows with its item id;
the train rows are the set's training split, labelled by item id. Relative image paths are taken from the
CSV's directory. With box columns, a row whose four box cells are empty is the whole image.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_retrieval.data.catalogue import (
    CatalogueError,
    ImageCheck,
    MissingImagePolicy,
    check_non_empty,
    csv_line,
    read_csv,
)
from fashion_retrieval.data.readers.retrieval_set import (
    ImageList,
    RetrievalSet,
    check_images,
    label_by,
    match_by,
)

COLUMNS = ("image_path", "item_id", "category", "split")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
SPLITS = ("query", "gallery", "train")


def _box_columns(path: Path) -> tuple[str, ...]:
    """The box columns if the header has all four, none if it has none; a partial set is an error."""
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    present = [column for column in BOX_COLUMNS if column in header]
    if present and len(present) < len(BOX_COLUMNS):
        missing = [column for column in BOX_COLUMNS if column not in header]
        raise CatalogueError(f"{path}: box columns need all of {list(BOX_COLUMNS)}; missing {missing}")
    return BOX_COLUMNS if present else ()


def _boxes(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """``(N, 4)`` float32 boxes from the box columns, naming the line and field of a bad value; a row whose
    four cells are empty is a row of NaN (the whole image)."""
    cells = frame[list(BOX_COLUMNS)]
    whole = (cells == "").all(axis=1)
    values = cells.apply(pd.to_numeric, errors="coerce")
    for column in BOX_COLUMNS:
        bad = frame.index[values[column].isna() & ~whole]
        if len(bad):
            row = bad[0]
            raise CatalogueError(
                f"{path}: line {csv_line(row)}: field {column}: "
                f"expected a number, got {frame.at[row, column]!r} (leave all four box cells empty for "
                "the whole image)"
            )
    empty = frame.index[~whole & ((values["x2"] <= values["x1"]) | (values["y2"] <= values["y1"]))]
    if len(empty):
        row = empty[0]
        raise CatalogueError(
            f"{path}: line {csv_line(row)}: empty box {values.loc[row].tolist()} (need x1 < x2, y1 < y2)"
        )
    return values.to_numpy(np.float32)


def load_generic_csv(
    path: str | Path,
    *,
    image_check: ImageCheck = "none",
    missing_images: MissingImagePolicy = "fail",
) -> RetrievalSet:
    """Read a retrieval catalogue CSV; errors name the file, line and field."""
    path = Path(path)
    frame = read_csv(path, COLUMNS + (_box_columns(path) if path.is_file() else ()))
    for column in COLUMNS:
        check_non_empty(frame, column, path)
    unknown = frame.index[~frame["split"].isin(SPLITS)]
    if len(unknown):
        row = unknown[0]
        raise CatalogueError(
            f"{path}: line {csv_line(row)}: field split: {frame.at[row, 'split']!r} "
            f"is not one of {list(SPLITS)} ({len(unknown)} such row(s))"
        )
    boxes = _boxes(frame, path) if BOX_COLUMNS[0] in frame.columns else None
    dropped: dict[str, int] = {}
    lists = {}
    for side in SPLITS:
        rows = frame.index[frame["split"] == side]
        paths = [
            path.parent / value for value in frame.loc[rows, "image_path"]
        ]  # absolute paths stay absolute
        kept = check_images(
            paths, [f"line {csv_line(row)}" for row in rows], path, image_check, missing_images
        )
        if len(kept) < len(rows):
            dropped[f"{side}_missing_images"] = len(rows) - len(kept)
        lists[side] = ImageList(
            paths=tuple(paths),
            item_ids=tuple(frame.loc[rows, "item_id"]),
            categories=tuple(frame.loc[rows, "category"]),
            boxes=None if boxes is None else boxes[rows.to_numpy()],
        ).select(kept)
    train = label_by(f"{path.stem}/train", lists["train"], "item_id") if lists["train"] else None
    return match_by(path.stem, lists["query"], lists["gallery"], "item_id", dropped=dropped, train=train)
