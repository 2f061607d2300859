"""Photometric and texture domain randomisation of training images."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_retrieval.data.transforms import (
    QUERY_AUGMENTATION,
    apply,
    domain_randomisation,
    eval_transform,
    train_transform,
)


def grey_texture(seed: int = 0) -> np.ndarray:
    level = np.random.default_rng(seed).integers(40, 220, size=(48, 32, 1), dtype=np.uint8)
    return np.repeat(level, 3, axis=2)


def test_off_by_default_and_bounded():
    assert domain_randomisation(0.0) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        domain_randomisation(1.5)
    assert len(train_transform((48, 32), QUERY_AUGMENTATION, 0.0).transforms) == len(
        eval_transform((48, 32)).transforms
    )


def test_randomisation_changes_pixels_but_never_hue():
    image = grey_texture()
    transform = train_transform((48, 32), QUERY_AUGMENTATION, strength=0.0, domain_randomization=1.0)
    outputs = [apply(transform, image).numpy().astype(int) for _ in range(12)]
    assert all(out.shape == (3, 48, 32) for out in outputs)
    assert any(np.abs(out - image.transpose(2, 0, 1)).mean() > 1.0 for out in outputs)
    for out in outputs:  # a grey image stays grey: every step acts on all channels alike (JPEG: +-2)
        assert np.abs(out[0] - out[1]).max() <= 2 and np.abs(out[1] - out[2]).max() <= 2
