"""``detect-train``: train a YOLO garment detector on the synthetic dataset's ground-truth boxes.

Writes into the run directory: ``detector/dataset/`` (the Ultralytics layout, images linked),
``detector/ultralytics/`` (ultralytics' own run folder) and ``detector/best.pt``. The validation bundles
are exactly the data module's, so the detector never trains on the bundles retrieval is validated on.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.callbacks.checkpointing import copy_checkpoint
from fashion_retrieval.data.catalogue import load_catalogue, read_garment_boxes, split_bundles
from fashion_retrieval.data.training_sets import reject_extra_training_sets
from fashion_retrieval.detection.groups import validate_group_map
from fashion_retrieval.detection.ultralytics_dataset import write_ultralytics_dataset
from fashion_retrieval.detection.yolo import load_yolo, train_yolo
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def detect_train(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.detect_train
    groups = validate_group_map(cfg.garment_groups)
    reject_extra_training_sets(cfg.data.get("extra_training_sets"), "detect-train")
    catalogue = load_catalogue(
        cfg.data.data_dir, missing_images=cfg.data.missing_images, image_check=cfg.data.image_check
    )
    train_ids, val_ids = split_bundles(catalogue.train_bundle_ids, cfg.data.val_fraction, cfg.data.split_seed)
    if not val_ids:
        raise ValueError("detect-train needs validation bundles for its mAP: set data.val_fraction > 0")
    detector_dir = context.output_dir / "detector"
    data_yaml = write_ultralytics_dataset(
        read_garment_boxes(catalogue.root),
        dict(zip(catalogue.bundles["bundle_asset_id"], catalogue.bundles["image_path"])),
        {"train": train_ids, "val": val_ids},
        groups,
        detector_dir / "dataset",
    )
    model = load_yolo(settings.weights, settings.architecture, override="detect_train.weights")
    log.info(
        "detect-train: %s on %d train / %d validation bundles, %d epochs at %d px",
        settings.weights or settings.architecture,
        len(train_ids),
        len(val_ids),
        settings.epochs,
        settings.image_size,
    )
    trained = train_yolo(
        model,
        data_yaml,
        detector_dir / "ultralytics",
        epochs=settings.epochs,
        imgsz=settings.image_size,
        batch=settings.batch,
        workers=settings.workers,
        device=settings.device,
        seed=cfg.seed,
        patience=settings.patience,
        plots=settings.plots,
        threads=settings.threads,
        **OmegaConf.to_container(settings.extra, resolve=True),
    )
    best = detector_dir / "best.pt"
    copy_checkpoint(trained.best, best)
    log.info(
        "detect-train: %s (validation mAP50 %.4f, mAP50-95 %.4f, %.0f s); use it with "
        "detector=yolo detector.weights=%s",
        best,
        trained.map50,
        trained.map50_95,
        trained.seconds,
        best,
    )
    return {
        "detect/map50": trained.map50,
        "detect/map50_95": trained.map50_95,
        "detect/train_seconds": trained.seconds,
    }
