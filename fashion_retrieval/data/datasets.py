"""Torch datasets: (bundle, product) training pairs and plain image lists for embedding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import albumentations as A
import torch
from torch.utils.data import Dataset

from fashion_retrieval.data.transforms import apply, load_rgb


@dataclass(frozen=True)
class Pair:
    """One ground-truth (bundle, product) pair; labels are integer ids used for false-negative masking."""

    bundle_path: str
    product_path: str
    bundle_label: int
    product_label: int


class PairDataset(Dataset):
    """Items: ``query (3, Hq, Wq)``, ``gallery (3, Hg, Wg)`` float32 and their integer labels."""

    def __init__(
        self, pairs: Sequence[Pair], query_transform: A.Compose, gallery_transform: A.Compose
    ) -> None:
        self.pairs = list(pairs)
        self.query_transform = query_transform
        self.gallery_transform = gallery_transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        pair = self.pairs[index]
        return {
            "query": apply(self.query_transform, load_rgb(pair.bundle_path)),
            "gallery": apply(self.gallery_transform, load_rgb(pair.product_path)),
            "query_label": pair.bundle_label,
            "gallery_label": pair.product_label,
        }


class ImageDataset(Dataset):
    """Items: ``image (3, H, W)`` float32 and ``index``, the position in ``paths`` (DDP-safe gathering)."""

    def __init__(self, paths: Sequence[str], transform: A.Compose) -> None:
        self.paths = [str(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        return {"image": apply(self.transform, load_rgb(self.paths[index])), "index": index}


class PairCollator:
    """Stacks pair items and adds ``positive_mask (B, B) bool``: entry (i, j) is True when gallery item j
    is a ground-truth product of query i, so a repeated product or two products of one bundle in the same
    batch are never pushed apart as negatives."""

    def __init__(self, bundle_products: Mapping[int, frozenset[int]]) -> None:
        self.bundle_products = bundle_products

    def __call__(self, items: Sequence[dict[str, torch.Tensor | int]]) -> dict[str, torch.Tensor]:
        query_labels = torch.tensor([item["query_label"] for item in items])
        gallery_labels = torch.tensor([item["gallery_label"] for item in items])
        mask = torch.tensor(
            [[int(g) in self.bundle_products[int(q)] for g in gallery_labels] for q in query_labels],
            dtype=torch.bool,
        )
        return {
            "query": torch.stack([item["query"] for item in items]),
            "gallery": torch.stack([item["gallery"] for item in items]),
            "query_label": query_labels,
            "gallery_label": gallery_labels,
            "positive_mask": mask,
        }
