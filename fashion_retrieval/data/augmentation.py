"""Training augmentation: albumentations pipelines for bundle (query) and product (catalogue) images.

Hue is never jittered: colour variants of one article are our hardest negatives, so a hue shift would
turn a positive into a different product.

Only training imports this module (albumentations costs seconds to import); evaluation and search resize
with :func:`fashion_retrieval.data.transforms.eval_transform`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2


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
CATALOGUE_AUGMENTATION = AugmentationStrengths(0.15, 0.05, 0.1, 0.0, 0.5, 0.0)


def domain_randomisation(strength: float) -> list[A.BasicTransform]:
    """Photometric and texture randomisation, each step applied with probability ``strength`` (0: none).

    Rendered packshots and bundles are cleaner than photos: tone curves and gamma (exposure, camera
    response), sensor noise, and texture changes (sharpening, embossing, down-sampling, JPEG artefacts) keep
    the model from relying on rendering-clean surfaces. Every step is channel-uniform: no hue shift (see
    the module docstring)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"domain randomisation strength must be in [0, 1], got {strength}")
    if strength == 0:
        return []
    return [
        A.OneOf([A.RandomGamma(gamma_limit=(60, 150)), A.RandomToneCurve(scale=0.2)], p=strength),
        A.OneOf(
            [
                A.GaussNoise(std_range=(0.02, 0.08), per_channel=False),
                A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=False, elementwise=True),
            ],
            p=strength,
        ),
        A.OneOf(
            [
                A.Sharpen(alpha=(0.2, 0.6)),
                A.Emboss(alpha=(0.2, 0.6), strength=(0.3, 1.0)),
                A.Downscale(scale_range=(0.35, 0.7)),
                A.ImageCompression(quality_range=(30, 80)),
            ],
            p=strength,
        ),
    ]


def train_transform(
    size: Sequence[int],
    augmentation: AugmentationStrengths,
    strength: float = 1.0,
    domain_randomization: float = 0.0,
) -> A.Compose:
    """Crop jitter, flip, light and blur scaled by ``strength`` (0: resize only), then
    :func:`domain_randomisation` at ``domain_randomization``; both 0 give the pixels of
    :func:`~fashion_retrieval.data.transforms.eval_transform` (an albumentations pipeline still, so that
    :func:`~fashion_retrieval.data.datasets.seeded_apply` can seed it)."""
    randomisation = domain_randomisation(domain_randomization)
    height, width = size
    aspect = width / height
    jitter = augmentation.aspect_jitter
    steps: list[A.BasicTransform] = (
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
        ]
        if strength > 0
        else [A.Resize(height, width, interpolation=cv2.INTER_AREA)]
    )
    return A.Compose([*steps, *randomisation, ToTensorV2()])
