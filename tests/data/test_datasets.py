"""Bundle items and batches: the batch contract, negatives, and per-item seeding."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from fashion_retrieval.data.augmentation import QUERY_AUGMENTATION, train_transform
from fashion_retrieval.data.catalogue import UNKNOWN_SECTION
from fashion_retrieval.data.datasets import (
    BundleDataset,
    ImageDataset,
    ImageRegions,
    LabelledImageDataset,
    ProductTable,
    TrainingBundle,
    collate_bundles,
    draw_mined_negatives,
    draw_same_category_negatives,
    pad_labels,
    region,
    seeded_apply,
)
from fashion_retrieval.data.pretrain import MultiViewDataset
from fashion_retrieval.data.transforms import crop_fraction, eval_transform


def image_file(path, value, size=(12, 8)):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return str(path)


@pytest.fixture
def paths(tmp_path):
    return [image_file(tmp_path / f"{i}.png", 20 * i) for i in range(10)]


@pytest.fixture
def bundles(paths):
    # Products are ids 1..9 with image paths[id]; bundle 0 excludes product 7 (a colour variant of 2).
    return [
        TrainingBundle(
            paths[0], (paths[1], paths[2], paths[3]), 0, (1, 2, 3), section=1, excluded_labels=(7,)
        ),
        TrainingBundle(paths[4], (paths[5], paths[3]), 1, (5, 3), section=2),
    ]


@pytest.fixture
def products(paths):
    # Category of each product id 0..9 and its section (-1: never seen in a training bundle).
    categories = np.array([0, 0, 1, 2, 0, 1, 1, 1, 2, 1])
    sections = np.array([1, 1, 1, 1, 2, 2, 1, 1, 2, UNKNOWN_SECTION])
    return ProductTable(paths=tuple(paths), categories=categories, sections=sections)


def resize_only(size=(6, 4)):
    """A training pipeline without augmentation: what BundleDataset seeds, resizing only."""
    return train_transform(size, QUERY_AUGMENTATION, 0.0)


def test_batch_contract(bundles):
    transform = resize_only()
    dataset = BundleDataset(bundles, transform, transform)
    batch = collate_bundles([dataset[0], dataset[1]])
    assert set(batch) == {
        "query",
        "catalogue",
        "query_label",
        "catalogue_label",
        "query_products",
        "query_excluded",
    }
    assert batch["query"].shape == (2, 3, 6, 4) and batch["query"].dtype == torch.uint8
    assert batch["catalogue"].shape == (5, 3, 6, 4) and batch["catalogue"].dtype == torch.uint8
    assert batch["query_label"].tolist() == [0, 1]
    assert batch["catalogue_label"].tolist() == [1, 2, 3, 5, 3]
    # Product 3 is in both bundles; masks are the model's job (miners.masks.pair_masks) from these ids.
    assert batch["query_products"].tolist() == [[1, 2, 3], [5, 3, -1]]
    assert batch["query_excluded"].tolist() == [[1, 2, 3, 7], [5, 3, -1, -1]]
    assert batch["query_products"].dtype == batch["query_excluded"].dtype == torch.long


def test_pad_labels():
    assert pad_labels([[4], [], [1, 2]]).tolist() == [[4, -1], [-1, -1], [1, 2]]
    assert pad_labels([[1]], width=3).tolist() == [[1, -1, -1]]
    assert pad_labels([]).shape == (0, 0)


def test_large_outfits_are_subsampled_but_keep_every_label(bundles):
    transform = resize_only()
    dataset = BundleDataset(bundles, transform, transform, max_products=2)
    item = dataset[0]
    assert item["catalogue"].shape[0] == 2
    assert set(item["catalogue_labels"]) <= {1, 2, 3}
    assert item["products"] == (1, 2, 3)
    # Subsets are a function of (seed, epoch, index): the same key gives the same subset.
    draws = {tuple(dataset.draw((0, epoch))[0]) for epoch in range(20)}
    assert len(draws) == 3 and dataset.draw((0, 5)) == dataset.draw((0, 5))


def test_same_category_negatives_reference():
    pools = {0: np.array([1, 2, 3, 4]), 1: np.array([5, 6]), 2: np.array([], np.int64)}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        drawn = draw_same_category_negatives(rng, [0, 1, 2], pools, excluded={2, 5}, count=4)
        assert len(drawn) == len(set(drawn)) == 4
        assert set(drawn) <= {1, 3, 4, 6}  # of the anchors' categories, never excluded
    # A category runs dry: fewer than asked, never a repeat.
    drawn = draw_same_category_negatives(np.random.default_rng(0), [1], pools, excluded={5}, count=3)
    assert drawn == [6]
    assert draw_same_category_negatives(np.random.default_rng(0), [2], pools, set(), 2) == []


def test_mined_negatives_reference():
    mined = [9, 8, -1, 7, 6, 5]
    for seed in range(20):
        drawn = draw_mined_negatives(np.random.default_rng(seed), mined, 2, pool=4, excluded={8})
        assert len(drawn) == 2 and set(drawn) <= {9, 7}
    assert draw_mined_negatives(np.random.default_rng(0), mined, 9, pool=None, excluded=set()) == [
        9,
        8,
        7,
        6,
        5,
    ]


def test_items_carry_same_category_and_mined_negatives(bundles, products):
    transform = resize_only()
    dataset = BundleDataset(
        bundles, transform, transform, products=products, same_category_negatives=2, mined_negatives=1
    )
    dataset.set_mined_negatives({0: [8, 6, -1], 1: [1]})
    for epoch in range(10):
        item = dataset[(0, epoch)]
        drawn, negatives = item["catalogue_labels"][:3], item["catalogue_labels"][3:]
        assert drawn == [1, 2, 3] and len(negatives) == 3 == len(set(negatives))
        same_category, mined = negatives[:2], negatives[2]
        # Section 1 (or unknown: product 9) and a category of products 1, 2, 3; never 7 (excluded).
        assert set(same_category) <= {0, 6, 9}
        assert mined in {8, 6} and mined not in same_category
        assert item["catalogue"].shape == (6, 3, 6, 4)
        # The packshot of a negative is that product's image (paths[i] holds value 20 i).
        assert int(item["catalogue"][3].float().mean().round()) == 20 * negatives[0]
    # Bundle 1 (section 2): products 5 (category 1) and 3 (category 2); 4 is category 0, 6 and 7 section 1.
    negatives = {p for epoch in range(20) for p in dataset[(1, epoch)]["catalogue_labels"][2:]}
    assert negatives <= {8, 9, 1} and 1 in negatives


def test_negatives_need_the_product_table(bundles):
    transform = resize_only()
    with pytest.raises(ValueError, match="product table"):
        BundleDataset(bundles, transform, transform, same_category_negatives=1)


def test_augmentation_is_a_function_of_the_key_only(bundles):
    augment = train_transform((6, 4), QUERY_AUGMENTATION, 1.0)
    dataset = BundleDataset(bundles, augment, augment, seed=3)
    first = dataset[(1, 2)]
    random.seed(1)  # global state must not matter
    np.random.seed(1)
    torch.manual_seed(1)
    dataset[(0, 0)]
    again = dataset[(1, 2)]
    assert torch.equal(first["query"], again["query"]) and torch.equal(first["catalogue"], again["catalogue"])
    image = np.random.default_rng(0).integers(0, 255, (24, 16, 3), dtype=np.uint8)
    outputs = {seeded_apply(augment, image, np.random.default_rng(s)).numpy().tobytes() for s in range(8)}
    assert len(outputs) > 1  # and it does augment


def test_crop_fraction_and_image_dataset_index(tmp_path):
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    cropped = crop_fraction(image, (0.25, 0.0, 0.75, 0.5))
    np.testing.assert_array_equal(cropped, image[0:5, 5:15])
    assert crop_fraction(image, None) is image
    with pytest.raises(ValueError, match="left < right"):
        crop_fraction(image, (0.5, 0.0, 0.25, 1.0))
    dataset = ImageDataset([image_file(tmp_path / "a.png", 10, (20, 40))], eval_transform((4, 4)))
    item = dataset[0]
    assert item["index"] == 0 and item["image"].shape == (3, 4, 4)
    # uint8 out: the model normalises its own input.
    assert item["image"].dtype == torch.uint8
    assert torch.allclose(item["image"].float(), torch.full((3, 4, 4), 10.0), atol=2)


def test_regions_are_padded_and_clipped_in_pixel_space(tmp_path):
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    np.testing.assert_array_equal(region(image, (4, 2, 8, 6)), image[2:6, 4:8])
    # 50% of 4 pixels per side, clipped at the top border: rows 0..8, columns 2..10.
    np.testing.assert_array_equal(region(image, (4, 2, 8, 6), padding=0.5), image[0:8, 2:10])
    np.testing.assert_array_equal(region(image, (-5.0, 8.5, 30.0, 12.0)), image[8:10, 0:20])
    assert region(image, None) is image
    path = image_file(tmp_path / "b.png", 0, (20, 10))
    boxes = [(0, 0, 5, 5), None]
    dataset = ImageDataset([path, path], eval_transform((4, 4)), boxes=boxes)
    assert dataset[0]["image"].shape == dataset[1]["image"].shape == (3, 4, 4)
    with pytest.raises(ValueError, match="2 boxes for 1 images"):
        ImageDataset([path], eval_transform((4, 4)), boxes=boxes)
    with pytest.raises(ValueError, match="not both"):
        ImageDataset([path, path], eval_transform((4, 4)), crop=(0, 0, 1, 1), boxes=boxes)


def test_one_region_loader_serves_the_labelled_and_the_multi_view_datasets(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (20, 10, 3), dtype=np.uint8)
    path = str(tmp_path / "c.png")
    Image.fromarray(pixels).save(path)
    boxes = [(2, 4, 6, 12), None]
    regions = ImageRegions([path, path], boxes, padding=0.25)
    # 25% of the 4 x 8 box per side: columns 1..7, rows 2..14; no box: the whole image.
    np.testing.assert_array_equal(regions.load(0), pixels[2:14, 1:7])
    np.testing.assert_array_equal(regions.load(1), pixels)
    np.testing.assert_array_equal(ImageRegions([path], crop=(0.5, 0.0, 1.0, 0.5)).load(0), pixels[0:10, 5:10])

    resize_only = train_transform((12, 6), QUERY_AUGMENTATION, strength=0.0)
    labelled = LabelledImageDataset([path, path], [3, 4], resize_only, boxes, 0.25)
    seen = []
    views = MultiViewDataset([path, path], lambda image: seen.append(np.asarray(image)) or [], boxes, 0.25)
    for index in range(2):
        views[index]
        np.testing.assert_array_equal(seen[index], regions.load(index))
        assert labelled[index]["label"] == 3 + index
        # strength 0 gives eval_transform's pixels: those of the same region, resized.
        expected = eval_transform((12, 6))(image=regions.load(index))["image"]
        assert torch.equal(labelled[index]["image"], expected)
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        LabelledImageDataset([path, path], [3], resize_only)
    with pytest.raises(ValueError, match="2 boxes for 1 images"):
        MultiViewDataset([path], lambda image: [], boxes)
