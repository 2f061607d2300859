"""The reader's error cases: each names the file, the line and the field."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_retrieval.data.catalogue import CatalogueError, load_catalogue, resolve_image_path, split_bundles

PRODUCTS = ["I_000000000001", "I_000000000002", "I_000000000003", "I_000000000004"]
BUNDLES = [("B_00000000000a", 1), ("B_00000000000b", 2), ("B_00000000000c", 1)]


def write_dataset(root: Path, *, products=None, bundles=None, train=None, test=None, images=True) -> Path:
    products = products or [f"{p},images/products/{p}.jpg,TROUSERS" for p in PRODUCTS]
    bundles = bundles or [f"{b},{s},images/bundles/{b}.jpg" for b, s in BUNDLES]
    train = train or [
        "B_00000000000a,I_000000000001",
        "B_00000000000a,I_000000000002",
        "B_00000000000b,I_000000000003",
    ]
    test = test or ["B_00000000000c,"]
    files = {
        "product_dataset.csv": ["product_asset_id,product_image_url,product_description", *products],
        "bundles_dataset.csv": ["bundle_asset_id,bundle_id_section,bundle_image_url", *bundles],
        "bundles_product_match_train.csv": ["bundle_asset_id,product_asset_id", *train],
        "bundles_product_match_test.csv": ["bundle_asset_id,product_asset_id", *test],
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (root / name).write_text("\n".join(lines) + "\n")
    if images:
        for kind, ids in (("products", PRODUCTS), ("bundles", [b for b, _ in BUNDLES])):
            (root / "images" / kind).mkdir(parents=True, exist_ok=True)
            for asset_id in ids:
                Image.fromarray(np.full((8, 6, 3), 200, np.uint8)).save(
                    root / "images" / kind / f"{asset_id}.jpg"
                )
    return root


def test_valid_dataset_loads(tmp_path):
    catalogue = load_catalogue(write_dataset(tmp_path), image_check="decode")
    assert list(catalogue.products["product_asset_id"]) == PRODUCTS
    assert catalogue.test_bundle_ids == ["B_00000000000c"]
    assert catalogue.product_sections() == {"I_000000000001": 1, "I_000000000002": 1, "I_000000000003": 2}
    assert catalogue.products_of() == {
        "B_00000000000a": ["I_000000000001", "I_000000000002"],
        "B_00000000000b": ["I_000000000003"],
    }
    assert catalogue.bundles["bundle_id_section"].tolist() == [1, 2, 1]


def test_missing_column_is_named(tmp_path):
    root = write_dataset(tmp_path)
    (root / "product_dataset.csv").write_text(
        "product_asset_id,product_description\nI_000000000001,TROUSERS\n"
    )
    with pytest.raises(
        CatalogueError, match=r"product_dataset.csv: missing column\(s\) \['product_image_url'\]"
    ):
        load_catalogue(root)


def test_duplicate_ids_name_the_lines(tmp_path):
    products = [f"{p},images/products/{p}.jpg,SHIRT" for p in PRODUCTS] + [
        "I_000000000002,images/products/I_000000000002.jpg,SHIRT"
    ]
    with pytest.raises(
        CatalogueError,
        match=r"duplicate product_asset_id: I_000000000002 \(line 3\), I_000000000002 \(line 6\)",
    ):
        load_catalogue(write_dataset(tmp_path, products=products))


def test_match_naming_unknown_product_or_bundle(tmp_path):
    root = write_dataset(tmp_path / "a", train=["B_00000000000a,I_00000000dead"])
    with pytest.raises(
        CatalogueError,
        match=r"train.csv: product_asset_id not in product_dataset.csv: 'I_00000000dead' \(line 2\)",
    ):
        load_catalogue(root)
    root = write_dataset(tmp_path / "b", test=["B_0000000000zz,"])
    with pytest.raises(
        CatalogueError,
        match=r"test.csv: bundle_asset_id not in bundles_dataset.csv: 'B_0000000000zz' \(line 2\)",
    ):
        load_catalogue(root)


def test_sections_that_disagree(tmp_path):
    train = ["B_00000000000a,I_000000000001", "B_00000000000b,I_000000000001"]
    with pytest.raises(CatalogueError, match=r"I_000000000001: section 1 \(line 2\), section 2 \(line 3\)"):
        load_catalogue(write_dataset(tmp_path, train=train))


def test_non_integer_section(tmp_path):
    bundles = ["B_00000000000a,1,x.jpg", "B_00000000000b,two,y.jpg", "B_00000000000c,1,z.jpg"]
    with pytest.raises(CatalogueError, match=r"bundle_id_section must be an integer: line 3: 'two'"):
        load_catalogue(write_dataset(tmp_path, bundles=bundles))


def test_test_bundle_also_in_train(tmp_path):
    with pytest.raises(
        CatalogueError, match=r"bundles also in bundles_product_match_train.csv: B_00000000000a"
    ):
        load_catalogue(write_dataset(tmp_path, test=["B_00000000000a,"]))


def test_missing_images_fail_or_skip_with_count(tmp_path, caplog):
    root = write_dataset(tmp_path)
    (root / "images/products/I_000000000002.jpg").unlink()
    (root / "images/bundles/B_00000000000b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(
        CatalogueError, match=r"1 image\(s\) missing or unreadable: I_000000000002 .* missing"
    ):
        load_catalogue(root)
    (root / "images/products/I_000000000002.jpg").write_bytes(b"")
    with pytest.raises(CatalogueError, match=r"I_000000000002 .* unreadable"):
        load_catalogue(root, image_check="decode")
    (root / "images/products/I_000000000002.jpg").unlink()
    catalogue = load_catalogue(root, missing_images="skip", image_check="decode")
    assert catalogue.skipped == {"products": 1, "bundles": 1, "train_matches": 2, "test_bundles": 0}
    assert "I_000000000002" not in set(catalogue.products["product_asset_id"])
    assert "dropping 1 row(s)" in caplog.text


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(CatalogueError, match="dataset directory not found"):
        load_catalogue(tmp_path / "nowhere")
    root = write_dataset(tmp_path)
    (root / "bundles_product_match_test.csv").unlink()
    with pytest.raises(CatalogueError, match=r"bundles_product_match_test.csv: file not found"):
        load_catalogue(root)


def test_real_urls_map_to_the_images_layout(tmp_path):
    url = (
        "https://static.example.com/photos/2024/V/0/1/p/1234/567/800/2/1234567800_1_1_1.jpg?ts=1707133245123"
    )
    assert resolve_image_path(tmp_path, url, "products", "I_abc") == tmp_path / "images/products/I_abc.jpg"
    assert (
        resolve_image_path(tmp_path, "images/bundles/B_x.jpg", "bundles", "B_x")
        == tmp_path / "images/bundles/B_x.jpg"
    )


def test_split_is_deterministic_and_disjoint():
    ids = [f"B_{i:012x}" for i in range(100)]
    train, val = split_bundles(ids, 0.2, seed=3)
    assert (train, val) == split_bundles(list(reversed(ids)), 0.2, seed=3)
    assert len(val) == 20 and not set(train) & set(val) and len(train) + len(val) == 100


def test_articles_file_is_optional_and_gives_colour_variants(tmp_path):
    root = write_dataset(tmp_path)
    assert load_catalogue(root).articles is None and load_catalogue(root).article_variants() == {}
    (root / "product_articles.csv").write_text(
        "product_asset_id,article_id\n"
        "I_000000000001,A_1\nI_000000000002,A_1\nI_000000000003,A_1\nI_000000000004,A_2\n"
    )
    catalogue = load_catalogue(root)
    assert catalogue.articles == {p: a for p, a in zip(PRODUCTS, ["A_1", "A_1", "A_1", "A_2"])}
    assert catalogue.article_variants() == {
        "I_000000000001": ["I_000000000002", "I_000000000003"],
        "I_000000000002": ["I_000000000001", "I_000000000003"],
        "I_000000000003": ["I_000000000001", "I_000000000002"],
    }
    # A product dropped for its missing image leaves its article's other variants alone.
    (root / "images/products/I_000000000002.jpg").unlink()
    skipped = load_catalogue(root, missing_images="skip")
    assert skipped.article_variants()["I_000000000001"] == ["I_000000000003"]


def test_articles_file_naming_unknown_products(tmp_path):
    root = write_dataset(tmp_path)
    (root / "product_articles.csv").write_text(
        "product_asset_id,article_id\nI_000000000001,A_1\nI_00000000dead,A_1\n"
    )
    with pytest.raises(
        CatalogueError,
        match=r"product_articles.csv: product_asset_id not in product_dataset.csv: 'I_00000000dead' \(line 3",
    ):
        load_catalogue(root)
    (root / "product_articles.csv").write_text("product_asset_id,article_id\nI_000000000001,\n")
    with pytest.raises(CatalogueError, match=r"product_articles.csv: empty article_id on line\(s\) 2"):
        load_catalogue(root)
