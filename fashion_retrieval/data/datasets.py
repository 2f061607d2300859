"""Torch datasets: training bundles with their products, and plain image lists for embedding."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import torch
from torch.utils.data import Dataset

from fashion_retrieval.data.transforms import apply, crop_fraction, load_rgb


@dataclass(frozen=True)
class TrainingBundle:
    """A training bundle and its ground-truth products; labels are integer ids for false-negative masking."""

    bundle_path: str
    product_paths: tuple[str, ...]
    bundle_label: int
    product_labels: tuple[int, ...]


class BundleDataset(Dataset):
    """One item per bundle: its photo once, and the packshots of (up to ``max_products`` of) its products.

    Items: ``query (3, Hq, Wq)``, ``gallery (P, 3, Hg, Wg)``, ``query_label``, ``gallery_labels`` (P) and
    ``all_product_labels`` (every product of the bundle, also those not drawn this time). Encoding the
    bundle photo once for all its products costs a third of encoding it once per (bundle, product) pair.
    ``query_crop`` is the region of the bundle photo to keep (see :func:`crop_fraction`).
    """

    def __init__(
        self,
        bundles: Sequence[TrainingBundle],
        query_transform: A.Compose,
        gallery_transform: A.Compose,
        max_products: int | None = None,
        query_crop: Sequence[float] | None = None,
    ) -> None:
        self.bundles = list(bundles)
        self.query_crop = query_crop
        self.query_transform = query_transform
        self.gallery_transform = gallery_transform
        self.max_products = max_products

    def __len__(self) -> int:
        return len(self.bundles)

    def __getitem__(self, index: int) -> dict:
        bundle = self.bundles[index]
        chosen: Sequence[int] = range(len(bundle.product_paths))
        if self.max_products and len(chosen) > self.max_products:
            # torch seeds Python's `random` in each worker (and Lightning per run): reproducible draws.
            chosen = sorted(random.sample(chosen, self.max_products))
        return {
            "query": apply(
                self.query_transform, crop_fraction(load_rgb(bundle.bundle_path), self.query_crop)
            ),
            "gallery": torch.stack(
                [apply(self.gallery_transform, load_rgb(bundle.product_paths[i])) for i in chosen]
            ),
            "query_label": bundle.bundle_label,
            "gallery_labels": [bundle.product_labels[i] for i in chosen],
            "all_product_labels": frozenset(bundle.product_labels),
        }


def collate_bundles(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack bundle items: ``query (B, 3, Hq, Wq)``, ``gallery (P, 3, Hg, Wg)`` (every drawn product) and
    ``positive_mask (B, P)`` bool, True where gallery ``j`` is a product of bundle ``i``: a product shared
    by two bundles of the batch is a positive of both, never a negative."""
    gallery_labels = [label for item in items for label in item["gallery_labels"]]
    mask = torch.tensor([[label in item["all_product_labels"] for label in gallery_labels] for item in items])
    return {
        "query": torch.stack([item["query"] for item in items]),
        "gallery": torch.cat([item["gallery"] for item in items]),
        "query_label": torch.tensor([item["query_label"] for item in items]),
        "gallery_label": torch.tensor(gallery_labels),
        "positive_mask": mask,
    }


class ImageDataset(Dataset):
    """Items: ``image (3, H, W)`` float32 and ``index``, the position in ``paths`` (DDP-safe gathering)."""

    def __init__(
        self, paths: Sequence[str], transform: A.Compose, crop: Sequence[float] | None = None
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.transform = transform
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = crop_fraction(load_rgb(self.paths[index]), self.crop)
        return {"image": apply(self.transform, image), "index": index}
