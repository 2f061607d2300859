"""clothing-dataset-small (CC0): real photos of single garments, ``{split}/{class}/{uuid}.jpg``.

Splits are ``train``, ``validation`` and ``test``, each with the same 10 class directories.

Used for category-level retrieval within one split: every image is a query against all the other images
of the split, and its positives are the images of its class. The files are read where they are (by default
``../shared/data/clothing-dataset-small`` from the project root), never copied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fashion_retrieval.data.catalogue import CatalogueError, ImageCheck, MissingImagePolicy, list_examples
from fashion_retrieval.data.readers.retrieval_set import ImageList, RetrievalSet, check_images, match_by

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg")


def load_clothing_small(
    root: str | Path,
    *,
    split: str = "test",
    image_check: ImageCheck = "none",
    missing_images: MissingImagePolicy = "fail",
) -> RetrievalSet:
    """Category retrieval on one split: queries and gallery are the same images (``query_in_gallery``
    marks each query's own row, which a ranking must skip); positives = the other images of its class.

    Files that are not JPEGs are counted under ``dropped['not_jpeg']`` and logged; a class with one image
    leaves that query without positives (counted by :func:`match_by`).
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise CatalogueError(f"{split_dir}: split directory not found (found {found} under {root})")
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not class_dirs:
        raise CatalogueError(f"{split_dir}: no class directories")
    paths: list[Path] = []
    categories: list[str] = []
    others: list[str] = []
    for class_dir in class_dirs:
        for file in sorted(class_dir.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                categories.append(class_dir.name)
            else:
                others.append(str(file.relative_to(root)))
    stray = [str(p.relative_to(root)) for p in split_dir.iterdir() if not p.is_dir()]
    dropped = {"not_jpeg": len(others) + len(stray)}
    if dropped["not_jpeg"]:
        log.warning(
            "%s: %d non-JPEG entry(ies) ignored: %s",
            split_dir,
            dropped["not_jpeg"],
            list_examples(others + stray),
        )
    if not paths:
        raise CatalogueError(f"{split_dir}: no JPEG images under its class directories")

    where = [str(p.relative_to(root)) for p in paths]
    kept = check_images(paths, where, split_dir, image_check, missing_images)
    if len(kept) < len(paths):
        dropped["missing_images"] = len(paths) - len(kept)
    images = ImageList(
        paths=tuple(paths), item_ids=tuple(p.stem for p in paths), categories=tuple(categories)
    ).select(kept)
    return match_by(
        f"clothing_small/{split}",
        images,
        images,
        "category",
        query_in_gallery=np.arange(len(images), dtype=np.int64),
        dropped=dropped,
    )
