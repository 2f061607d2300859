"""Per-garment retrieval: crops flattened by bundle, label -> category masks, slots shared by crops."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fashion_retrieval.detection.types import Detection
from fashion_retrieval.index.eligibility import UNKNOWN_SECTION
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.rerank.chain import RerankChain
from fashion_retrieval.rerank.steps import CategoryGate
from fashion_retrieval.search.garments import (
    GarmentQueries,
    SlotSettings,
    category_codes,
    fill_free_slots,
    label_category_mask,
    rank_bundles,
    rank_bundles_sourced,
    unmapped_categories,
)


def test_crops_are_flattened_by_bundle_in_score_order() -> None:
    detections = [
        [Detection((0, 0, 10, 10), 0.3, "top"), Detection((1.4, 2.6, 8, 9), 0.9, "bottom")],
        [Detection((0, 0, 5, 5), 1.0, "whole")],
    ]
    queries = GarmentQueries.from_detections(["a.jpg", "b.jpg"], detections)
    assert queries.bundle_rows.tolist() == [0, 0, 1]
    assert queries.labels == ["bottom", "top", "whole"]
    assert queries.boxes[0] == (1.4, 2.6, 8, 9)
    with pytest.raises(ValueError, match=r"b\.jpg: no region"):
        GarmentQueries.from_detections(["a.jpg", "b.jpg"], [detections[0], []])
    with_whole = GarmentQueries.from_detections(["a.jpg", "b.jpg"], [detections[0], []], whole_image=True)
    assert with_whole.bundle_rows.tolist() == [0, 0, 0, 1]
    assert with_whole.labels == ["bottom", "top", "whole", "whole"]
    assert with_whole.boxes[2] is None and with_whole.scores[2] == 0.0


def test_label_mask_restricts_known_labels_only(caplog: pytest.LogCaptureFixture) -> None:
    codes, code_of = category_codes(["SHOES", "COAT", "SHOES", "HAT"])
    assert codes.tolist() == [0, 1, 0, 2]
    label_categories = {
        "footwear": ["SHOES", "BOOTS"],
        "outerwear": ["COAT"],
        "headwear": ["BERET"],
        "whole": [],
    }
    with caplog.at_level(logging.WARNING):
        mask = label_category_mask(["footwear", "whole", "mystery", "headwear"], label_categories, code_of)
    # HAT is in no label's list: every crop may receive it.
    assert mask.tolist() == [[True, False, True], [True, True, True], [True, True, True], [True, True, True]]
    assert "'headwear'" in caplog.text and "none of which" in caplog.text
    assert unmapped_categories(label_categories, code_of) == ["HAT"]


def test_unmapped_categories_stay_reachable_under_the_mask_and_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A map written for another taxonomy: JUMPSUIT (items 2, 3) is in no label's list.
    catalogue = unit(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [0, 0, 1]]))
    index = EmbeddingIndex(catalogue, [f"I_{i:012x}" for i in range(5)])
    categories = ["SHOES", "SHOES", "JUMPSUIT", "JUMPSUIT", "COAT"]
    queries = GarmentQueries.from_detections(["a.jpg"], [[Detection((0, 0, 4, 4), 0.9, "outerwear")]])
    crops = unit(np.array([[0, 1, 0.2]]))  # looks like the jumpsuit, detected as outerwear
    label_categories = {"outerwear": ["COAT"], "footwear": ["SHOES"]}
    with caplog.at_level(logging.WARNING, logger="fashion_retrieval.search.garments"):
        ranked = rank_bundles(
            crops,
            queries,
            1,
            np.array([1]),
            index,
            np.ones(5, np.int64),
            categories,
            label_categories,
            SlotSettings(k=3),
        )
    assert ranked.tolist() == [[2, 3, 4]]  # the jumpsuits first, the coat next; never the shoes
    assert "1 of 3 categories (2 of 5 products) are in no detector label's list" in caplog.text
    assert "JUMPSUIT (2)" in caplog.text


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_each_crop_finds_its_garment_and_the_bundle_gets_both() -> None:
    # Catalogue: a shoe (0), a coat (1), a coat of another section (2), and near-duplicates of each.
    catalogue = unit(
        np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0.01, 0], [0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0]])
    )
    index = EmbeddingIndex(catalogue, [f"I_{i:012x}" for i in range(5)])
    categories = ["SHOES", "COAT", "COAT", "SHOES", "COAT"]
    sections = np.array([1, 1, 2, 1, UNKNOWN_SECTION])
    detections = [[Detection((0, 0, 4, 4), 0.9, "footwear"), Detection((0, 4, 4, 8), 0.8, "outerwear")]]
    queries = GarmentQueries.from_detections(["a.jpg"], detections)
    # Both crops look like a coat: only the category mask keeps the shoe crop on shoes.
    crops = unit(np.array([[0.2, 1, 0, 0], [0, 1, 0, 0]]))
    label_categories = {"footwear": ["SHOES"], "outerwear": ["COAT"]}
    settings = SlotSettings(k=4, strategy="round_robin")
    ranked = rank_bundles(
        crops, queries, 1, np.array([1]), index, sections, categories, label_categories, settings
    )
    assert ranked.tolist() == [[3, 1, 0, 4]]  # shoe crop: 3 then 0; coat crop: 1 then 4; never 2 (section)
    _, _, sources = rank_bundles_sourced(
        crops, queries, 1, np.array([1]), index, sections, categories, label_categories, settings
    )
    assert sources.tolist() == [[0, 1, 0, 1]]  # the crop whose list holds each product: shoe 0, coat 1
    twice = GarmentQueries.from_detections(["a.jpg", "b.jpg"], detections * 2)
    _, _, sources = rank_bundles_sourced(
        np.concatenate([crops, crops]),
        twice,
        2,
        np.array([1, 1]),
        index,
        sections,
        categories,
        label_categories,
        settings,
    )
    assert sources.tolist() == [[0, 1, 0, 1], [2, 3, 2, 3]]  # rows of all the crops, not of the bundle's
    unmasked = SlotSettings(k=4, strategy="round_robin", category_mask=False)
    ranked = rank_bundles(
        crops, queries, 1, np.array([1]), index, sections, categories, label_categories, unmasked
    )
    assert categories[ranked[0, 0]] == "COAT"  # without the mask the shoe crop's first pick is a coat
    args = (crops, queries, 1, np.array([1]), index, sections, categories, label_categories, unmasked)
    assert rank_bundles(*args, RerankChain()).tolist() == ranked.tolist()  # the empty chain changes nothing
    gated = rank_bundles(*args, RerankChain([CategoryGate()], depth=5))
    assert categories[gated[0, 0]] == "SHOES"  # the soft gate demotes the coat below the shoes again


def test_bundles_without_crops_stay_empty_and_sizes_are_checked() -> None:
    index = EmbeddingIndex(unit(np.eye(3)), [f"I_{i:012x}" for i in range(3)])
    queries = GarmentQueries.from_detections(["b.jpg"], [[Detection((0, 0, 2, 2), 1.0, "whole")]])
    queries = GarmentQueries(
        queries.bundle_rows + 1, queries.paths, queries.boxes, queries.labels, queries.scores
    )
    settings = SlotSettings(k=2)

    def rank(embeddings: np.ndarray) -> np.ndarray:
        sections, categories = np.ones(3, np.int64), ["A", "B", "C"]
        return rank_bundles(
            embeddings, queries, 2, np.array([1, 1]), index, sections, categories, {}, settings
        )

    ranked = rank(unit(np.eye(3)[:1]))
    assert ranked[0].tolist() == [-1, -1]
    assert ranked[1, 0] == 0 and ranked[1, 1] in (1, 2)
    with pytest.raises(ValueError, match="2 embeddings for 1 crops"):
        rank(unit(np.eye(3)[:2]))


def test_free_slots_are_filled_from_other_categories_when_the_mask_leaves_too_few() -> None:
    catalogue = unit(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1], [0, 0, 1]]))
    index = EmbeddingIndex(catalogue, [f"I_{i:012x}" for i in range(5)])
    categories = ["HAT", "COAT", "COAT", "COAT", "COAT"]  # one hat only
    queries = GarmentQueries.from_detections(["a.jpg"], [[Detection((0, 0, 4, 4), 0.9, "headwear")]])
    crops = unit(np.array([[1.0, 0.05, 0]]))
    settings = SlotSettings(k=3)
    ranked = rank_bundles(
        crops,
        queries,
        1,
        np.array([1]),
        index,
        np.ones(5, np.int64),
        categories,
        {"headwear": ["HAT"]},
        settings,
    )
    assert ranked.tolist() == [[0, 1, 2]]  # the hat, then the nearest products of any category
    assert fill_free_slots(np.array([4, -1, -1]), np.array([4, -1, 2, 3])).tolist() == [4, 2, 3]
