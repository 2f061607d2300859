"""Garment queries: one query per ground-truth garment of a bundle photo (its box in
``bundle_garment_boxes.csv``, synthetic data), with that garment's product as its only positive.

A garment is ``(bundle id, product id, box)``. Detected boxes come in through a :class:`GarmentMatcher`
built above this package (:class:`fashion_retrieval.detection.garment_matching.DetectedGarments`), so the
data layer never runs a detector.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from fashion_retrieval.data.boxes import Box
from fashion_retrieval.data.catalogue import Catalogue, read_garment_boxes
from fashion_retrieval.data.datasets import TrainingBundle

log = logging.getLogger(__name__)

Garment = tuple[str, str, Box]
"""``(bundle id, product id, box)``: one garment of a bundle photo and the product it is."""


class GarmentMatcher(Protocol):
    """More garments for training: e.g. a detector's boxes that match one of ``garments``."""

    def __call__(self, garments: Sequence[Garment], photos: Mapping[str, str]) -> list[Garment]:
        """``garments``: the ground-truth garments; ``photos``: bundle id -> photo file. Returns new
        garments (boxes of the same bundles, each with the product of the ground-truth garment it is)."""
        ...


def read_box_table(data_dir: str | Path) -> dict[tuple[str, str], tuple[Box, float]]:
    """``(bundle id, product id) -> (box, visible fraction)`` from ``bundle_garment_boxes.csv``."""
    frame = read_garment_boxes(data_dir)
    return {
        (row.bundle_asset_id, row.product_asset_id): (
            (float(row.x1), float(row.y1), float(row.x2), float(row.y2)),
            float(row.visible_fraction),
        )
        for row in frame.itertuples(index=False)
    }


def visible_garments(
    catalogue: Catalogue,
    boxes: Mapping[tuple[str, str], tuple[Box, float]],
    bundle_ids: Sequence[str],
    min_visibility: float,
) -> list[Garment]:
    """Every listed product of ``bundle_ids`` (training matches, file order) with a box at least
    ``min_visibility`` visible; the products left out are counted in the log."""
    garments, missing, hidden = [], 0, 0
    for bundle, products in catalogue.products_of(bundle_ids).items():
        for product in products:
            found = boxes.get((bundle, product))
            if found is None:
                missing += 1
            elif found[1] < min_visibility:
                hidden += 1
            else:
                garments.append((bundle, product, found[0]))
    if missing or hidden:
        log.info(
            "garment queries: %d of %d pairs kept (%d without a box, %d less than %.0f%% visible)",
            len(garments),
            len(garments) + missing + hidden,
            missing,
            hidden,
            100 * min_visibility,
        )
    return garments


def garment_items(
    catalogue: Catalogue, bundles: Sequence[TrainingBundle], garments: Sequence[Garment]
) -> list[TrainingBundle]:
    """One training item per garment of ``bundles``: its box as the query, its product as the positive.
    Labels are renumbered (an item is a garment, not a bundle)."""
    bundle_ids = catalogue.bundle_ids
    product_label = catalogue.product_index()
    by_id = {bundle_ids[b.bundle_label]: b for b in bundles}
    items = []
    for bundle, product, box in garments:
        source = by_id[bundle]
        position = source.product_labels.index(product_label[product])
        items.append(
            TrainingBundle(
                bundle_path=source.bundle_path,
                product_paths=(source.product_paths[position],),
                bundle_label=len(items),
                product_labels=(source.product_labels[position],),
                section=source.section,
                excluded_labels=source.excluded_labels,
                query_box=box,
            )
        )
    return items
