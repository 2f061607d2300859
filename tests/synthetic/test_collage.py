"""The real-photo collage set on a tiny tree of generated photos: format, boxes, determinism, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_retrieval.data.catalogue import CatalogueError, load_catalogue, read_garment_boxes
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.synthetic.collage import (
    CATEGORY_MAP,
    CollageSpec,
    generate_collage,
    list_photos,
    plan_collages,
    same_collage_exists,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "clothing-dataset-small"


def write_photos(
    root: Path, per_class: int = 2, classes=("dress", "pants", "shoes", "t-shirt", "hat")
) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        for c, name in enumerate(classes):
            for i in range(per_class):
                colour = np.array([40 + 40 * c, 200 - 30 * c, 90 + 25 * i])
                image = np.clip(colour + rng.normal(0, 15, (64, 48, 3)), 0, 255).astype(np.uint8)
                path = root / split / name / f"{split}-{name}-{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    return root


def spec_for(root: Path, **overrides) -> CollageSpec:
    values = dict(source=str(root), seed=3, num_bundles=10, test_fraction=0.3, bundle_image_size=(96, 144))
    return CollageSpec(**{**values, **overrides})


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def collage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("collage")
    photos = write_photos(base / "photos")
    out = base / "out"
    generate_collage(spec_for(photos), out)
    return photos, out


def test_writes_the_challenge_format(collage):
    photos, out = collage
    cat = load_catalogue(out, image_check="decode")
    # Products: the photos of train + validation, copied byte for byte, with the mapped categories.
    assert len(cat.products) == 20
    first = cat.products.iloc[0]
    source = photos / "train" / "dress" / f"{first['product_asset_id']}.jpg"
    assert Path(first["image_path"]).read_bytes() == source.read_bytes()
    assert set(cat.products["product_description"]) == {
        CATEGORY_MAP[c] for c in ("dress", "pants", "shoes", "t-shirt", "hat")
    }
    assert not any(pid.startswith("test-") for pid in cat.products["product_asset_id"])
    assert len(cat.bundles) == 10 and set(cat.bundles["bundle_id_section"]) == {1}
    truth = pd.read_csv(out / "bundles_product_match_test_truth.csv")
    assert truth["bundle_asset_id"].nunique() == 3
    # At most one photo per class in a bundle, 1 to 4 photos.
    matches = pd.concat([cat.train_matches, truth])
    labels = matches["product_asset_id"].str.split("-").str[1]
    per_bundle = labels.groupby(matches["bundle_asset_id"])
    assert per_bundle.apply(lambda s: s.is_unique).all() and per_bundle.size().between(1, 4).all()


def test_boxes_lie_in_the_collage_and_cover_the_matches(collage):
    _, out = collage
    boxes = read_garment_boxes(out)
    assert ((boxes["x1"] >= 0) & (boxes["y1"] >= 0) & (boxes["x2"] <= 96) & (boxes["y2"] <= 144)).all()
    assert ((boxes["x2"] > boxes["x1"]) & (boxes["y2"] > boxes["y1"])).all()
    visible = boxes["visible_fraction"].astype(float)
    assert visible.between(0, 1).all() and visible.median() > 0.5
    train = pd.read_csv(out / "bundles_product_match_train.csv")
    truth = pd.read_csv(out / "bundles_product_match_test_truth.csv")
    assert len(boxes) == len(train) + len(truth)
    image = Image.open(out / "images" / "bundles" / f"{boxes.iloc[0]['bundle_asset_id']}.jpg")
    assert image.size == (96, 144)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["category_map"] == CATEGORY_MAP and metadata["counts"]["bundles"] == 10


def test_the_training_data_module_reads_it(collage):
    _, out = collage
    module = ChallengeDataModule(
        str(out), query_size=(48, 32), catalogue_size=(32, 24), batch_size=2, num_workers=0, val_fraction=0.2
    )
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch["query"].shape[1:] == (3, 48, 32)


def test_deterministic_per_seed_and_reused(collage, tmp_path):
    photos, out = collage
    again = tmp_path / "again"
    generate_collage(spec_for(photos), again)
    assert digest(again) == digest(out)
    assert same_collage_exists(spec_for(photos), again)
    assert not same_collage_exists(spec_for(photos, seed=4), again)
    other = tmp_path / "other"
    generate_collage(spec_for(photos, seed=4), other)
    assert digest(other) != digest(out)
    with pytest.raises(FileExistsError, match="different synthetic dataset"):
        generate_collage(spec_for(photos, seed=4), again)


def test_plan_respects_sizes_and_limits(tmp_path):
    photos = write_photos(tmp_path, per_class=3)
    spec = spec_for(photos, num_bundles=50, bundle_size_weights=(0, 0, 0, 1), max_photos_per_class=2)
    listed = list_photos(spec)
    assert len(listed) == 10  # 2 per class over both splits
    plans = plan_collages(listed, spec)
    assert all(len(plan.photos) == 4 for plan in plans)
    assert sum(plan.test for plan in plans) == 15


def test_clear_errors(tmp_path):
    photos = write_photos(tmp_path / "photos", classes=("dress", "scarf"))
    with pytest.raises(CatalogueError, match=r"scarf: unknown class 'scarf'"):
        list_photos(spec_for(photos))
    with pytest.raises(CatalogueError, match="split directory not found"):
        list_photos(spec_for(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="bundle_size_weights"):
        spec_for(photos, bundle_size_weights=(1, 1, 1, 1, 1))
    write_photos(tmp_path / "twice", classes=("dress",))
    for split in ("train", "validation"):
        (tmp_path / "twice" / split / "dress" / "same.jpg").write_bytes(
            (tmp_path / "twice" / split / "dress" / f"{split}-dress-0.jpg").read_bytes()
        )
    with pytest.raises(CatalogueError, match="share a file name"):
        list_photos(spec_for(tmp_path / "twice"))


def test_a_few_real_photos_when_present(tmp_path):
    if not (SHARED / "train").is_dir():
        pytest.skip("clothing-dataset-small is not next to the project")
    spec = CollageSpec(source=str(SHARED), num_bundles=4, max_photos_per_class=1)
    report = generate_collage(spec, tmp_path / "out")
    assert report.num_products == 10 and report.num_bundles == 4
    cat = load_catalogue(tmp_path / "out", image_check="decode")
    assert len(cat.products) == 10


def test_generate_collage_stage_writes_then_reuses(tmp_path):
    from hydra import compose, initialize_config_dir

    from fashion_retrieval.cli import config_dir
    from fashion_retrieval.pipelines.context import RunContext
    from fashion_retrieval.pipelines.generate_collage import generate_collage as stage

    photos = write_photos(tmp_path / "photos")
    overrides = [
        f"collage.source={photos}",
        f"paths.data_dir={tmp_path / 'out'}",
        "collage.num_bundles=4",
        "collage.bundle_image_size=[64,96]",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    context = RunContext(output_dir=tmp_path)
    assert stage(cfg, context)["generate_collage/num_bundles"] == 4
    assert stage(cfg, context) == {}  # the same set is already there
    assert len(load_catalogue(tmp_path / "out").bundles) == 4
