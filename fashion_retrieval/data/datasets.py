"""Torch datasets: training bundles with their products and extra negatives, labelled training images
(other datasets' readers), and plain image lists.

Training randomness is a pure function of ``(seed, epoch, index)``: the batch sampler yields
``(index, epoch)`` keys (:mod:`fashion_retrieval.data.samplers`) and every draw of an item (product subset,
same-category negatives, mined negatives, the augmentation of each image) comes from its own stream
``keyed_rng(seed, epoch, index, stream, ...)``. No global generator is read, so an item is the same in any
worker, for any ``num_workers``, and after a resume; and enabling negatives does not change the
augmentation of the positives.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from fashion_retrieval.data.boxes import Box, region
from fashion_retrieval.data.catalogue import UNKNOWN_SECTION
from fashion_retrieval.data.samplers import ItemKey, keyed_rng
from fashion_retrieval.data.transforms import ImageTransform, apply, crop_fraction, load_rgb

if TYPE_CHECKING:  # training pipelines only: evaluation images never need albumentations
    import albumentations as A

_NO_IDS = np.empty(0, np.int64)


class Stream(IntEnum):
    """Independent random streams of one item; appending a member never changes the others."""

    SUBSAMPLE = 1  # which products of a large bundle are drawn
    SAME_CATEGORY = 2  # same-category negatives
    MINED = 3  # index-mined negatives
    QUERY_AUGMENT = 4  # the bundle photo's augmentation
    CATALOGUE_AUGMENT = 5  # each packshot's augmentation (keyed by its position in the item)
    IMAGE_AUGMENT = 6  # a labelled image's augmentation (LabelledImageDataset)
    VIEWS = 7  # an unlabelled image's views (data/pretrain.py MultiViewDataset)


@dataclass(frozen=True)
class TrainingBundle:
    """A training bundle and its ground-truth products; labels are integer ids for false-negative masking.

    ``section`` is the bundle's section (``UNKNOWN_SECTION`` if unknown); ``excluded_labels`` are further
    products that must never be its negatives (other colour variants of its articles when
    ``mask_same_article`` is on). ``query_box``: the query is this region of the photo (a garment's pixel
    box, ``x2``/``y2`` exclusive) instead of the whole photo; such an item is one garment and its product.
    """

    bundle_path: str
    product_paths: tuple[str, ...]
    bundle_label: int
    product_labels: tuple[int, ...]
    section: int = UNKNOWN_SECTION
    excluded_labels: tuple[int, ...] = ()
    query_box: Box | None = None


@dataclass(frozen=True)
class ProductTable:
    """Every catalogue product, indexed by product id (its row in ``product_dataset.csv``): the pool that
    extra negatives are drawn from.

    ``paths (G,)``; ``categories (G,)`` int category codes; ``sections (G,)`` int, ``UNKNOWN_SECTION`` for
    products never seen in a training bundle.
    """

    paths: tuple[str, ...]
    categories: np.ndarray
    sections: np.ndarray

    def category_pools(self) -> dict[tuple[int, int], np.ndarray]:
        """``(category, section) -> product ids`` of that category whose section is ``section`` or unknown
        (what a search within the section would also return); ``(category, UNKNOWN_SECTION)`` holds the whole
        category, for bundles of unknown section."""
        pools: dict[tuple[int, int], np.ndarray] = {}
        unknown = self.sections == UNKNOWN_SECTION
        known_sections = np.unique(self.sections[~unknown]).tolist()
        for category in np.unique(self.categories).tolist():
            in_category = self.categories == category
            pools[(category, UNKNOWN_SECTION)] = np.flatnonzero(in_category)
            for section in known_sections:
                pools[(category, section)] = np.flatnonzero(
                    in_category & ((self.sections == section) | unknown)
                )
        return pools


def draw_same_category_negatives(
    rng: np.random.Generator,
    anchor_categories: Sequence[int],
    pools: Mapping[int, np.ndarray],
    excluded: set[int],
    count: int,
    tries: int = 8,
) -> list[int]:
    """Up to ``count`` distinct products, each of the category of a random anchor (a drawn product).

    Args:
        rng: the item's stream.
        anchor_categories: category code of each drawn product (an anchor is picked uniformly per draw).
        pools: category code -> candidate product ids (already restricted to the bundle's section).
        excluded: product ids that must not be drawn (the bundle's products, masked variants).
        count: how many negatives.
        tries: rejection-sampling attempts before the exact (slower) filtered draw.

    Returns:
        product ids, fewer than ``count`` only when the anchors' categories hold no other candidate.
    """
    chosen: list[int] = []
    anchors = list(anchor_categories)
    while len(chosen) < count and anchors:
        category = anchors[int(rng.integers(len(anchors)))]
        pool = pools.get(category, _NO_IDS)
        pick = None
        for _ in range(tries if len(pool) else 0):  # fast path: the pool is usually large
            candidate = int(pool[rng.integers(len(pool))])
            if candidate not in excluded and candidate not in chosen:
                pick = candidate
                break
        if pick is None:
            allowed = [int(p) for p in pool if int(p) not in excluded and int(p) not in chosen]
            if not allowed:
                anchors = [c for c in anchors if c != category]  # this category is used up
                continue
            pick = allowed[int(rng.integers(len(allowed)))]
        chosen.append(pick)
    return chosen


def draw_mined_negatives(
    rng: np.random.Generator, mined: Sequence[int], count: int, pool: int | None, excluded: set[int]
) -> list[int]:
    """``count`` distinct products drawn uniformly from the first ``pool`` entries of ``mined`` (hardest
    first; ``None``: all of them) that are not ``excluded``; fewer if not enough remain."""
    candidates = list(dict.fromkeys(p for p in mined[:pool] if p >= 0 and p not in excluded))
    if len(candidates) <= count:
        return candidates
    picked = rng.choice(len(candidates), size=count, replace=False)
    return [candidates[i] for i in sorted(picked.tolist())]


def seeded_apply(transform: A.Compose, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Apply an albumentations pipeline with its randomness taken from ``rng`` only.

    ``Compose.set_random_state`` shares one numpy and one Python generator across all transforms (~30 us).
    ``Compose.set_random_seed`` would not do: it seeds every transform with the same seed, so e.g. the flip
    and the colour-jitter decisions would be the same draw, perfectly correlated.
    """
    transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
    return apply(transform, image)


def _key(key: ItemKey | int) -> tuple[int, int]:
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), 0


class BundleDataset(Dataset):
    """One item per bundle: its photo once, the packshots of (up to ``max_products`` of) its products, and
    extra negatives.

    Items, for a key ``(index, epoch)`` (a bare ``index`` means epoch 0): ``query (3, Hq, Wq)`` uint8,
    ``catalogue (P, 3, Hg, Wg)`` uint8 (drawn products first, then negatives), ``query_label`` (bundle id),
    ``catalogue_labels`` (P product ids), ``products`` (every product of the bundle, also those not drawn)
    and ``excluded`` (``products`` plus ``excluded_labels``: never negatives of this bundle).

    Negatives (need ``products``): ``same_category_negatives`` packshots of other products of the category
    of a drawn product, within the bundle's section or of unknown section
    (:func:`draw_same_category_negatives`); ``mined_negatives`` drawn from the bundle's mined list
    (:meth:`set_mined_negatives`, its top ``mined_pool``).
    A negative is never in ``excluded``, and each product appears at most once per item. Encoding the bundle
    photo once for all its products costs a third of encoding it once per (bundle, product) pair.
    ``query_crop`` is the region of the bundle photo to keep (see :func:`crop_fraction`); an item with a
    ``query_box`` keeps that box instead, grown by ``query_padding``. ``max_pixels``: see :func:`load_rgb`.
    """

    def __init__(
        self,
        bundles: Sequence[TrainingBundle],
        query_transform: A.Compose,
        catalogue_transform: A.Compose,
        max_products: int | None = None,
        query_crop: Sequence[float] | None = None,
        *,
        query_padding: float = 0.0,
        products: ProductTable | None = None,
        same_category_negatives: int = 0,
        mined_negatives: int = 0,
        mined_pool: int | None = None,
        seed: int = 0,
        max_pixels: int | None = None,
    ) -> None:
        if (same_category_negatives or mined_negatives) and products is None:
            raise ValueError("negatives need the product table (products=...)")
        self.bundles = list(bundles)
        self.query_crop = query_crop
        self.query_padding = query_padding
        self.query_transform = query_transform
        self.catalogue_transform = catalogue_transform
        self.max_products = max_products
        self.products = products
        self.same_category_negatives = same_category_negatives
        self.mined_negatives = mined_negatives
        self.mined_pool = mined_pool
        self.seed = seed
        self.max_pixels = max_pixels
        self.mined: dict[int, tuple[int, ...]] = {}
        self._pools = products.category_pools() if products is not None and same_category_negatives else {}

    def set_mined_negatives(self, negatives: Mapping[int, Sequence[int]]) -> None:
        """Bundle label -> product ids, hardest first (replaces the previous lists)."""
        self.mined = {int(bundle): tuple(int(p) for p in ids if p >= 0) for bundle, ids in negatives.items()}

    def __len__(self) -> int:
        return len(self.bundles)

    def draw(self, key: ItemKey | int) -> tuple[list[int], list[int]]:
        """Positions of the drawn products in ``bundle.product_labels``, and the negative product ids."""
        index, epoch = _key(key)
        bundle = self.bundles[index]
        chosen = list(range(len(bundle.product_labels)))
        if self.max_products and len(chosen) > self.max_products:
            rng = keyed_rng(self.seed, epoch, index, Stream.SUBSAMPLE)
            chosen = sorted(rng.choice(len(chosen), size=self.max_products, replace=False).tolist())
        excluded = set(bundle.product_labels) | set(bundle.excluded_labels)
        negatives: list[int] = []
        if self.same_category_negatives and self.products is not None:
            categories = [int(self.products.categories[bundle.product_labels[i]]) for i in chosen]
            # A section no training product has (or an unknown one) falls back to the whole category.
            pools = {
                c: self._pools.get((c, bundle.section), self._pools.get((c, UNKNOWN_SECTION), _NO_IDS))
                for c in set(categories)
            }
            rng = keyed_rng(self.seed, epoch, index, Stream.SAME_CATEGORY)
            negatives += draw_same_category_negatives(
                rng, categories, pools, excluded, self.same_category_negatives
            )
        mined = self.mined.get(bundle.bundle_label)
        if self.mined_negatives and mined:
            rng = keyed_rng(self.seed, epoch, index, Stream.MINED)
            negatives += draw_mined_negatives(
                rng, mined, self.mined_negatives, self.mined_pool, excluded | set(negatives)
            )
        return chosen, negatives

    def __getitem__(self, key: ItemKey | int) -> dict:
        index, epoch = _key(key)
        bundle = self.bundles[index]
        chosen, negatives = self.draw((index, epoch))
        paths = [bundle.product_paths[i] for i in chosen]
        if negatives:
            assert self.products is not None
            paths += [self.products.paths[p] for p in negatives]
        query_rng = keyed_rng(self.seed, epoch, index, Stream.QUERY_AUGMENT)
        photo = load_rgb(bundle.bundle_path, self.max_pixels)
        if bundle.query_box is None:
            query = crop_fraction(photo, self.query_crop)
        else:
            query = region(photo, bundle.query_box, self.query_padding)
        packshots = [
            seeded_apply(
                self.catalogue_transform,
                load_rgb(path, self.max_pixels),
                keyed_rng(self.seed, epoch, index, Stream.CATALOGUE_AUGMENT, j),
            )
            for j, path in enumerate(paths)
        ]
        return {
            "query": seeded_apply(self.query_transform, query, query_rng),
            "catalogue": torch.stack(packshots),
            "query_label": bundle.bundle_label,
            "catalogue_labels": [bundle.product_labels[i] for i in chosen] + negatives,
            "products": tuple(bundle.product_labels),
            "excluded": tuple(dict.fromkeys((*bundle.product_labels, *bundle.excluded_labels))),
        }


def pad_labels(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """``(B, L)`` long, row ``i`` = ``rows[i]`` padded with -1; ``L`` = the longest row unless ``width``."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out


def collate_bundles(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack bundle items into a training batch.

    Returns:
        ``query (B, 3, Hq, Wq)`` uint8; ``catalogue (P, 3, Hg, Wg)`` uint8: every item's drawn products and
        negatives, item after item; ``query_label (B,)`` bundle ids; ``catalogue_label (P,)`` product ids;
        ``query_products (B, L)`` long, -1 padded: every product of each bundle (also those not drawn);
        ``query_excluded (B, L')`` long, -1 padded: products never negatives of the bundle (its products,
        and other colour variants of its articles when masked). Masks are computed from these by the model
        (:func:`fashion_retrieval.miners.masks.pair_masks`): a product shared by two bundles of the batch is
        a positive of both wherever it appears.
    """
    return {
        "query": torch.stack([item["query"] for item in items]),
        "catalogue": torch.cat([item["catalogue"] for item in items]),
        "query_label": torch.tensor([item["query_label"] for item in items], dtype=torch.long),
        "catalogue_label": torch.tensor(
            [label for item in items for label in item["catalogue_labels"]], dtype=torch.long
        ),
        "query_products": pad_labels([item["products"] for item in items]),
        "query_excluded": pad_labels([item["excluded"] for item in items]),
    }


class ImageRegions(Dataset):
    """The images of a dataset by position, each as the region of its file the dataset reads: the base of
    :class:`ImageDataset`, :class:`LabelledImageDataset` and the pre-training views
    (:class:`fashion_retrieval.data.pretrain.MultiViewDataset`), which add their transform and fields.

    ``crop``: one region for every image, as fractions (:func:`crop_fraction`); ``boxes``: a region per
    image in pixels, ``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive, or ``None`` for the whole image
    (e.g. garment crops: several items may share one photo), grown by ``padding`` and clipped to the image.
    ``max_pixels``: see :func:`load_rgb`.
    """

    def __init__(
        self,
        paths: Sequence[str],
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
        crop: Sequence[float] | None = None,
        max_pixels: int | None = None,
    ) -> None:
        if boxes is not None and len(boxes) != len(paths):
            raise ValueError(f"{len(boxes)} boxes for {len(paths)} images")
        if boxes is not None and crop is not None:
            raise ValueError("give a fractional crop or per-image boxes, not both")
        self.paths = [str(p) for p in paths]
        self.boxes = boxes
        self.padding = padding
        self.crop = crop
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """Image ``index``'s region, ``(h, w, 3)`` uint8."""
        image = load_rgb(self.paths[index], self.max_pixels)
        if self.boxes is None:
            return crop_fraction(image, self.crop)
        return region(image, self.boxes[index], self.padding)


class ImageDataset(ImageRegions):
    """Items: ``image (3, H, W)`` uint8 (:meth:`ImageRegions.load`'s region through ``transform``) and
    ``index``, the position in ``paths`` (DDP-safe gathering)."""

    def __init__(
        self,
        paths: Sequence[str],
        transform: ImageTransform,
        crop: Sequence[float] | None = None,
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
        max_pixels: int | None = None,
    ) -> None:
        super().__init__(paths, boxes, padding, crop, max_pixels)
        self.transform = transform

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        return {"image": apply(self.transform, self.load(index)), "index": index}


class LabelledImageDataset(ImageRegions):
    """Training images with integer labels (a reader's training split, ``data=reader``), OML-style.

    Items, for a key ``(index, epoch)`` (a bare ``index`` means epoch 0): ``image (3, H, W)`` uint8 (the
    region ``boxes[index]`` grown by ``padding``, or the whole image where the box is ``None``, augmented
    from the stream ``(seed, epoch, index)``), ``label`` and ``index``. The default collate stacks them into
    the labelled batch :meth:`fashion_retrieval.models.module.RetrievalModule.labelled_pairs` reads.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        transform: A.Compose,
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
        seed: int = 0,
    ) -> None:
        if len(labels) != len(paths):
            raise ValueError(f"{len(paths)} images but {len(labels)} labels: one label per image")
        super().__init__(paths, boxes, padding)
        self.labels = [int(label) for label in labels]
        self.transform = transform
        self.seed = seed

    def __getitem__(self, key: ItemKey | int) -> dict[str, torch.Tensor | int]:
        index, epoch = _key(key)
        rng = keyed_rng(self.seed, epoch, index, Stream.IMAGE_AUGMENT)
        return {
            "image": seeded_apply(self.transform, self.load(index), rng),
            "label": self.labels[index],
            "index": index,
        }
