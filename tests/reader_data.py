"""Tiny datasets written in each reader's on-disk layout (DeepFashion In-shop, DeepFashion2, generic CSV,
clothing-dataset-small), shared by the reader tests and the reader-training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 6, 3), 120, np.uint8)).save(path)


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


def write_clothing(root: Path) -> Path:
    for split, counts in {"test": {"dress": 2, "hat": 1, "shoes": 3}, "train": {"dress": 1}}.items():
        for name, count in counts.items():
            for i in range(count):
                write_image(root / split / name / f"{name}-{i:04d}.jpg")
    (root / "test" / "shoes" / "notes.txt").write_text("not an image")
    return root


# --- trainable variants: photos large enough for their boxes, one colour per item or class -------------

CLASS_COLOURS = {"dress": (200, 30, 30), "pants": (30, 30, 200), "shoes": (30, 160, 30)}


def write_photo(path: Path, colour, rng: np.random.Generator, size: tuple[int, int] = (40, 30)) -> None:
    """A ``size = (H, W)`` JPEG of ``colour`` with noise: photos of one colour look alike to any model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.asarray(colour) + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def colour_of(index: int) -> tuple[int, int, int]:
    return ((60 * index) % 256, (110 + 90 * index) % 256, (200 - 50 * index) % 256)


def write_clothing_photos(root: Path, per_class: dict[str, int]) -> Path:
    """clothing-dataset-small's layout: ``per_class[split]`` photos of each class of ``CLASS_COLOURS``."""
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for name, colour in CLASS_COLOURS.items():
            for i in range(count):
                write_photo(root / split / name / f"{split}-{name}-{i}.jpg", colour, rng)
    return root


def write_inshop_training(root: Path, train_items: int = 4, photos: int = 3) -> Path:
    """In-shop's layout with ``train_items`` training items of ``photos`` photos each and 3 evaluation
    items (a query and two gallery photos each); 240 x 240 photos hold every box of :func:`write_inshop`."""
    rows = []
    for i in range(train_items):
        rows += [
            (f"img/WOMEN/Dresses/id_{i:08d}/{j:02d}_1_front.jpg", f"id_{i:08d}", "train")
            for j in range(photos)
        ]
    for i in range(100, 103):
        rows.append((f"img/MEN/Denim/id_{i:08d}/01_1_front.jpg", f"id_{i:08d}", "query"))
        rows += [(f"img/MEN/Denim/id_{i:08d}/0{j}_2_side.jpg", f"id_{i:08d}", "gallery") for j in (2, 3)]
    write_inshop(root, rows)
    rng = np.random.default_rng(0)
    for name, item_id, _ in rows:
        write_photo(root / name, colour_of(int(item_id[3:])), rng, (240, 240))
    return root


def df2_pair(pair_id: int, source: str, style: int) -> dict:
    return {"source": source, "pair_id": pair_id, "item1": item(1, "short sleeve top", style)}


def write_deepfashion2_splits(root: Path) -> tuple[Path, Path]:
    """DeepFashion2's ``train/`` and ``validation/`` split directories: pairs of one user and two shop
    photos of one garment (train: 4 pairs, validation: 3); 64 x 64 photos hold the default box."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, pairs, first in (("train", 4, 1), ("validation", 3, 50)):
        records = {}
        for pair in range(first, first + pairs):
            for k, source in enumerate(("user", "shop", "shop")):
                records[f"{pair:04d}{k}"] = df2_pair(pair, source, 1)
        splits[split] = write_deepfashion2(root / split, records)
        for name, record in records.items():
            write_photo(root / split / "image" / f"{name}.jpg", colour_of(record["pair_id"]), rng, (64, 64))
    return splits["train"], splits["validation"]
