"""Albumentations pipelines for bundle (query) and product (gallery) images.

Hue is never jittered: colour variants of one article are our hardest negatives, so a hue shift would
turn a positive into a different product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2


def load_rgb(path: str) -> np.ndarray:
    """Read an image file as an ``(H, W, 3) uint8`` RGB array; a clear error names a broken file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path} (missing, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_fraction(image: np.ndarray, box: Sequence[float] | None) -> np.ndarray:
    """Cut ``box = (left, top, right, bottom)``, given as fractions of the width and height, from an
    ``(H, W, 3)`` image; ``None`` keeps the whole image. A fixed region of interest: bundle photos
    centre the person, so the side margins are mostly background."""
    if box is None:
        return image
    left, top, right, bottom = box
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ValueError(f"crop box must be fractions with left < right and top < bottom, got {list(box)}")
    height, width = image.shape[:2]
    return image[round(top * height) : round(bottom * height), round(left * width) : round(right * width)]


def eval_transform(size: Sequence[int]) -> A.Compose:
    """Resize to ``size = (H, W)``; used for validation, indexing and inference.

    Outputs stay ``uint8``: the model normalises its own input
    (:class:`fashion_retrieval.models.normalization.InputNormalization`), so one pipeline feeds any
    backbone, and ensembles of backbones with different statistics."""
    height, width = size
    return A.Compose(
        [
            A.Resize(height, width, interpolation=cv2.INTER_AREA),
            ToTensorV2(),
        ]
    )


@dataclass(frozen=True)
class AugmentationStrengths:
    """How hard one side is augmented, at ``strength`` 1: crop scale loss, aspect jitter, light jitter."""

    scale_loss: float
    aspect_jitter: float
    light: float
    saturation: float
    light_probability: float
    blur_probability: float


# Bundle photos vary a lot at test time (pose, light, framing); packshots are clean at test time too.
QUERY_AUGMENTATION = AugmentationStrengths(0.25, 0.1, 0.25, 0.1, 0.8, 0.1)
GALLERY_AUGMENTATION = AugmentationStrengths(0.15, 0.05, 0.1, 0.0, 0.5, 0.0)


def train_transform(
    size: Sequence[int],
    augmentation: AugmentationStrengths,
    strength: float = 1.0,
) -> A.Compose:
    """Crop jitter, flip, light and blur scaled by ``strength`` (0 gives :func:`eval_transform`)."""
    if strength <= 0:
        return eval_transform(size)
    height, width = size
    aspect = width / height
    jitter = augmentation.aspect_jitter
    return A.Compose(
        [
            A.RandomResizedCrop(
                size=(height, width),
                scale=(1.0 - augmentation.scale_loss * strength, 1.0),
                ratio=(aspect * (1 - jitter), aspect * (1 + jitter)),
                interpolation=cv2.INTER_AREA,
            ),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(
                brightness=augmentation.light * strength,
                contrast=augmentation.light * strength,
                saturation=augmentation.saturation * strength,
                hue=0.0,
                p=augmentation.light_probability,
            ),
            A.GaussianBlur(blur_limit=(3, 3), p=augmentation.blur_probability * strength),
            ToTensorV2(),
        ]
    )


def apply(transform: A.Compose, image: np.ndarray) -> torch.Tensor:
    """Run an albumentations pipeline on an ``(H, W, 3) uint8`` image; returns ``(3, H, W) uint8``."""
    return transform(image=image)["image"]
