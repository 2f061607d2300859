"""The reader's error cases: each names the file, the line and the field."""

import re
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


def test_the_catalogue_answers_query_sets_and_section_arrays(tmp_path):
    root = write_dataset(tmp_path)
    catalogue = load_catalogue(root)
    a, b, c = (bundle for bundle, _ in BUNDLES)
    assert catalogue.product_ids == PRODUCTS and catalogue.product_categories == ["TROUSERS"] * 4
    assert catalogue.product_paths == [str(root / "images/products" / f"{p}.jpg") for p in PRODUCTS]
    assert catalogue.bundle_ids == [a, b, c]
    assert catalogue.bundle_paths() == {x: str(root / "images/bundles" / f"{x}.jpg") for x in (a, b, c)}
    # Sections come from training matches only; a bundle left out teaches nothing (validation's own).
    sections = catalogue.section_array()
    assert sections.dtype == np.int64 and sections.tolist() == [1, 1, 2, -1]
    assert catalogue.section_array(exclude=[a]).tolist() == [-1, -1, 2, -1]
    queries = catalogue.bundle_queries([b, a], with_truth=True)
    assert queries.bundle_ids == [b, a] and queries.sections == [2, 1] and queries.boxes is None
    assert queries.truth == [[2], [0, 1]]
    assert queries.image_paths == [str(root / "images/bundles" / f"{x}.jpg") for x in (b, a)]
    assert catalogue.bundle_queries([c], with_truth=False).truth is None
    boxes = [(1.0, 2.0, 3.0, 4.0), (0.0, 0.0, 5.0, 5.0)]
    garments = catalogue.garment_queries([(a, PRODUCTS[1], boxes[0]), (b, PRODUCTS[2], boxes[1])])
    assert garments.bundle_ids == [a, b] and garments.sections == [1, 2] and garments.truth == [[1], [2]]
    assert garments.boxes == boxes
    assert garments.image_paths == [str(root / "images/bundles" / f"{x}.jpg") for x in (a, b)]


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
    with pytest.raises(
        CatalogueError, match=r"I_000000000001: section 1 \(line\(s\) 2\), section 2 \(line\(s\) 3\)"
    ):
        load_catalogue(write_dataset(tmp_path, train=train))


def test_section_conflict_lists_every_section_even_after_many_lines_of_one(tmp_path):
    # Five section-1 bundles list the product before the one section-2 bundle does.
    ones = [f"B_00000000001{i}" for i in range(5)]
    bundles = [f"{b},1,images/bundles/{b}.jpg" for b in ones]
    bundles += ["B_00000000000b,2,images/bundles/B_00000000000b.jpg", "B_00000000000c,1,x.jpg"]
    train = [f"{b},I_000000000001" for b in ones] + ["B_00000000000b,I_000000000001"]
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(write_dataset(tmp_path, bundles=bundles, train=train))
    message = str(caught.value)
    assert "section 1 (line(s) 2, 3, 4 (and 2 more))" in message and "section 2 (line(s) 7)" in message


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


def test_skipped_photos_keep_test_bundles_and_sections(tmp_path, caplog):
    # B_...b (training, section 2) and B_...c (test) lose their photos.
    root = write_dataset(tmp_path)
    (root / "images/bundles/B_00000000000b.jpg").unlink()
    (root / "images/bundles/B_00000000000c.jpg").unlink()
    catalogue = load_catalogue(root, missing_images="skip")
    assert catalogue.skipped["test_bundles"] == 1 and catalogue.train_bundle_ids == ["B_00000000000a"]
    assert catalogue.test_bundle_ids == ["B_00000000000c"] and catalogue.searchable_test_bundle_ids == []
    assert catalogue.imageless_bundles == {"B_00000000000b": 2, "B_00000000000c": 1}
    assert catalogue.bundle_sections()["B_00000000000c"] == 1
    # The dropped training bundle still tells its product's section and popularity.
    assert catalogue.product_sections()["I_000000000003"] == 2
    assert catalogue.product_sections(exclude=["B_00000000000b"]) == {
        "I_000000000001": 1,
        "I_000000000002": 1,
    }
    assert catalogue.product_match_counts().tolist() == [1, 1, 1, 0]
    assert "1 test bundle(s) without a photo stay in the submission" in caplog.text


def test_empty_csv_is_named(tmp_path):
    root = write_dataset(tmp_path)
    (root / "bundles_dataset.csv").write_bytes(b"")
    with pytest.raises(CatalogueError, match=r"bundles_dataset.csv: the file is empty .*bundle_asset_id"):
        load_catalogue(root)


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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://static.zara.net/assets/public/7e2f/4e4d/d6ff4bf48c4e/f0402835a8e3/08805707800-p/"
            "08805707800-p.jpg?ts=1724840991537&w=750",
            ("08805707800", 1724840991537),
        ),
        ("https://static.zara.net/assets/public/a/b/04341728814-015-p/x.jpg?w=750", (None, None)),  # folder
        # Hex folders with 11-digit runs are no codes; the file name's code is.
        (
            "https://static.zara.net/assets/public/12345678901a/0a98765432109/04341728814-p.jpg",
            ("04341728814", None),
        ),
        ("https://static.zara.net/assets/public/12345678901a/b2/photo-e1.jpg", (None, None)),
        # A 14-digit file name is the 11-digit code followed by 3 digits.
        ("https://static.zara.net/assets/public/a/b/04341728814001-e1.jpg?ts=17", ("04341728814", 17)),
        ("https://example.com/a/123456789012-p.jpg", (None, None)),  # 12 digits in the name: no code
        ("https://example.com/photo.jpg?ts=1700000000000", (None, 1700000000000)),
        ("https://example.com/123456789012/photo.jpg?ts=soon", (None, None)),  # 12 digits: no code
        ("images/products/I_01234567890a.jpg", (None, None)),  # local paths carry no metadata
        ("", (None, None)),
    ],
)
def test_parse_image_url(url, expected):
    from fashion_retrieval.data.catalogue import parse_image_url

    assert parse_image_url(url) == expected


def test_catalogue_exposes_url_metadata(tmp_path, caplog):
    url = "https://static.zara.net/assets/public/a/b/c/d/{code}-p/{code}-p.jpg?ts={ts}&w=750"
    products = [
        f"{PRODUCTS[0]},{url.format(code='12345678001', ts=1700000000000)},TROUSERS",
        f"{PRODUCTS[1]},{url.format(code='12345678002', ts=1700086400000)},TROUSERS",
        f"{PRODUCTS[2]},images/products/{PRODUCTS[2]}.jpg,TROUSERS",
        f"{PRODUCTS[3]},https://example.com/{PRODUCTS[3]}.jpg,TROUSERS",
    ]
    with caplog.at_level("INFO", logger="fashion_retrieval.data.catalogue"):
        catalogue = load_catalogue(write_dataset(tmp_path, products=products))
    assert catalogue.product_codes() == ["12345678001", "12345678002", None, None]
    np.testing.assert_array_equal(catalogue.product_timestamps(), [1.7e12, 1700086400000.0, np.nan, np.nan])
    assert catalogue.bundle_codes(["B_00000000000b"]) == [None]
    assert np.isnan(catalogue.bundle_timestamps()).all()
    assert "2 of 4 row(s) without a ts= timestamp and 2 without an 11-digit article code" in caplog.text
    assert "3 of 3 row(s) without a ts= timestamp" in caplog.text


@pytest.mark.parametrize(
    ("kind", "bad_id"),
    [
        ("products", "../bundles/B_00000000000a"),
        ("products", "/abs/x"),
        ("bundles", ".hidden"),
        ("bundles", "a\\b"),
    ],
)
def test_an_id_that_is_no_safe_file_name_is_refused_with_file_line_and_field(tmp_path, kind, bad_id):
    """Ids become image file names: one that would lead outside ``images/{kind}/`` (a bundle photo used as
    a packshot, a file anywhere on disk) is an error naming the file, the line and the field."""
    url = "https://static.zara.net/assets/x/01234567890-p/01234567890-p.jpg?ts=1&w=750"
    if kind == "products":
        rows = {
            "products": [f"{p},images/products/{p}.jpg,SHIRT" for p in PRODUCTS] + [f"{bad_id},{url},SHIRT"]
        }
        where = "product_dataset.csv: field product_asset_id: not a valid id: line 6: "
    else:
        rows = {"bundles": [f"{b},{s},images/bundles/{b}.jpg" for b, s in BUNDLES] + [f"{bad_id},1,{url}"]}
        where = "bundles_dataset.csv: field bundle_asset_id: not a valid id: line 5: "
    with pytest.raises(CatalogueError, match=re.escape(where + repr(bad_id))):
        load_catalogue(write_dataset(tmp_path, **rows))


def test_an_image_path_from_an_id_stays_in_its_folder(tmp_path):
    url = "https://static.zara.net/x.jpg"
    assert resolve_image_path(tmp_path, url, "products", "I_abc") == tmp_path / "images/products/I_abc.jpg"
    for bad_id in ("../bundles/B_00000000000a", "/abs/x", "../../../../x"):
        with pytest.raises(ValueError, match="leads outside"):
            resolve_image_path(tmp_path, url, "products", bad_id)
