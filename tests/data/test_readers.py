"""Dataset readers on tiny fixtures written in each format: the mapping, the drops, and the error messages."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from reader_data import (
    CSV_ROWS,
    DF2_IMAGES,
    INSHOP_ROWS,
    item,
    write_clothing,
    write_csv,
    write_deepfashion2,
    write_deepfashion2_splits,
    write_image,
    write_inshop,
    write_inshop_training,
)

from fashion_retrieval.data.catalogue import CatalogueError
from fashion_retrieval.data.readers import (
    ImageList,
    RetrievalSet,
    label_by,
    load_clothing_small,
    load_deepfashion2,
    load_deepfashion_inshop,
    load_generic_csv,
)


def positives_as_ids(result: RetrievalSet) -> dict[str, list[str]]:
    return {
        str(q): [str(result.gallery.paths[j]) for j in found]
        for q, found in zip(result.queries.paths, result.positives)
    }


# --- RetrievalSet -------------------------------------------------------------------------------------


def test_validate_rejects_inconsistent_sets():
    side = ImageList(paths=(Path("a.jpg"), Path("b.jpg")), item_ids=("1", "2"), categories=("x", "x"))
    good = RetrievalSet("t", side, side, (np.array([1]), np.array([0])), query_in_gallery=np.array([0, 1]))
    good.validate()
    with pytest.raises(ValueError, match="its own positive"):
        RetrievalSet(
            "t", side, side, (np.array([0]), np.array([0])), query_in_gallery=np.array([0, 1])
        ).validate()
    with pytest.raises(ValueError, match="out of"):
        RetrievalSet("t", side, side, (np.array([2]), np.array([0]))).validate()
    with pytest.raises(ValueError, match="no positive"):
        RetrievalSet("t", side, side, (np.array([], np.int64), np.array([0]))).validate()
    with pytest.raises(ValueError, match="boxes of shape"):
        RetrievalSet(
            "t",
            ImageList(side.paths, side.item_ids, side.categories, np.zeros((1, 4), np.float32)),
            side,
            (np.array([1]), np.array([0])),
        ).validate()


# --- DeepFashion In-shop ------------------------------------------------------------------------------


def test_inshop_maps_items_categories_and_boxes(tmp_path, caplog):
    root = write_inshop(tmp_path)
    with caplog.at_level(logging.INFO):
        result = load_deepfashion_inshop(root, image_check="decode")
    assert result.queries.item_ids == ("id_00000002", "id_00000080")
    assert result.queries.categories == ("WOMEN/Dresses", "MEN/Denim")
    assert len(result.gallery) == 3
    assert [found.tolist() for found in result.positives] == [[0, 1], [2]]
    assert result.dropped == {"queries_without_positives": 1}
    assert "id_00000099" in caplog.text
    # The one train row is an item with a single photo: no positive for it, so no training image.
    assert len(result.train.images) == 0 and result.train.dropped == {"single_image_labels": 1}
    np.testing.assert_array_equal(result.queries.boxes[0], [10, 20, 110, 220])
    np.testing.assert_array_equal(result.gallery.boxes[2], [10, 20, 114, 220])
    assert load_deepfashion_inshop(root, use_boxes=False).gallery.boxes is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: [*rows[:2], (rows[2][0], rows[2][1], "test"), *rows[3:]],
            r"line 5: field evaluation_status",
        ),
        (
            lambda rows: [*rows[:1], ("img/WOMEN/x.jpg", "id_1", "gallery"), *rows[2:]],
            r"line 4: field image_name",
        ),
    ],
)
def test_inshop_bad_rows_name_line_and_field(tmp_path, edit, message):
    root = write_inshop(tmp_path, edit(list(INSHOP_ROWS)), boxes=False)
    with pytest.raises(CatalogueError, match=message):
        load_deepfashion_inshop(root, use_boxes=False)


def test_inshop_malformed_files(tmp_path):
    root = write_inshop(tmp_path / "count", count=99)
    with pytest.raises(CatalogueError, match="announces 99 rows"):
        load_deepfashion_inshop(root)
    root = write_inshop(tmp_path / "header")
    path = root / "Eval" / "list_eval_partition.txt"
    path.write_text(path.read_text().replace("evaluation_status", "status"))
    with pytest.raises(CatalogueError, match=r"list_eval_partition.txt: line 2: expected columns"):
        load_deepfashion_inshop(root)
    root = write_inshop(tmp_path / "fields")
    path = root / "Eval" / "list_eval_partition.txt"
    path.write_text(path.read_text().replace("id_00000080   query", "query"))
    with pytest.raises(CatalogueError, match=r"line 6: expected 3 fields"):
        load_deepfashion_inshop(root)
    root = write_inshop(tmp_path / "box")
    box_path = root / "Anno" / "list_bbox_inshop.txt"
    box_path.write_text(box_path.read_text().replace("1 1 10 20 110", "1 1 10 20 abc"))
    with pytest.raises(CatalogueError, match=r"list_bbox_inshop.txt: line 3: fields x_1..y_2"):
        load_deepfashion_inshop(root)


def test_inshop_missing_images(tmp_path, caplog):
    root = write_inshop(tmp_path)
    (root / INSHOP_ROWS[1][0]).unlink()
    load_deepfashion_inshop(root)  # image_check defaults to none: no file is touched
    with pytest.raises(CatalogueError, match=r"list_eval_partition.txt: 1 image\(s\) missing.*line 4"):
        load_deepfashion_inshop(root, image_check="exists")
    with caplog.at_level(logging.WARNING):
        result = load_deepfashion_inshop(root, image_check="exists", missing_images="skip")
    assert result.dropped["gallery_missing_images"] == 1 and len(result.gallery) == 2
    assert "dropping 1 row(s)" in caplog.text


# --- DeepFashion2 -------------------------------------------------------------------------------------


def test_deepfashion2_pairs_by_pair_style_and_category(tmp_path, caplog):
    root = write_deepfashion2(tmp_path)
    with caplog.at_level(logging.INFO):
        result = load_deepfashion2(root, image_check="exists")
    assert result.queries.item_ids == ("1/1/1", "1/1/8")
    assert result.gallery.item_ids == ("1/1/1", "1/2/1", "1/1/8")
    assert [found.tolist() for found in result.positives] == [[0], [2]]
    assert result.dropped == {"style_0": 1, "queries_without_positives": 1}
    assert "1 style-0 garment(s)" in caplog.text
    assert result.queries.paths[1].name == "000005.jpg"
    np.testing.assert_array_equal(result.queries.boxes[1], [0, 5, 30, 40])
    assert result.queries.categories == ("short sleeve top", "trousers")


def test_deepfashion2_same_pair_and_style_but_other_category_is_no_match(tmp_path):
    records = {
        "000001": {"source": "user", "pair_id": 3, "item1": item(1, "short sleeve top", 1)},
        "000002": {"source": "shop", "pair_id": 3, "item1": item(2, "long sleeve top", 1)},
        "000003": {"source": "shop", "pair_id": 3, "item1": item(1, "short sleeve top", 1)},
    }
    result = load_deepfashion2(write_deepfashion2(tmp_path, records))
    assert [found.tolist() for found in result.positives] == [[1]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "catalogue"}, r"000002.json: field source"),
        ({"pair_id": "1"}, r"000002.json: field pair_id"),
        (
            {"item1": {"category_id": 1, "category_name": "top", "bounding_box": [0, 0, 5, 5]}},
            r"item1: field style",
        ),
        ({"item1": item(1, "top", 1, (0, 0, 5))}, r"item1: field bounding_box"),
        ({"item1": item(1, "top", 1, (5, 0, 5, 5))}, r"item1: field bounding_box: empty box"),
    ],
)
def test_deepfashion2_malformed_fields(tmp_path, change, message):
    records = dict(DF2_IMAGES)
    records["000002"] = {**records["000002"], **change}
    with pytest.raises(CatalogueError, match=message):
        load_deepfashion2(write_deepfashion2(tmp_path, records))


def test_deepfashion2_bad_json_and_missing_image(tmp_path):
    root = write_deepfashion2(tmp_path)
    (root / "image" / "000002.jpg").unlink()
    with pytest.raises(CatalogueError, match=r"annos: 1 image\(s\) missing.*000002.json"):
        load_deepfashion2(root, image_check="exists")
    (root / "annos" / "000003.json").write_text('{\n  "source": "shop",\n  "pair_id": 1,,\n}')
    with pytest.raises(CatalogueError, match=r"000003.json: line 3: invalid JSON"):
        load_deepfashion2(root)
    with pytest.raises(CatalogueError, match="annotation directory not found"):
        load_deepfashion2(tmp_path / "nowhere")


# --- generic CSV --------------------------------------------------------------------------------------


def test_generic_csv_reads_sides_and_boxes(tmp_path):
    path = write_csv(tmp_path, CSV_ROWS)
    result = load_generic_csv(path, image_check="decode")
    assert positives_as_ids(result) == {
        str(tmp_path / "images/q1.jpg"): [str(tmp_path / "images/g1.jpg")],
        str(tmp_path / "images/q2.jpg"): [str(tmp_path / "images/g2.jpg")],
    }
    assert result.dropped == {} and result.queries.boxes is None
    boxed = write_csv(
        tmp_path / "boxed",
        [f"{row},1,2,{3 + i},4" for i, row in enumerate(CSV_ROWS)],
        "image_path,item_id,category,split,x1,y1,x2,y2",
    )
    result = load_generic_csv(boxed)
    np.testing.assert_array_equal(result.queries.boxes, [[1, 2, 3, 4], [1, 2, 6, 4]])


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([*CSV_ROWS[:2], "images/g2.jpg,sku2,shirt,validation"], None, r"line 4: field split: 'validation'"),
        ([*CSV_ROWS[:1], "images/g1.jpg,,dress,gallery"], None, r"empty item_id on line\(s\) 3"),
        (CSV_ROWS, "image_path,item_id,split", r"missing column\(s\) \['category'\]"),
        (
            [r + ",1,2,3,4" for r in CSV_ROWS],
            "image_path,item_id,category,split,x1,y1,x2",
            r"missing \['y2'\]",
        ),
        (
            [r + (",1,2,3,4" if i != 1 else ",1,2,x,4") for i, r in enumerate(CSV_ROWS)],
            "image_path,item_id,category,split,x1,y1,x2,y2",
            r"line 3: field x2: expected a number",
        ),
    ],
)
def test_generic_csv_malformed(tmp_path, rows, header, message):
    path = write_csv(tmp_path, rows, header or "image_path,item_id,category,split")
    with pytest.raises(CatalogueError, match=message):
        load_generic_csv(path)


def test_generic_csv_missing_image(tmp_path):
    path = write_csv(tmp_path, [*CSV_ROWS[:2], "images/gone.jpg,sku1,dress,gallery"])
    with pytest.raises(CatalogueError, match=r"catalogue.csv: 1 image\(s\) missing.*line 4"):
        load_generic_csv(path, image_check="exists")
    result = load_generic_csv(path, image_check="exists", missing_images="skip")
    assert result.dropped["gallery_missing_images"] == 1 and len(result.gallery) == 1


# --- clothing-dataset-small ---------------------------------------------------------------------------


def test_clothing_small_is_category_retrieval_within_a_split(tmp_path, caplog):
    root = write_clothing(tmp_path)
    with caplog.at_level(logging.INFO):
        result = load_clothing_small(root, split="test", image_check="decode")
    # The lone hat has no other image of its class: it stays in the gallery but is no query.
    assert result.queries.categories == ("dress", "dress", "shoes", "shoes", "shoes")
    assert result.gallery.categories == ("dress", "dress", "hat", "shoes", "shoes", "shoes")
    assert [found.tolist() for found in result.positives] == [[1], [0], [4, 5], [3, 5], [3, 4]]
    assert result.query_in_gallery.tolist() == [0, 1, 3, 4, 5]
    assert result.dropped == {"not_jpeg": 1, "queries_without_positives": 1}
    assert "notes.txt" in caplog.text and "hat-0000" in caplog.text


def test_clothing_small_errors(tmp_path):
    root = write_clothing(tmp_path)
    with pytest.raises(
        CatalogueError, match=r"validation: split directory not found \(found \['test', 'train'\]"
    ):
        load_clothing_small(root, split="validation")
    (root / "test" / "hat" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CatalogueError, match=r"test/hat/broken.jpg: .*unreadable"):
        load_clothing_small(root, image_check="decode")


def test_clothing_small_on_the_shared_copy_when_present():
    root = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "clothing-dataset-small"
    if not (root / "validation").is_dir():
        pytest.skip("clothing-dataset-small is not next to the project")
    result = load_clothing_small(root, split="validation")
    assert len(result.gallery) == 341 and len(set(result.gallery.categories)) == 10


def test_dataset_config_builds_a_reader(tmp_path):
    """``reader=generic_csv`` composes into a call of its reader with paths from the config."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fashion_retrieval.cli import config_dir

    path = write_csv(tmp_path, CSV_ROWS)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["reader=generic_csv", f"reader.path={path}"])
    result = instantiate(cfg.reader)
    assert isinstance(result, RetrievalSet) and len(result.queries) == 2


def test_clothing_small_queries_against_other_splits(tmp_path):
    root = write_clothing(tmp_path)
    write_image(root / "validation" / "shoes" / "shoes-0100.jpg")
    result = load_clothing_small(root, split="test", gallery_splits=["train", "validation"])
    # Every test image is a query (the lone hat too: the gallery is other splits); hats have no positive.
    assert result.gallery.categories == ("dress", "shoes")
    assert result.query_in_gallery is None
    assert result.queries.categories == ("dress", "dress", "shoes", "shoes", "shoes")
    assert [found.tolist() for found in result.positives] == [[0], [0], [1], [1], [1]]
    assert result.dropped == {"not_jpeg": 1, "queries_without_positives": 1}
    assert result.name == "clothing_small/test_vs_train+validation"
    with pytest.raises(ValueError, match="other splits than the query split 'test'"):
        load_clothing_small(root, split="test", gallery_splits=["test", "train"])


# --- training splits ----------------------------------------------------------------------------------


def test_label_by_numbers_labels_and_drops_single_images(caplog):
    images = ImageList(
        paths=tuple(Path(f"{i}.jpg") for i in range(5)),
        item_ids=("b", "a", "b", "c", "a"),
        categories=("x",) * 5,
    )
    with caplog.at_level(logging.WARNING):
        result = label_by("t", images, "item_id")
    assert result.label_names == ("a", "b") and result.labels.tolist() == [1, 0, 1, 0]
    assert [p.name for p in result.images.paths] == ["0.jpg", "1.jpg", "2.jpg", "4.jpg"]
    assert result.dropped == {"single_image_labels": 1} and "c" in caplog.text
    assert label_by("t", images, "category").labels.tolist() == [0] * 5


def test_inshop_train_rows_are_the_training_split(tmp_path):
    result = load_deepfashion_inshop(write_inshop_training(tmp_path, train_items=3, photos=2))
    train = result.train
    assert train.label_names == ("id_00000000", "id_00000001", "id_00000002")
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.images.categories[0] == "WOMEN/Dresses" and train.images.boxes.shape == (6, 4)
    assert len(result.queries) == 3 and result.summary()["train_images"] == 6


def test_deepfashion2_train_root_labels_user_and_shop_garments(tmp_path):
    train_root, validation_root = write_deepfashion2_splits(tmp_path)
    result = load_deepfashion2(validation_root, train_root=train_root)
    # Each training pair: one user and two shop photos of one garment, one label.
    assert result.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert result.train.label_names[0] == "1/1/1" and result.train.images.boxes.shape == (12, 4)
    assert len(result.queries) == 3 and len(result.gallery) == 6
    assert load_deepfashion2(validation_root).train is None


def test_generic_csv_mixes_rows_with_and_without_boxes(tmp_path):
    rows = [
        "images/q1.jpg,sku1,dress,query,,,,",
        "images/g1.jpg,sku1,dress,gallery,1,2,5,6",
        "images/g2.jpg,sku2,shirt,gallery,,,,",
        "images/q2.jpg,sku2,shirt,train,0,0,4,4",
        "images/t1.jpg,sku2,shirt,train,,,,",
    ]
    path = write_csv(tmp_path, rows, "image_path,item_id,category,split,x1,y1,x2,y2")
    result = load_generic_csv(path)
    assert result.queries.box_list() == [None]
    assert result.gallery.box_list() == [(1.0, 2.0, 5.0, 6.0), None]
    assert result.train.images.box_list() == [(0.0, 0.0, 4.0, 4.0), None]
    assert result.train.labels.tolist() == [0, 0] and result.train.label_names == ("sku2",)
    half = [*rows[:2], "images/g2.jpg,sku2,shirt,gallery,1,,,"]
    path = write_csv(tmp_path / "half", half, "image_path,item_id,category,split,x1,y1,x2,y2")
    with pytest.raises(CatalogueError, match=r"line 4: field y1: expected a number, got ''.*all four box"):
        load_generic_csv(path)


def test_image_list_rejects_partly_missing_boxes():
    boxes = np.array([[0, 0, 2, 2], [np.nan, 1, 2, 3]], np.float32)
    side = ImageList((Path("a.jpg"), Path("b.jpg")), ("1", "2"), ("x", "x"), boxes)
    with pytest.raises(ValueError, match="some but not all values missing at row"):
        side.validate("t")


def test_clothing_small_train_splits(tmp_path):
    root = write_clothing(tmp_path)
    write_image(root / "train" / "dress" / "dress-0001.jpg")
    write_image(root / "train" / "shoes" / "shoes-0000.jpg")
    result = load_clothing_small(root, split="test", train_splits=["train"])
    assert result.train.label_names == ("dress",) and len(result.train.images) == 2
    assert result.train.dropped == {"not_jpeg": 0, "single_image_labels": 1}
    assert load_clothing_small(root, split="test").train is None
    with pytest.raises(ValueError, match="train_splits must be other splits than the query split 'test'"):
        load_clothing_small(root, split="test", train_splits=["test"])


def reference_subset(data: RetrievalSet, queries, gallery) -> dict[int, list[int]]:
    """Query row -> its positives as rows of the kept gallery, by search; queries without any left out."""
    kept = {}
    for q in queries:
        found = [gallery.index(j) for j in data.positives[q] if j in gallery]
        if found:
            kept[q] = found
    return kept


def test_subset_renumbers_positives_and_own_rows(tmp_path):
    data = load_clothing_small(write_clothing(tmp_path), split="test")
    queries, gallery = [0, 2, 3, 4], [0, 3, 4]  # the first dress loses its only positive
    subset, rows = data.subset(queries, gallery)
    expected = reference_subset(data, queries, gallery)
    assert rows.tolist() == list(expected)
    assert [found.tolist() for found in subset.positives] == list(expected.values())
    own = [
        gallery.index(data.query_in_gallery[q]) if data.query_in_gallery[q] in gallery else -1 for q in rows
    ]
    assert subset.query_in_gallery.tolist() == own
    assert subset.dropped["queries_without_positives"] == 1 + data.dropped["queries_without_positives"]
