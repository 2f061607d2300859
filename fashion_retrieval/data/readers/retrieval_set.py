"""The structure every dataset reader returns: queries, a gallery and each query's positives.

Readers differ only in how they parse their files and what makes two images a match; building the
positives, leaving out queries without any, checking images and logging what was dropped live here once.
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

    ``boxes``: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in pixels of the image, or ``None`` for whole images.
    Several rows may share an image (DeepFashion2 has several garments per photo); the box tells them apart.
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
            empty = np.flatnonzero(
                (self.boxes[:, 2] <= self.boxes[:, 0]) | (self.boxes[:, 3] <= self.boxes[:, 1])
            )
            if len(empty):
                raise ValueError(f"{side}: empty box(es) at row(s) {list_examples([str(i) for i in empty])}")


@dataclass(frozen=True, eq=False)
class RetrievalSet:
    """Queries, a gallery and the ground truth of every query.

    ``positives[i]``: sorted, unique int64 gallery indices relevant to query ``i``; never empty (readers
    leave out queries without positives and count them in ``dropped``).
    ``query_in_gallery``: ``(Q,)`` int64, the gallery index that is query ``i`` itself (-1: none), for sets
    whose queries are drawn from the gallery; a ranking must skip that entry. ``None``: disjoint sides.
    ``dropped``: rows left out, by reason (also logged when the set is built).
    """

    name: str
    queries: ImageList
    gallery: ImageList
    positives: tuple[np.ndarray, ...]
    query_in_gallery: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

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
        """Counts for logs: queries, gallery, positive pairs and each drop reason."""
        return {
            "queries": len(self.queries),
            "gallery": len(self.gallery),
            "positive_pairs": sum(len(found) for found in self.positives),
            **{f"dropped_{reason}": count for reason, count in self.dropped.items()},
        }


def match_by(
    name: str,
    queries: ImageList,
    gallery: ImageList,
    key: Literal["item_id", "category"],
    *,
    query_in_gallery: np.ndarray | None = None,
    dropped: dict[str, int] | None = None,
) -> RetrievalSet:
    """Build a validated set whose positives are the gallery rows sharing the query's ``key``.

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
