"""Real-photo scores: the collage cache, its bundles' truth, the metrics, `auto` without the data."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from real_photo_tree import CLASS_COLOURS, SPLIT_SIZES, real_overrides, write_real_tree
from test_configs import compose_config
from torch import nn

from fashion_retrieval.data.readers import load_clothing_small
from fashion_retrieval.evaluation import real_photos
from fashion_retrieval.evaluation.real_photo_notes import NOTES_FILE, read_notes
from fashion_retrieval.evaluation.real_photos import (
    CollageBundles,
    PhotoEncoder,
    RealPhotosUnavailableError,
    collage_bundles,
    collage_recall,
    ensure_collage,
    real_photo_scores,
    real_photo_settings,
)
from fashion_retrieval.synthetic.collage import CATEGORY_MAP


class MeanColour(nn.Module):
    """Embeds an image as its mean colour (normalised): the tree's classes are three colours."""

    native_input_size = (16, 16)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(images.float().mean(dim=(2, 3)) - 100.0, dim=-1)

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)


def settings_for(tmp_path: Path, *extra: str):
    root = write_real_tree(tmp_path / "photos")
    cfg = compose_config([*real_overrides(root, tmp_path / "cache"), *extra])
    return real_photo_settings(cfg)


def test_two_evaluations_starting_together_generate_the_collage_once(tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(tmp_path)
    calls = []
    generate = real_photos.generate_collage

    def slow_generate(*args, **kwargs):  # long enough that the second caller arrives while it runs
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return generate(*args, **kwargs)

    monkeypatch.setattr(real_photos, "generate_collage", slow_generate)
    with ThreadPoolExecutor(2) as pool:
        directories = list(pool.map(lambda _: ensure_collage(settings), range(2)))
    assert directories[0] == directories[1] and len(calls) == 1  # the second waited, then reused it
    assert (directories[0] / "product_dataset.csv").is_file()


def test_collage_cache_lists_products_in_place_and_is_reused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert set(CLASS_COLOURS) <= set(CATEGORY_MAP)
    directory = ensure_collage(settings)
    assert directory.parent == tmp_path / "cache" / "collage"
    assert not list(directory.glob("images/products/*"))  # the photos are never copied
    products = (directory / "product_dataset.csv").read_text().splitlines()[1:]
    assert len(products) == 12 and all(str(tmp_path / "photos") in row for row in products)
    stamp = (directory / "metadata.json").stat().st_mtime_ns
    assert ensure_collage(settings) == directory
    assert (directory / "metadata.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    gallery = load_clothing_small(settings.root, split="test", gallery_splits=["train", "validation"]).gallery
    bundles = collage_bundles(directory, gallery, "test")
    truth = {}
    for line in (directory / "bundles_product_match_test_truth.csv").read_text().splitlines()[1:]:
        bundle, product = line.split(",")
        truth.setdefault(bundle, set()).add(product)
    assert len(bundles.positives) == len(truth) == 4
    for bundle, rows in zip(bundles.images.item_ids, bundles.positives):
        assert {gallery.item_ids[r] for r in rows} == truth[bundle]
    every = collage_bundles(directory, gallery, "all")
    assert len(every.positives) == 8


def test_collage_recall_counts_pairs_like_the_challenge() -> None:
    gallery = np.eye(20, dtype=np.float32)
    bundles = CollageBundles(images=None, positives=(np.array([0, 1]), np.array([2])))  # type: ignore[arg-type]
    # Bundle 0 finds product 0 first and product 1 not at all in the top 15; bundle 1 finds product 2.
    queries = np.zeros((2, 20), np.float32)
    queries[0, 0], queries[1, 2] = 1.0, 1.0
    queries[0, 1] = -1.0  # product 1 ranks last of 20
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert collage_recall(queries, gallery, bundles) == pytest.approx(2 / 3)


def test_scores_of_a_colour_model_and_their_keys(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    metrics = real_photo_scores(settings, PhotoEncoder(MeanColour()), "val", tmp_path / "run")
    assert metrics["real/val/available"] == 1.0
    # Classes are colours: every photo's same-class photos come first.
    assert metrics["real/val/clothing_small/map@R"] == pytest.approx(1.0)
    queries = SPLIT_SIZES["test"] * len(CLASS_COLOURS)
    assert metrics["real/val/clothing_small/num_queries"] == queries
    # precision@10 of a class with 4 gallery photos among 12 is at most 4/10.
    assert metrics["real/val/clothing_small/precision@10"] == pytest.approx(0.4)
    assert metrics["real/val/collage/recall@15"] == pytest.approx(1.0)  # 12 products: all within 15
    assert metrics["real/val/image_height"] == 32  # real_photos.image_size wins over the native size


def test_heads_apply_per_side_and_features_are_cached(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, f"real_photos.feature_cache={tmp_path / 'features'}", "real_photos.image_size=null"
    )
    sides = []

    def head(side: str):
        def apply(rows: np.ndarray) -> np.ndarray:
            sides.append((side, len(rows)))
            return rows

        return apply

    encoder = PhotoEncoder(
        MeanColour(), "backbone_features", query_head=head("query"), gallery_head=head("gallery")
    )
    first = real_photo_scores(settings, encoder, "val_zones", tmp_path / "run")
    assert sides == [("gallery", 12), ("query", 6), ("query", 4)]
    assert first["real/val_zones/image_height"] == 16  # native size of the encoder
    manifests = sorted((tmp_path / "features").glob("*/manifest.json"))
    assert len(manifests) == 3
    stamps = [p.stat().st_mtime_ns for p in manifests]
    again = real_photo_scores(settings, encoder, "val_zones", tmp_path / "run")
    assert [p.stat().st_mtime_ns for p in manifests] == stamps and again == first


def test_absent_photos_auto_records_why_true_fails_false_skips(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    auto = real_photo_settings(compose_config([f"real_photos.root={missing}"]))
    built = []
    metrics = real_photo_scores(auto, lambda: built.append(1), "val", tmp_path / "run")  # type: ignore[arg-type]
    assert metrics == {"real/val/available": 0.0} and not built
    assert read_notes(tmp_path / "run") == {"val": f"not available: {missing} not found"}
    json.loads((tmp_path / "run" / NOTES_FILE).read_text())
    strict = real_photo_settings(compose_config([f"real_photos.root={missing}", "real_photos.enabled=true"]))
    with pytest.raises(RealPhotosUnavailableError, match="nowhere not found"):
        real_photo_scores(strict, lambda: None, "val", tmp_path / "run")  # type: ignore[arg-type]
    off = real_photo_settings(compose_config([f"real_photos.root={missing}", "real_photos.enabled=false"]))
    assert real_photo_scores(off, lambda: None, "val", tmp_path / "run2") == {}  # type: ignore[arg-type]
    assert not (tmp_path / "run2").exists()
