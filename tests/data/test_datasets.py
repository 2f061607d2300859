import numpy as np
import pytest
import torch
from PIL import Image

from fashion_retrieval.data.datasets import BundleDataset, ImageDataset, TrainingBundle, collate_bundles
from fashion_retrieval.data.transforms import crop_fraction, eval_transform


def image_file(path, value, size=(12, 8)):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return str(path)


@pytest.fixture
def bundles(tmp_path):
    paths = [image_file(tmp_path / f"{i}.png", 20 * i) for i in range(8)]
    return [
        TrainingBundle(paths[0], (paths[1], paths[2], paths[3]), bundle_label=0, product_labels=(1, 2, 3)),
        TrainingBundle(paths[4], (paths[5], paths[3]), bundle_label=1, product_labels=(5, 3)),
    ]


def test_bundle_batches_and_positive_mask(bundles):
    transform = eval_transform((6, 4))
    dataset = BundleDataset(bundles, transform, transform)
    batch = collate_bundles([dataset[0], dataset[1]])
    assert batch["query"].shape == (2, 3, 6, 4)
    assert batch["gallery"].shape == (5, 3, 6, 4)
    assert batch["gallery_label"].tolist() == [1, 2, 3, 5, 3]
    # Product 3 belongs to both bundles: it is a positive of both wherever it appears, never a negative.
    expected = [[True, True, True, False, True], [False, False, True, True, True]]
    assert batch["positive_mask"].tolist() == expected


def test_large_outfits_are_subsampled_but_keep_every_label(bundles):
    transform = eval_transform((6, 4))
    item = BundleDataset(bundles, transform, transform, max_products=2)[0]
    assert item["gallery"].shape[0] == 2
    assert set(item["gallery_labels"]) <= {1, 2, 3}
    assert item["all_product_labels"] == frozenset({1, 2, 3})


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
