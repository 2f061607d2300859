"""clothing-dataset-small (CC0): real photos of single garments, ``{split}/{class}/{uuid}.jpg``.

Splits are ``train``, ``validation`` and ``test``, each with the same 10 class directories.

Used for category-level retrieval: the queries are one split's images and their positives are the
gallery images of their class. The gallery is either the same split (each image against all the others)
or other splits (e.g. ``test`` queries against ``train`` + ``validation``). Training splits, when asked
for, are labelled by class. The files are read where they are (by default
``../shared/data/clothing-dataset-small`` from the project root), never copied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashion_retrieval.data.catalogue import CatalogueError, ImageCheck, MissingImagePolicy, list_examples
from fashion_retrieval.data.readers.retrieval_set import (
    ImageList,
    RetrievalSet,
    check_images,
    label_by,
    match_by,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg")
CLASSES = ("dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt")


def list_split(root: Path, split: str) -> tuple[list[Path], list[str], list[str]]:
    """``(paths, classes, ignored)`` of one split: its JPEGs in sorted class/file order, the class of each,
    and the entries that are not JPEGs under a class directory (relative to ``root``)."""
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise CatalogueError(f"{split_dir}: split directory not found (found {found} under {root})")
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not class_dirs:
        raise CatalogueError(f"{split_dir}: no class directories")
    paths: list[Path] = []
    categories: list[str] = []
    others = [str(p.relative_to(root)) for p in sorted(split_dir.iterdir()) if not p.is_dir()]
    for class_dir in class_dirs:
        for file in sorted(class_dir.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                categories.append(class_dir.name)
            else:
                others.append(str(file.relative_to(root)))
    if not paths:
        raise CatalogueError(f"{split_dir}: no JPEG images under its class directories")
    return paths, categories, others


def _read_splits(
    root: Path, splits: Sequence[str], image_check: ImageCheck, missing_images: MissingImagePolicy
) -> tuple[ImageList, int, int]:
    """The images of ``splits`` (in that order), the non-JPEG entries ignored and the images dropped."""
    paths: list[Path] = []
    categories: list[str] = []
    others: list[str] = []
    for split in splits:
        split_paths, split_categories, split_others = list_split(root, split)
        paths += split_paths
        categories += split_categories
        others += split_others
    if others:
        log.warning("%s: %d non-JPEG entry(ies) ignored: %s", root, len(others), list_examples(others))
    where = [str(p.relative_to(root)) for p in paths]
    source = root / splits[0] if len(splits) == 1 else root
    kept = check_images(paths, where, source, image_check, missing_images)
    images = ImageList(
        paths=tuple(paths), item_ids=tuple(p.stem for p in paths), categories=tuple(categories)
    ).select(kept)
    return images, len(others), len(paths) - len(kept)


def load_clothing_small(
    root: str | Path,
    *,
    split: str = "test",
    gallery_splits: Sequence[str] | None = None,
    train_splits: Sequence[str] | None = None,
    image_check: ImageCheck = "none",
    missing_images: MissingImagePolicy = "fail",
) -> RetrievalSet:
    """Category retrieval: the queries are the images of ``split``; positives = gallery images of their class.

    ``gallery_splits=None``: the gallery is ``split`` itself (``query_in_gallery`` marks each query's own
    row, which a ranking must skip; a class with one image leaves that query without positives, counted
    by :func:`match_by`). Otherwise the gallery is the images of those splits, which must not include
    ``split``. Files that are not JPEGs are counted under ``dropped['not_jpeg']`` and logged.
    ``train_splits``: splits whose images become the set's ``train``, labelled by class (never ``split``:
    the queries stay unseen); ``None``: no training split.
    """
    root = Path(root)
    gallery_splits = _other_splits("gallery_splits", gallery_splits, split)
    train_splits = _other_splits("train_splits", train_splits, split)
    train = None
    if train_splits is not None:
        images, not_jpeg, missing = _read_splits(root, train_splits, image_check, missing_images)
        counts = {"not_jpeg": not_jpeg, **({"missing_images": missing} if missing else {})}
        train = label_by(f"clothing_small/{'+'.join(train_splits)}", images, "category", dropped=counts)
    queries, not_jpeg, missing = _read_splits(root, [split], image_check, missing_images)
    dropped = {"not_jpeg": not_jpeg}
    if missing:
        dropped["missing_images"] = missing
    if gallery_splits is None:
        return match_by(
            f"clothing_small/{split}",
            queries,
            queries,
            "category",
            query_in_gallery=np.arange(len(queries), dtype=np.int64),
            dropped=dropped,
            train=train,
        )
    gallery, not_jpeg, missing = _read_splits(root, gallery_splits, image_check, missing_images)
    dropped["not_jpeg"] += not_jpeg
    if missing:
        dropped["gallery_missing_images"] = missing
    return match_by(
        f"clothing_small/{split}_vs_{'+'.join(gallery_splits)}",
        queries,
        gallery,
        "category",
        dropped=dropped,
        train=train,
    )


def _other_splits(name: str, splits: Sequence[str] | None, split: str) -> list[str] | None:
    """``splits`` as a list of names, checked to be non-empty and without the query split ``split``."""
    if splits is None:
        return None
    names = [str(s) for s in splits]
    if not names or split in names:
        raise ValueError(f"{name} must be other splits than the query split {split!r}, got {names}")
    return names
