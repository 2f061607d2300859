"""Our garment boxes as an Ultralytics detection dataset.

Layout written under ``directory``::

    images/{train,val}/<bundle id>.jpg   links to the dataset's photos (hard links, else symbolic links)
    labels/{train,val}/<bundle id>.txt   one `class cx cy w h` line per box, normalised to [0, 1]
    data.yaml                            path, train, val, names (garment groups, in class id order)

A bundle without boxes gets an empty label file (a background image, which YOLO trains on as such).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf
from PIL import Image

from fashion_retrieval.detection.groups import category_groups, count_unmapped
from fashion_retrieval.detection.types import Box
from fashion_retrieval.io import atomic_open, contained_path

log = logging.getLogger(__name__)

DATA_YAML = "data.yaml"


def yolo_label_line(class_id: int, box: Box, width: int, height: int) -> str:
    """``class cx cy w h`` of a pixel box (``x2``/``y2`` exclusive, so ``x2 - x1`` is the width),
    normalised by the image's ``width`` and ``height``."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    return f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def link_image(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source`` (no copy, and it survives a moved dataset), or a
    symbolic link where hard links are impossible (another file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())


def write_ultralytics_dataset(
    boxes: pd.DataFrame,
    image_paths: Mapping[str, Path],
    splits: Mapping[str, Sequence[str]],
    groups: Mapping[str, Sequence[str]],
    directory: str | Path,
) -> Path:
    """Write the dataset of ``splits`` (``{"train": bundle ids, "val": bundle ids}``) and return its
    ``data.yaml``.

    ``boxes``: rows of :func:`fashion_retrieval.data.catalogue.read_garment_boxes`; ``image_paths``:
    bundle id -> photo; ``groups``: validated group -> categories map, whose order gives the class ids.
    Boxes of categories without a group are left out, counted and logged.
    """
    directory = Path(directory)
    class_of = {group: index for index, group in enumerate(groups)}
    group_of = category_groups(groups)
    wanted = {bundle for ids in splits.values() for bundle in ids}
    selected = boxes[boxes["bundle_asset_id"].isin(wanted)]
    count_unmapped(selected["product_description"], group_of, context="detect-train dataset")
    classes: dict[str, list[tuple[int, Box]]] = {}
    for row in selected.itertuples(index=False):
        if row.product_description in group_of:
            box = (float(row.x1), float(row.y1), float(row.x2), float(row.y2))
            classes.setdefault(row.bundle_asset_id, []).append(
                (class_of[group_of[row.product_description]], box)
            )
    for split, bundle_ids in splits.items():
        labelled = 0
        for bundle in bundle_ids:
            source = Path(image_paths[bundle])
            link_image(source, contained_path(directory / "images" / split, f"{bundle}{source.suffix}"))
            with Image.open(source) as image:  # reads the header only
                width, height = image.size
            lines = [yolo_label_line(c, box, width, height) for c, box in classes.get(bundle, [])]
            labelled += len(lines)
            with atomic_open(contained_path(directory / "labels" / split, f"{bundle}.txt"), "w") as handle:
                handle.write("".join(f"{line}\n" for line in lines))
        log.info("detect-train dataset: %s: %d images, %d boxes", split, len(bundle_ids), labelled)
    data_yaml = directory / DATA_YAML
    config = {
        "path": str(directory.resolve()),
        **{split: f"images/{split}" for split in splits},
        "names": list(groups),  # class id = position
    }
    with atomic_open(data_yaml, "w") as handle:
        handle.write(OmegaConf.to_yaml(config))
    return data_yaml
