"""The data module on a micro synthetic dataset: resumable batches, negatives, articles, samplers, config,
and its catalogue side as a search builds it (CatalogueData)."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning_fabric.utilities.data import _set_sampler_epoch
from omegaconf import OmegaConf

from fashion_retrieval.cli import config_dir
from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.data.samplers import CategoryBalancedBatchSampler, RandomBatchSampler
from fashion_retrieval.detection.crops import CropSettings
from fashion_retrieval.detection.garment_matching import DetectedGarments
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.synthetic import SyntheticSpec, generate_dataset

MICRO = SyntheticSpec(
    seed=7, num_products=60, num_bundles=40, product_image_size=(48, 64), bundle_image_size=(64, 96)
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro")
    generate_dataset(MICRO, out, num_workers=1)
    return out


def make(data_dir: Path, **overrides) -> ChallengeDataModule:
    kwargs = dict(
        query_size=(48, 32),
        catalogue_size=(32, 24),
        batch_size=4,
        max_products_per_bundle=2,
        eval_batch_size=16,
        num_workers=0,
        val_fraction=0.2,
        seed=11,
        same_category_negatives=1,
    )
    return ChallengeDataModule(str(data_dir), **{**kwargs, **overrides})


def epoch_batches(loader, epoch: int) -> list[dict[str, torch.Tensor]]:
    _set_sampler_epoch(loader, epoch)  # what Lightning's fit loop calls at each epoch start
    return list(loader)


def assert_same(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("num_workers", [0, 2])
def test_epoch_batches_do_not_depend_on_history_or_workers(data_dir, num_workers):
    """What resuming from an epoch-end checkpoint needs: epoch 3 is the same whatever ran before."""
    reference = epoch_batches(make(data_dir).train_dataloader(), 3)
    module = make(data_dir, num_workers=num_workers)
    loader = module.train_dataloader()
    assert loader.persistent_workers == (num_workers > 0)
    for epoch in range(3):
        epoch_batches(loader, epoch)
    assert_same(epoch_batches(loader, 3), reference)
    fresh = make(data_dir, num_workers=num_workers).train_dataloader()
    assert_same(epoch_batches(fresh, 3), reference)
    other = epoch_batches(fresh, 4)
    assert not torch.equal(other[0]["query_label"], reference[0]["query_label"])


def test_workers_start_at_the_first_batch_not_at_iter(data_dir):
    """Lightning calls iter() on the train loader before set_epoch (and before on_train_start) of a fit's
    first epoch: with workers, nothing may be drawn before the first next()."""
    reference = epoch_batches(make(data_dir).train_dataloader(), 3)
    loader = make(data_dir, num_workers=2).train_dataloader()
    iterator = iter(loader)
    _set_sampler_epoch(loader, 3)
    assert_same(list(iterator), reference)


def test_training_batches_follow_the_contract(data_dir):
    module = make(data_dir)
    batch = next(iter(module.train_dataloader()))
    bundles = {b.bundle_label: b for b in module.training_bundles()}
    products = module.cat.products
    count = len(batch["query_label"])
    assert batch["query"].shape == (count, 3, 48, 32) and batch["catalogue"].shape[1:] == (3, 32, 24)
    assert batch["catalogue"].shape[0] == len(batch["catalogue_label"])
    for row, label in enumerate(batch["query_label"].tolist()):
        own = [p for p in batch["query_products"][row].tolist() if p >= 0]
        assert own == list(bundles[label].product_labels)
    # Each bundle brought up to 2 products and one negative of the category of one of them.
    categories = set(products["product_description"].iloc[batch["catalogue_label"].tolist()])
    assert len(batch["catalogue_label"]) <= 3 * count and categories


def test_mask_same_article_excludes_colour_variants(data_dir, tmp_path, caplog):
    module = make(data_dir, mask_same_article=True)
    variants = module.cat.article_variants()
    assert variants, "the synthetic catalogue has colour variants"
    index = module.cat.product_index()
    ids = module.catalogue_ids
    with_variants = [b for b in module.training_bundles() if b.excluded_labels]
    assert with_variants
    for bundle in with_variants:
        expected = {index[v] for p in bundle.product_labels for v in variants.get(ids[p], [])}
        assert set(bundle.excluded_labels) == expected - set(bundle.product_labels)
    assert all(not b.excluded_labels for b in make(data_dir).training_bundles())  # off by default
    # Without the (synthetic-only) articles file: a warning, and no effect.
    copy = tmp_path / "no_articles"
    shutil.copytree(data_dir, copy)
    (copy / "product_articles.csv").unlink()
    with caplog.at_level(logging.WARNING):
        plain = make(copy, mask_same_article=True)
        assert all(not b.excluded_labels for b in plain.training_bundles())
    assert "mask_same_article" in caplog.text and "product_articles.csv" in caplog.text


def test_mined_negatives_reach_the_loader_and_the_checkpoint(data_dir):
    module = make(data_dir, same_category_negatives=0, mined_negatives=2, mined_pool=3, num_workers=1)
    loader = module.train_dataloader()
    assert not loader.persistent_workers  # a persistent worker would keep a stale dataset copy
    first = next(iter(loader))
    assert len(first["catalogue_label"]) <= 2 * len(first["query_label"])  # nothing mined yet: products only
    targets = module.mining_targets()
    negatives = {}
    for label, excluded, section in zip(targets.bundle_labels, targets.excluded, targets.sections):
        pool = [
            p
            for p, s in enumerate(module.catalogue_section_array())
            if p not in excluded and s in (section, -1)
        ]
        negatives[label] = [*pool[:5], -1]
    module.set_mined_negatives(negatives, epoch=0)
    batch = epoch_batches(loader, 1)[0]
    offset = 0
    for row, label in enumerate(batch["query_label"].tolist()):
        own = {p for p in batch["query_products"][row].tolist() if p >= 0}
        drawn = min(len(own), 2)
        labels = batch["catalogue_label"][offset : offset + drawn + 2].tolist()
        assert set(labels[:drawn]) <= own and set(labels[drawn:]) <= set(negatives[label][:3])
        offset += drawn + 2
    assert offset == len(batch["catalogue_label"])
    state = module.state_dict()
    restored = make(data_dir, same_category_negatives=0, mined_negatives=2, mined_pool=3)
    restored.load_state_dict(state)
    assert restored.mined_epoch == 0 and restored.mined_negatives == module.mined_negatives
    assert all(-1 not in ids for ids in restored.mined_negatives.values())


def test_mining_sets_line_up(data_dir):
    module = make(data_dir, max_train_bundles=7)
    loader = module.mining_query_loader()
    targets = module.mining_targets()
    bundles = module.training_bundles()
    assert len(loader.dataset) == len(targets.bundle_labels) == len(targets.sections) == 7
    assert loader.dataset.paths == [b.bundle_path for b in bundles]
    assert targets.positives == [list(b.product_labels) for b in bundles]
    sections = module.catalogue_section_array()
    assert sections.shape == (len(module.catalogue_ids),) and set(sections.tolist()) <= {-1, 1, 2, 3}


def test_category_balanced_sampler_from_the_config(data_dir):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["sampler=category_balanced", f"paths.data_dir={data_dir}"]
        )
    module = instantiate(cfg.data)
    assert isinstance(module.sampler_factory, functools.partial)
    loader = module.train_dataloader()
    assert isinstance(loader.batch_sampler, CategoryBalancedBatchSampler)
    assert loader.batch_sampler.categories_per_batch == cfg.sampler.categories_per_batch
    assert len(loader) == len(list(loader)) > 0
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"paths.data_dir={data_dir}"])
    assert isinstance(instantiate(cfg.data).train_dataloader().batch_sampler, RandomBatchSampler)


def test_garment_queries_crop_the_ground_truth_boxes(data_dir):
    module = make(data_dir, train_queries="garments", crop_size=(40, 30), garment_padding=0.0)
    boxes = module.garment_boxes()
    items = module.training_bundles()
    product_ids = module.catalogue_ids
    train_pairs = sum(len(p) for p in module.cat.products_of(module.train_bundle_ids).values())
    assert len(items) == train_pairs  # every listed product of the generator has a box
    assert [item.bundle_label for item in items] == list(range(len(items)))
    for item in items[:10]:
        (product,) = item.product_labels
        bundle = Path(item.bundle_path).stem  # photos are images/bundles/<bundle id>.jpg
        assert item.query_box == boxes[(bundle, product_ids[product])][0]
    batch = next(iter(module.train_dataloader()))
    assert batch["query"].shape[1:] == (3, 40, 30)
    assert (batch["query_products"][:, 1:] == -1).all()  # one product per garment query
    # Validation searches with the garments of the validation bundles, one truth product each.
    queries = module.validation_queries()
    assert queries.boxes is not None and all(len(t) == 1 for t in queries.truth)
    assert set(queries.bundle_ids) == set(module.val_bundle_ids)
    crop = module.val_dataloader()[0].dataset[0]["image"]
    assert crop.shape == (3, 40, 30)
    # The miner embeds the same garment crops it mines for.
    loader = module.mining_query_loader()
    assert loader.dataset.boxes == [item.query_box for item in items]


def test_garment_visibility_threshold_is_counted(data_dir, caplog):
    module = make(data_dir, train_queries="garments", min_garment_visibility=0.99)
    module.setup()
    with caplog.at_level(logging.INFO):
        kept = module.visible_garments(module.train_bundle_ids)
    assert "less than 99% visible" in caplog.text
    assert 0 < len(kept) < sum(len(p) for p in module.cat.products_of(module.train_bundle_ids).values())
    assert all(module.garment_boxes()[(b, p)][1] >= 0.99 for b, p, _ in kept)
    with pytest.raises(ValueError, match="train_queries"):
        make(data_dir, train_queries="crops")


class ShiftedTruth:
    """A fake detector: every ground-truth box shifted right by ``shift`` pixels, plus one box of sky."""

    def __init__(self, boxes: dict, shift: float) -> None:
        self.label_categories: dict[str, list[str]] = {}
        self.by_bundle: dict[str, list] = {}
        for (bundle, _), (box, _) in boxes.items():
            self.by_bundle.setdefault(bundle, []).append(box)
        self.shift = shift

    def fingerprint(self) -> str:
        return f"shifted-{self.shift}"

    def detect(self, images, image_ids):
        return [
            [
                Detection((x1 + self.shift, y1, x2 + self.shift, y2), 0.9, "top")
                for x1, y1, x2, y2 in self.by_bundle[i]
            ]
            + [Detection((0, 0, 4, 4), 0.9, "top")]
            for i in image_ids
        ]


def test_detected_crops_that_match_a_garment_are_mixed_in(data_dir, tmp_path, caplog):
    plain = make(data_dir, train_queries="garments")
    truth_items = plain.training_bundles()
    boxes = plain.garment_boxes()
    settings = CropSettings(min_score=0.5, max_crops=20)
    # A 1-pixel shift keeps IoU high: every garment gets a second, detected crop; the sky box never matches.
    near = make(
        data_dir,
        train_queries="garments",
        detected_garments=DetectedGarments(ShiftedTruth(boxes, 1.0), settings, cache=str(tmp_path / "cache")),
    )
    with caplog.at_level(logging.INFO):
        items = near.training_bundles()
    assert "detections matched" in caplog.text
    assert len(items) == 2 * len(truth_items)
    detected = items[len(truth_items) :]
    shifted = sorted((t.bundle_path, t.product_labels, t.query_box[0] + 1.0) for t in truth_items)
    assert sorted((i.bundle_path, i.product_labels, i.query_box[0]) for i in detected) == shifted
    assert len(list((tmp_path / "cache").glob("*/B_*.json"))) == len(near.train_bundle_ids)
    # Shifted by far more than the boxes' width: nothing matches, only the ground-truth crops remain.
    far = make(
        data_dir,
        train_queries="garments",
        detected_garments=DetectedGarments(ShiftedTruth(boxes, 500.0), settings),
    )
    assert len(far.training_bundles()) == len(truth_items)
    # No detector (the config's default): the ground-truth garments alone.
    none = make(data_dir, train_queries="garments", detected_garments=DetectedGarments(None, settings))
    assert none.training_bundles() == truth_items


def test_the_search_builds_the_catalogue_side_of_the_same_config(data_dir):
    """CatalogueData.from_config reads the data: config a training run composes (its training keys, the
    sampler partial included, are left out) and gives the Lightning module's sets and evaluation images."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"paths.data_dir={data_dir}",
                "data.num_workers=0",
                "data.query_crop=[0.1,0.0,0.9,1.0]",
            ],
        )
    data = OmegaConf.to_container(cfg.data, resolve=True)
    catalogue = CatalogueData.from_config(data)
    assert type(catalogue) is CatalogueData
    module = instantiate(cfg.data)
    for side in (catalogue, module):
        side.setup()
    assert catalogue.catalogue_ids == module.catalogue_ids
    assert (catalogue.train_bundle_ids, catalogue.val_bundle_ids) == (
        module.train_bundle_ids,
        module.val_bundle_ids,
    )
    assert catalogue.query_crop == (0.1, 0.0, 0.9, 1.0) and catalogue.crop_size == tuple(
        cfg.data.catalogue_size
    )
    for ours, theirs in (
        (catalogue.query_dataloader("val"), module.query_dataloader("val")),
        (catalogue.catalogue_dataloader(), module.catalogue_dataloader()),
    ):
        assert torch.equal(next(iter(ours))["image"], next(iter(theirs))["image"])
    with pytest.raises(ValueError, match="data=challenge"):
        CatalogueData.from_config({"_target_": "fashion_retrieval.data.reader_datamodule.ReaderDataModule"})
