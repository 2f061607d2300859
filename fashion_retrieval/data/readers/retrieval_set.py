"""The structure every dataset reader returns: queries, a gallery, each query's positives and, when the
dataset has one, a labelled training split.

Readers differ only in how they parse their files and what makes two images a match; building the
positives and the training labels, leaving out queries without positives and labels without a second
image, checking images and logging what was dropped live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from fashion_retrieval.data.catalogue import (
    CatalogueError,
    ImageCheck,
    MissingImagePolicy,
    image_problem,
    list_examples,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ImageList:
    """N retrievable items, one per row: the image, the item id, its category and optionally its box.

    ``boxes``: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in pixels of the image, or ``None`` for whole images; a
    row of NaN is a whole image among boxed ones (a CSV row with empty box cells). Several rows may share an
    image (DeepFashion2 has several garments per photo); the box tells them apart.
    """

    paths: tuple[Path, ...]
    item_ids: tuple[str, ...]
    categories: tuple[str, ...]
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, rows: Sequence[int]) -> ImageList:
        """The rows ``rows`` (gallery indices change: build positives after selecting)."""
        return ImageList(
            paths=tuple(self.paths[i] for i in rows),
            item_ids=tuple(self.item_ids[i] for i in rows),
            categories=tuple(self.categories[i] for i in rows),
            boxes=None if self.boxes is None else self.boxes[np.asarray(rows, np.int64)].reshape(-1, 4),
        )

    def box_list(self) -> list[tuple[float, float, float, float] | None] | None:
        """The boxes as ``N`` tuples, ``None`` for a whole-image row; ``None`` when no row has a box."""
        if self.boxes is None:
            return None
        return [None if np.isnan(row).all() else tuple(float(v) for v in row) for row in self.boxes]

    def validate(self, side: str) -> None:
        """Raise ``ValueError`` if the columns disagree in length or a box is malformed."""
        n = len(self.paths)
        if len(self.item_ids) != n or len(self.categories) != n:
            raise ValueError(
                f"{side}: {n} paths but {len(self.item_ids)} item ids and {len(self.categories)} categories"
            )
        if self.boxes is not None:
            if self.boxes.shape != (n, 4):
                raise ValueError(f"{side}: boxes of shape {self.boxes.shape}, expected ({n}, 4)")
            whole = np.isnan(self.boxes)
            partial = np.flatnonzero(whole.any(axis=1) & ~whole.all(axis=1))
            if len(partial):
                raise ValueError(
                    f"{side}: box(es) with some but not all values missing at row(s) "
                    f"{list_examples([str(i) for i in partial])}"
                )
            boxed = ~whole.any(axis=1)
            empty = np.flatnonzero(
                boxed & ((self.boxes[:, 2] <= self.boxes[:, 0]) | (self.boxes[:, 3] <= self.boxes[:, 1]))
            )
            if len(empty):
                raise ValueError(f"{side}: empty box(es) at row(s) {list_examples([str(i) for i in empty])}")


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """Training images with integer labels: the images of one label are positives of each other.

    ``labels``: ``(N,)`` int64 in ``[0, L)``, every label held by at least two images (readers leave out
    labels with a single image, which could never be a positive, and count them in ``dropped``);
    ``label_names[l]``: the item id or class that label ``l`` stands for.
    """

    name: str
    images: ImageList
    labels: np.ndarray
    label_names: tuple[str, ...]
    dropped: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` on labels that disagree with the images or a label with under two images."""
        self.images.validate(f"{self.name} training images")
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"{self.name}: labels of shape {self.labels.shape} for {len(self.images)} images"
            )
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        if len(counts) != len(self.label_names):
            raise ValueError(f"{self.name}: labels outside [0, {len(self.label_names)})")
        if len(counts) and counts.min() < 2:
            lone = [self.label_names[i] for i in np.flatnonzero(counts < 2)]
            raise ValueError(f"{self.name}: label(s) with fewer than two images: {list_examples(lone)}")

    def summary(self) -> dict[str, int]:
        """Counts for logs: images, labels and each drop reason."""
        return {
            "images": len(self.images),
            "labels": len(self.label_names),
            **{f"dropped_{reason}": count for reason, count in self.dropped.items()},
        }


@dataclass(frozen=True, eq=False)
class RetrievalSet:
    """Queries, a gallery and the ground truth of every query.

    ``positives[i]``: sorted, unique int64 gallery indices relevant to query ``i``; never empty (readers
    leave out queries without positives and count them in ``dropped``).
    ``query_in_gallery``: ``(Q,)`` int64, the gallery index that is query ``i`` itself (-1: none), for sets
    whose queries are drawn from the gallery; a ranking must skip that entry. ``None``: disjoint sides.
    ``dropped``: rows left out, by reason (also logged when the set is built).
    ``train``: the dataset's labelled training split, when the reader found one (``data=reader`` trains on
    it); ``None`` otherwise.
    """

    name: str
    queries: ImageList
    gallery: ImageList
    positives: tuple[np.ndarray, ...]
    query_in_gallery: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    train: TrainingSet | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` on any inconsistency between queries, gallery and ground truth."""
        self.queries.validate(f"{self.name} queries")
        self.gallery.validate(f"{self.name} gallery")
        num_queries, num_gallery = len(self.queries), len(self.gallery)
        if len(self.positives) != num_queries:
            raise ValueError(f"{self.name}: {len(self.positives)} positive lists for {num_queries} queries")
        if self.query_in_gallery is not None and self.query_in_gallery.shape != (num_queries,):
            raise ValueError(f"{self.name}: query_in_gallery of shape {self.query_in_gallery.shape}")
        for i, found in enumerate(self.positives):
            if len(found) == 0:
                raise ValueError(f"{self.name}: query {i} ({self.queries.item_ids[i]}) has no positive")
            if found.min() < 0 or found.max() >= num_gallery:
                raise ValueError(f"{self.name}: query {i}: positive index out of [0, {num_gallery})")
            if np.any(np.diff(found) <= 0):
                raise ValueError(f"{self.name}: query {i}: positives not sorted and unique")
            if self.query_in_gallery is not None and self.query_in_gallery[i] in found:
                raise ValueError(f"{self.name}: query {i} is its own positive")

    def summary(self) -> dict[str, int]:
        """Counts for logs: queries, gallery, positive pairs, each drop reason and the training split's."""
        counts = {
            "queries": len(self.queries),
            "gallery": len(self.gallery),
            "positive_pairs": sum(len(found) for found in self.positives),
            **{f"dropped_{reason}": count for reason, count in self.dropped.items()},
        }
        if self.train is not None:
            counts.update({f"train_{key}": value for key, value in self.train.summary().items()})
        return counts

    def subset(
        self, query_rows: Sequence[int], gallery_rows: Sequence[int]
    ) -> tuple[RetrievalSet, np.ndarray]:
        """The queries ``query_rows`` against the gallery rows ``gallery_rows`` (both ascending): positives
        and ``query_in_gallery`` renumbered; queries left without a positive are dropped, counted under
        ``queries_without_positives`` (e.g. a validation cut short by ``limit_val_batches``).

        Returns the set and the ``(Q',)`` int64 rows of this set's queries it kept.
        """
        renumber = np.full(len(self.gallery), -1, dtype=np.int64)
        renumber[np.asarray(gallery_rows, np.int64)] = np.arange(len(gallery_rows))
        positives = [renumber[self.positives[q]] for q in query_rows]
        keep = [i for i, found in enumerate(positives) if (found >= 0).any()]
        rows = np.asarray(query_rows, np.int64)[np.asarray(keep, np.int64)]
        own = None
        if self.query_in_gallery is not None:
            own_rows = self.query_in_gallery[rows]
            own = np.where(own_rows >= 0, renumber[np.maximum(own_rows, 0)], -1)
        dropped = dict(self.dropped)
        lost = len(query_rows) - len(keep)
        if lost:
            dropped["queries_without_positives"] = dropped.get("queries_without_positives", 0) + lost
        result = RetrievalSet(
            name=self.name,
            queries=self.queries.select(rows.tolist()),
            gallery=self.gallery.select(list(gallery_rows)),
            positives=tuple(np.sort(positives[i][positives[i] >= 0]) for i in keep),
            query_in_gallery=own,
            dropped=dropped,
            train=self.train,
        )
        result.validate()
        return result, rows


def match_by(
    name: str,
    queries: ImageList,
    gallery: ImageList,
    key: Literal["item_id", "category"],
    *,
    query_in_gallery: np.ndarray | None = None,
    dropped: dict[str, int] | None = None,
    train: TrainingSet | None = None,
) -> RetrievalSet:
    """Build a validated set whose positives are the gallery rows sharing the query's ``key``; ``train``
    is passed through.

    Queries left without a positive (an item missing from the gallery, a class of one image when queries
    are drawn from the gallery) are dropped, counted under ``queries_without_positives`` and logged.
    """
    query_keys: Sequence[Hashable] = queries.item_ids if key == "item_id" else queries.categories
    gallery_keys: Sequence[Hashable] = gallery.item_ids if key == "item_id" else gallery.categories
    rows_of: dict[Hashable, list[int]] = {}
    for j, value in enumerate(gallery_keys):
        rows_of.setdefault(value, []).append(j)
    positives = []
    for i, value in enumerate(query_keys):
        found = np.asarray(rows_of.get(value, []), np.int64)
        if query_in_gallery is not None:
            found = found[found != query_in_gallery[i]]
        positives.append(found)
    dropped = dict(dropped or {})
    keep = [i for i, found in enumerate(positives) if len(found)]
    if len(keep) < len(queries):
        lost = [queries.item_ids[i] for i, found in enumerate(positives) if not len(found)]
        dropped["queries_without_positives"] = len(lost)
        log.warning(
            "%s: %d query(ies) without a positive in the gallery left out: %s",
            name,
            len(lost),
            list_examples(lost),
        )
    result = RetrievalSet(
        name=name,
        queries=queries.select(keep),
        gallery=gallery,
        positives=tuple(positives[i] for i in keep),
        query_in_gallery=None if query_in_gallery is None else query_in_gallery[np.asarray(keep, np.int64)],
        dropped=dropped,
        train=train,
    )
    result.validate()
    log.info("%s: %s", name, result.summary())
    return result


def label_by(
    name: str,
    images: ImageList,
    key: Literal["item_id", "category"],
    *,
    dropped: dict[str, int] | None = None,
) -> TrainingSet:
    """A validated training set whose labels are the images' ``key`` (numbered in sorted order).

    Images whose label has no other image are left out (they could only ever be negatives, and a
    label-balanced batch needs two images of each label), counted under ``single_image_labels`` and logged.
    """
    values = images.item_ids if key == "item_id" else images.categories
    names, labels, counts = np.unique(np.asarray(values, dtype=str), return_inverse=True, return_counts=True)
    dropped = dict(dropped or {})
    lone = counts[labels] < 2
    if lone.any():
        dropped["single_image_labels"] = int(lone.sum())
        log.warning(
            "%s: %d training image(s) whose %s has no other image left out: %s",
            name,
            int(lone.sum()),
            key,
            list_examples([str(values[i]) for i in np.flatnonzero(lone)]),
        )
    kept_names = names[counts >= 2]
    renumber = np.cumsum(counts >= 2) - 1
    kept = np.flatnonzero(~lone)
    result = TrainingSet(
        name=name,
        images=images.select(kept.tolist()),
        labels=renumber[labels[kept]].astype(np.int64),
        label_names=tuple(str(n) for n in kept_names),
        dropped=dropped,
    )
    result.validate()
    log.info("%s: %s", name, result.summary())
    return result


def check_images(
    paths: Sequence[Path],
    where: Sequence[str],
    source: Path,
    check: ImageCheck,
    policy: MissingImagePolicy,
) -> list[int]:
    """Indices of the rows whose image passes ``check`` ('none' | 'exists' | 'decode').

    ``where[i]`` says where row ``i`` was read (``"line 7"``, a JSON file name) for the error message.
    ``policy='fail'`` raises :class:`CatalogueError` naming ``source`` and the rows; ``'skip'`` logs them.
    """
    problems = [image_problem(path, check) for path in paths]
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    if bad and policy == "fail":
        details = [f"{where[i]}: {paths[i]} {problems[i]}" for i in bad]
        raise CatalogueError(
            f"{source}: {len(bad)} image(s) missing or unreadable: {list_examples(details, 3)}. "
            "Pass missing_images=skip to drop them (the count is logged)."
        )
    if bad:
        log.warning("%s: dropping %d row(s) with missing or unreadable images", source, len(bad))
    skipped = set(bad)
    return [i for i in range(len(paths)) if i not in skipped]
