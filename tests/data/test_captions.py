"""product_captions.csv: validation errors name file, line and field; products fall back to their
description."""

import logging
from pathlib import Path

import pytest
from test_catalogue import PRODUCTS, write_dataset

from fashion_retrieval.data.captions import CAPTIONS_FILE, load_captions, product_texts
from fashion_retrieval.data.catalogue import CatalogueError, load_catalogue


def write_captions(root: Path, lines: list[str], header: str = "product_asset_id,caption") -> None:
    (root / CAPTIONS_FILE).write_text("\n".join([header, *lines]) + "\n")


def test_several_captions_per_product_in_file_order(tmp_path):
    write_captions(
        tmp_path,
        [
            f"{PRODUCTS[0]},navy slim trousers",
            f"{PRODUCTS[1]},a white shirt",
            f'{PRODUCTS[0]},"trousers, navy, slim fit"',
        ],
    )
    captions = load_captions(tmp_path, PRODUCTS[:2])
    assert captions == {
        PRODUCTS[0]: ["navy slim trousers", "trousers, navy, slim fit"],
        PRODUCTS[1]: ["a white shirt"],
    }


def test_absent_file_is_none(tmp_path):
    assert load_captions(tmp_path, PRODUCTS) is None


def test_unknown_product_is_named_with_its_line(tmp_path):
    write_captions(tmp_path, [f"{PRODUCTS[0]},navy trousers", "I_00000000dead,red shirt"])
    with pytest.raises(
        CatalogueError,
        match=r"product_captions.csv: field product_asset_id: not in product_dataset.csv: "
        r"'I_00000000dead' \(line 3\)",
    ):
        load_captions(tmp_path, PRODUCTS)


def test_empty_caption_is_named_with_its_line(tmp_path):
    write_captions(tmp_path, [f"{PRODUCTS[0]},navy trousers", f"{PRODUCTS[1]},  "])
    with pytest.raises(CatalogueError, match=r"product_captions.csv: empty caption on line\(s\) 3"):
        load_captions(tmp_path, PRODUCTS)


def test_missing_column_is_named(tmp_path):
    write_captions(tmp_path, [f"{PRODUCTS[0]},navy trousers"], header="product_asset_id,text")
    with pytest.raises(CatalogueError, match=r"product_captions.csv: missing column\(s\) \['caption'\]"):
        load_captions(tmp_path, PRODUCTS)


def test_products_without_captions_are_counted_in_the_log(tmp_path, caplog):
    write_captions(tmp_path, [f"{PRODUCTS[0]},navy trousers"])
    with caplog.at_level(logging.WARNING, logger="fashion_retrieval.data.captions"):
        captions = load_captions(tmp_path, PRODUCTS)
    assert captions == {PRODUCTS[0]: ["navy trousers"]}
    assert f"3 of 4 product(s) have no caption: {', '.join(PRODUCTS[1:])}" in caplog.text


def test_product_texts_are_captions_else_the_description(tmp_path):
    products = [
        f"{PRODUCTS[0]},images/products/{PRODUCTS[0]}.jpg,TROUSERS",
        f"{PRODUCTS[1]},images/products/{PRODUCTS[1]}.jpg,T-SHIRT",
        f"{PRODUCTS[2]},images/products/{PRODUCTS[2]}.jpg,",
        f"{PRODUCTS[3]},images/products/{PRODUCTS[3]}.jpg,SHIRT",
    ]
    root = write_dataset(tmp_path, products=products)
    catalogue = load_catalogue(root)
    # The real data: no captions file, the category is the text; a product with no text at all is left out.
    assert product_texts(catalogue) == {
        PRODUCTS[0]: ["trousers"],
        PRODUCTS[1]: ["t-shirt"],
        PRODUCTS[3]: ["shirt"],
    }
    write_captions(root, [f"{PRODUCTS[0]},navy trousers", f"{PRODUCTS[0]},slim navy trousers"])
    texts = product_texts(catalogue)
    assert texts[PRODUCTS[0]] == ["navy trousers", "slim navy trousers"]
    assert texts[PRODUCTS[1]] == ["t-shirt"] and PRODUCTS[2] not in texts
