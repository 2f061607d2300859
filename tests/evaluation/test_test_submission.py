"""The submission covers every test bundle: those without a photo get their section's popular products."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.evaluation.submission import read_pairs, validate_submission, write_test_submission
from fashion_retrieval.index.eligibility import catalogue_section_array
from tests.data.test_catalogue import PRODUCTS, write_dataset


def test_a_test_bundle_without_a_photo_still_gets_k_products(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_dataset(
        tmp_path / "data",
        test=["B_00000000000c,", "B_00000000000d,"],
        bundles=[
            "B_00000000000a,1,images/bundles/B_00000000000a.jpg",
            "B_00000000000b,2,images/bundles/B_00000000000b.jpg",
            "B_00000000000c,1,images/bundles/B_00000000000c.jpg",
            "B_00000000000d,1,images/bundles/B_00000000000d.jpg",  # no photo written
        ],
    )
    catalogue = load_catalogue(root, missing_images="skip")
    assert catalogue.searchable_test_bundle_ids == ["B_00000000000c"]
    sections = catalogue_section_array(PRODUCTS, catalogue.product_sections())
    path = tmp_path / "submission.csv"
    with caplog.at_level(logging.WARNING):
        written = write_test_submission(
            path, catalogue, PRODUCTS, ["B_00000000000c"], np.array([[3, 0]]), sections, 2
        )
    assert written == 2 and "1 test bundle(s) without a photo" in caplog.text
    validate_submission(
        path,
        catalogue.test_bundle_ids,
        PRODUCTS,
        k=2,
        product_section=catalogue.product_sections(),
        bundle_section=catalogue.bundle_sections(),
    )
    pairs = read_pairs(path, "submission")
    # Section 1: products 1 and 2 (one match each, catalogue order); product 3 is section 2's.
    assert pairs[pairs.bundle_asset_id == "B_00000000000d"].product_asset_id.tolist() == PRODUCTS[:2]
    assert pairs[pairs.bundle_asset_id == "B_00000000000c"].product_asset_id.tolist() == [
        PRODUCTS[3],
        PRODUCTS[0],
    ]
