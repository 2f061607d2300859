"""Held-out split, attribute and composed queries: deterministic, and their truth is what the attributes
say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashion_retrieval.data.text_queries import (
    attribute_queries,
    composed_queries,
    heldout_mask,
    requested_colour,
)


def frame(rows: dict[str, tuple[str, str, str]]) -> pd.DataFrame:
    """Attributes indexed by product id from ``{id: (colour_group, pattern, category)}``."""
    return pd.DataFrame(
        [(p, category, group, group, pattern, "") for p, (group, pattern, category) in rows.items()],
        columns=["product_asset_id", "category", "colour", "colour_group", "pattern", "details"],
    ).set_index("product_asset_id")


def test_heldout_mask_holds_out_whole_articles_deterministically() -> None:
    products = [f"I_{i:012x}" for i in range(4000)]
    articles = {p: f"A_{i // 2:012x}" for i, p in enumerate(products)}  # two variants per article
    mask = heldout_mask(products, articles, 0.2, seed=0)
    assert mask.dtype == bool and 0.17 < mask.mean() < 0.23
    assert (mask[0::2] == mask[1::2]).all()  # both variants of an article on the same side
    # A pure function of (article, seed): order and catalogue size do not matter, the seed does.
    np.testing.assert_array_equal(heldout_mask(products[::-1], articles, 0.2, 0)[::-1], mask)
    np.testing.assert_array_equal(heldout_mask(products[:100], articles, 0.2, 0), mask[:100])
    assert (heldout_mask(products, articles, 0.2, seed=1) != mask).any()
    assert heldout_mask(products, None, 1.0, 0).all() and not heldout_mask(products, None, 0.0, 0).any()
    with pytest.raises(ValueError, match="heldout fraction"):
        heldout_mask(products, None, 1.5)


ROWS = {
    "p0": ("red", "striped", "shirt"),
    "p1": ("red", "striped", "shirt"),
    "p2": ("red", "plain", "shirt"),
    "p3": ("navy", "striped", "shirt"),
    "p4": ("navy", "plain", "trousers"),
    "p5": ("red", "plain", "trousers"),
}


def test_attribute_queries_truth_is_every_matching_product() -> None:
    gallery = ["p5", "p4", "p3", "p2", "p1", "p0"]
    queries = attribute_queries(frame(ROWS), gallery, num_queries=10, seed=0)
    assert sorted(queries.texts) == sorted(
        [
            "red striped shirt",
            "red plain shirt",
            "navy striped shirt",
            "navy plain trousers",
            "red plain trousers",
        ]
    )
    truth = dict(zip(queries.texts, queries.truth))
    assert sorted(truth["red striped shirt"]) == [4, 5]  # gallery rows of p1 and p0
    assert truth["red plain trousers"] == [0] and queries.image_rows is None
    few = attribute_queries(frame(ROWS), gallery, num_queries=2, seed=3)
    assert len(few) == 2 and few == attribute_queries(frame(ROWS), gallery, num_queries=2, seed=3)
    assert {tuple(attribute_queries(frame(ROWS), gallery, 2, s).texts) for s in range(10)} != {
        tuple(few.texts)
    }


def test_composed_queries_ask_for_an_unambiguous_variant() -> None:
    rows = {
        "a0": ("red", "plain", "shirt"),
        "a1": ("navy", "plain", "shirt"),
        "a2": ("green", "plain", "shirt"),
        "a3": ("green", "plain", "shirt"),  # two green variants: "in green" is ambiguous in article A
        "b0": ("black", "plain", "coat"),
        "c0": ("white", "plain", "bag"),
        "c1": ("white", "plain", "bag"),  # one colour group: no composed query
    }
    articles = {"a0": "A", "a1": "A", "a2": "A", "a3": "A", "b0": "B", "c0": "C", "c1": "C"}
    gallery = list(rows)
    queries = composed_queries(frame(rows), articles, gallery, num_queries=100, seed=0)
    pairs = {
        (gallery[s], queries.texts[q], gallery[queries.truth[q][0]]) for q, s in enumerate(queries.image_rows)
    }
    assert pairs == {
        ("a0", "in navy", "a1"),
        ("a1", "in red", "a0"),
        ("a2", "in red", "a0"),
        ("a2", "in navy", "a1"),
        ("a3", "in red", "a0"),
        ("a3", "in navy", "a1"),
    }
    assert all(len(t) == 1 for t in queries.truth)
    assert len(composed_queries(frame(rows), articles, gallery, num_queries=3, seed=1)) == 3
    assert [requested_colour(t) for t in queries.texts[:2]] == [
        t.removeprefix("in ") for t in queries.texts[:2]
    ]
    with pytest.raises(ValueError, match="not a composed query text: 'red'"):
        requested_colour("red")
