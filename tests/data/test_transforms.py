"""The evaluation transform (albumentations' resize, without albumentations) and the photometric and
texture domain randomisation of training images."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2

from fashion_retrieval.data.augmentation import QUERY_AUGMENTATION, domain_randomisation, train_transform
from fashion_retrieval.data.transforms import apply, eval_transform


def grey_texture(seed: int = 0) -> np.ndarray:
    level = np.random.default_rng(seed).integers(40, 220, size=(48, 32, 1), dtype=np.uint8)
    return np.repeat(level, 3, axis=2)


@pytest.mark.parametrize("shape", [(400, 300), (100, 60), (48, 32), (257, 1031), (31, 500)])
def test_eval_transform_gives_albumentations_pixels(shape):
    """The reference: the albumentations pipeline evaluation used before (area resize, then a tensor),
    on downscales, upscales, the same size and a strided view (a crop of a larger photo)."""
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    reference = A.Compose([A.Resize(48, 32, interpolation=cv2.INTER_AREA), ToTensorV2()])
    for array in (image, image[1:, 2:]):
        ours = apply(eval_transform((48, 32)), array)
        assert ours.dtype == torch.uint8 and ours.shape == (3, 48, 32)
        assert torch.equal(ours, apply(reference, array))
        # The ONNX service's arrays (no torch): the same pixels.
        pixels = eval_transform((48, 32)).array(array)
        assert pixels.dtype == np.uint8 and pixels.shape == (3, 48, 32)
        assert np.array_equal(pixels, apply(reference, array).numpy())


def test_off_by_default_and_bounded():
    assert domain_randomisation(0.0) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        domain_randomisation(1.5)
    # Strength 0: a plain resize, the evaluation transform's pixels.
    image = grey_texture()[:40, :30]
    resize_only = train_transform((48, 32), QUERY_AUGMENTATION, 0.0)
    assert torch.equal(apply(resize_only, image), apply(eval_transform((48, 32)), image))


def test_randomisation_changes_pixels_but_never_hue():
    image = grey_texture()
    transform = train_transform((48, 32), QUERY_AUGMENTATION, strength=0.0, domain_randomization=1.0)
    outputs = [apply(transform, image).numpy().astype(int) for _ in range(12)]
    assert all(out.shape == (3, 48, 32) for out in outputs)
    assert any(np.abs(out - image.transpose(2, 0, 1)).mean() > 1.0 for out in outputs)
    for out in outputs:  # a grey image stays grey: every step acts on all channels alike (JPEG: +-2)
        assert np.abs(out[0] - out[1]).max() <= 2 and np.abs(out[1] - out[2]).max() <= 2
