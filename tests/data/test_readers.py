"""Dataset readers on tiny fixtures written in each format: the mapping, the drops, and the error messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_retrieval.data.catalogue import CatalogueError
from fashion_retrieval.data.readers import (
    ImageList,
    RetrievalSet,
    load_clothing_small,
    load_deepfashion2,
    load_deepfashion_inshop,
    load_generic_csv,
)


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 6, 3), 120, np.uint8)).save(path)


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

INSHOP_ROWS = [
    ("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "query"),
    ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "gallery"),
    ("img/WOMEN/Dresses/id_00000002/02_3_back.jpg", "id_00000002", "gallery"),
    ("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "query"),
    ("img/MEN/Denim/id_00000080/01_2_side.jpg", "id_00000080", "gallery"),
    ("img/MEN/Denim/id_00000099/01_1_front.jpg", "id_00000099", "query"),  # item absent from the gallery
    ("img/WOMEN/Tees_Tanks/id_00000001/02_1_front.jpg", "id_00000001", "train"),
]


def write_inshop(root: Path, rows=INSHOP_ROWS, *, count: int | None = None, boxes: bool = True) -> Path:
    partition = [str(len(rows) if count is None else count), "image_name item_id evaluation_status"]
    partition += [f"{name}  {item}   {status}" for name, item, status in rows]  # the release pads with spaces
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    (root / "Eval" / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    if boxes:
        lines = [str(len(rows)), "image_name clothes_type pose_type x_1 y_1 x_2 y_2"]
        lines += [f"{name} 1 1 10 20 {110 + i} 220" for i, (name, _, _) in enumerate(rows)]
        (root / "Anno").mkdir(parents=True, exist_ok=True)
        (root / "Anno" / "list_bbox_inshop.txt").write_text("\n".join(lines) + "\n")
    for name, _, _ in rows:
        write_image(root / name)
    return root


def test_inshop_maps_items_categories_and_boxes(tmp_path, caplog):
    root = write_inshop(tmp_path)
    with caplog.at_level(logging.INFO):
        result = load_deepfashion_inshop(root, image_check="decode")
    assert result.queries.item_ids == ("id_00000002", "id_00000080")
    assert result.queries.categories == ("WOMEN/Dresses", "MEN/Denim")
    assert len(result.gallery) == 3
    assert [found.tolist() for found in result.positives] == [[0, 1], [2]]
    assert result.dropped == {"train": 1, "queries_without_positives": 1}
    assert "id_00000099" in caplog.text
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


def item(category_id: int, name: str, style: int, box=(10, 10, 50, 60)) -> dict:
    return {"category_id": category_id, "category_name": name, "style": style, "bounding_box": list(box)}


DF2_IMAGES = {
    "000001": {
        "source": "user",
        "pair_id": 1,
        "item1": item(1, "short sleeve top", 1),
        "item2": item(8, "trousers", 0),
    },
    "000002": {"source": "shop", "pair_id": 1, "item1": item(1, "short sleeve top", 1)},
    "000003": {
        "source": "shop",
        "pair_id": 1,
        "item1": item(1, "short sleeve top", 2),
        "item2": item(8, "trousers", 1),
    },
    "000004": {"source": "user", "pair_id": 2, "item1": item(7, "shorts", 1)},  # its shop photo is missing
    "000005": {"source": "user", "pair_id": 1, "item2": item(8, "trousers", 1, (0, 5, 30, 40))},
}


def write_deepfashion2(root: Path, records=DF2_IMAGES) -> Path:
    (root / "annos").mkdir(parents=True, exist_ok=True)
    for name, record in records.items():
        (root / "annos" / f"{name}.json").write_text(json.dumps(record, indent=2))
        write_image(root / "image" / f"{name}.jpg")
    return root


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


def write_csv(root: Path, rows: list[str], header: str = "image_path,item_id,category,split") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("q1.jpg", "g1.jpg", "g2.jpg", "q2.jpg", "t1.jpg"):
        write_image(root / "images" / name)
    path = root / "catalogue.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


CSV_ROWS = [
    "images/q1.jpg,sku1,dress,query",
    "images/g1.jpg,sku1,dress,gallery",
    "images/g2.jpg,sku2,shirt,gallery",
    "images/q2.jpg,sku2,shirt,query",
    "images/t1.jpg,sku3,shirt,train",
]


def test_generic_csv_reads_sides_and_boxes(tmp_path):
    path = write_csv(tmp_path, CSV_ROWS)
    result = load_generic_csv(path, image_check="decode")
    assert positives_as_ids(result) == {
        str(tmp_path / "images/q1.jpg"): [str(tmp_path / "images/g1.jpg")],
        str(tmp_path / "images/q2.jpg"): [str(tmp_path / "images/g2.jpg")],
    }
    assert result.dropped == {"train": 1} and result.queries.boxes is None
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


def write_clothing(root: Path) -> Path:
    for split, counts in {"test": {"dress": 2, "hat": 1, "shoes": 3}, "train": {"dress": 1}}.items():
        for name, count in counts.items():
            for i in range(count):
                write_image(root / split / name / f"{name}-{i:04d}.jpg")
    (root / "test" / "shoes" / "notes.txt").write_text("not an image")
    return root


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
    """``dataset=generic_csv`` composes into a call of its reader with paths from the config."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fashion_retrieval.cli import config_dir

    path = write_csv(tmp_path, CSV_ROWS)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["dataset=generic_csv", f"dataset.path={path}"])
    result = instantiate(cfg.dataset)
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
