"""``detect-train`` on a micro synthetic dataset: one epoch at a tiny image size, then detect with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_configs import compose_config

from fashion_retrieval.cli import SUBCOMMANDS
from fashion_retrieval.data.catalogue import load_catalogue, split_bundles
from fashion_retrieval.detection.yolo import YoloDetector
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.detect_train import detect_train
from fashion_retrieval.pipelines.registry import STAGE_NAMES
from fashion_retrieval.synthetic import SyntheticSpec, generate_dataset

MICRO = SyntheticSpec(
    seed=3, num_products=40, num_bundles=30, product_image_size=(48, 64), bundle_image_size=(64, 96)
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    root = tmp_path_factory.mktemp("detect_train")
    data_dir, run_dir, workdir = root / "data", root / "run", root / "cwd"
    generate_dataset(MICRO, data_dir, num_workers=1)
    workdir.mkdir()
    cfg = compose_config(
        [
            f"paths.data_dir={data_dir}",
            "data.val_fraction=0.25",
            "detect_train.epochs=1",
            "detect_train.image_size=64",
            "detect_train.batch=8",
            "detect_train.workers=0",
        ],
        output_dir=str(run_dir),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)  # ultralytics must write nothing in the working directory
        metrics = detect_train(cfg, RunContext(output_dir=run_dir))
    assert list(workdir.iterdir()) == []
    return data_dir, run_dir, metrics


def test_writes_best_weights_and_metrics_in_the_run_directory(trained):
    _, run_dir, metrics = trained
    assert "detect-train" in SUBCOMMANDS and "detect_train" in STAGE_NAMES
    assert (run_dir / "detector/best.pt").is_file()
    assert (run_dir / "detector/ultralytics/weights/best.pt").is_file()
    assert 0.0 <= metrics["detect/map50_95"] <= metrics["detect/map50"] <= 1.0
    assert metrics["detect/train_seconds"] > 0


def test_validation_bundles_are_the_data_modules(trained):
    data_dir, run_dir, _ = trained
    catalogue = load_catalogue(data_dir)
    train_ids, val_ids = split_bundles(catalogue.train_bundle_ids, 0.25, 0)
    listed = {
        split: sorted(p.stem for p in (run_dir / f"detector/dataset/images/{split}").iterdir())
        for split in ("train", "val")
    }
    assert listed == {"train": train_ids, "val": val_ids}


def test_the_trained_weights_detect(trained):
    _, run_dir, _ = trained
    cfg = compose_config([])
    detector = YoloDetector(
        cfg.garment_groups, weights=str(run_dir / "detector/best.pt"), confidence=0.0, image_size=64
    )
    assert set(detector.class_names.values()) == set(cfg.garment_groups)
    (found,) = detector.detect([np.zeros((96, 64, 3), np.uint8)], ["B_x"])
    assert all(d.label in cfg.garment_groups for d in found)
