"""A real-texture "complete the look" set: collages of clothing-dataset-small photos in the challenge format.

Each bundle is a collage of 1 to 4 real photos of single garments (at most one per class, like an outfit)
pasted on a background under strong augmentation (scale, rotation, shear, perspective, flip, light and
saturation jitter, blur); each product is one original photo, copied byte for byte as its packshot. The
output is the challenge's on-disk format (``product_dataset.csv``, ``bundles_dataset.csv``, the match
CSVs, ``bundle_garment_boxes.csv`` with each photo's box in its collage, ``images/{products,bundles}/``,
``metadata.json``), so train / validate / infer / evaluate run on it unchanged (docs/dataset.md).

The photos are read from their folder (``../shared/data/clothing-dataset-small``) and never copied into
the project: the output directory is generated data, like the synthetic set. Every collage depends only on
``(seed, bundle index)``; every file is written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import albumentations as A
import cv2
import numpy as np

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.data.catalogue import CatalogueError, list_examples
from fashion_retrieval.data.readers.clothing_small import list_split
from fashion_retrieval.data.transforms import load_rgb
from fashion_retrieval.io import atomic_open, atomic_path, is_safe_name
from fashion_retrieval.synthetic import writer
from fashion_retrieval.synthetic.rng import unique_ids

log = logging.getLogger(__name__)

# Bump when the output for the same spec changes: the version is part of the recorded spec, so a directory
# written by another version is regenerated.
COLLAGE_VERSION = "1.0.0"

# clothing-dataset-small class -> the challenge's product_description (conf/config.yaml garment_groups
# knows every one of these). "longsleeve" (long-sleeved tops of any kind) goes to the catch-all top.
CATEGORY_MAP: dict[str, str] = {
    "dress": "DRESS",
    "hat": "HAT",
    "longsleeve": "TOPS AND OTHERS",
    "outwear": "JACKET",
    "pants": "TROUSERS",
    "shirt": "SHIRT",
    "shoes": "SHOES",
    "shorts": "SHORTS",
    "skirt": "SKIRT",
    "t-shirt": "T-SHIRT",
}
ProductImages = Literal["copy", "source"]
# Image URLs are the local paths (images/products/<id>.jpg): there is no remote asset to point at.
# The photos carry no gender or age: every bundle is in one section, so the section filter never excludes.
SECTION = 1


@dataclass(frozen=True)
class CollageSpec:
    """What to generate. ``source``: the clothing-dataset-small root; ``splits``: which of its splits give
    products (the default leaves ``test`` out, so a model trained on collages can be measured on it);
    ``max_photos_per_class``: the first N photos of each class (sorted by split then file name), or all.
    ``bundle_size_weights``: P(1..4 photos per bundle); ``bundle_image_size``: ``(width, height)``;
    ``augment_strength`` scales every augmentation (0: photos only resized and placed)."""

    source: str
    seed: int = 0
    num_bundles: int = 800
    test_fraction: float = 0.2
    splits: tuple[str, ...] = ("train", "validation")
    max_photos_per_class: int | None = None
    bundle_size_weights: tuple[float, ...] = (0.2, 0.35, 0.3, 0.15)
    bundle_image_size: tuple[int, int] = (256, 384)
    bundle_jpeg_quality: int = 88
    augment_strength: float = 1.0
    overlap: float = 0.12  # tiles may spill this fraction of their slot into a neighbour (occlusion)

    def __post_init__(self) -> None:
        # Hydra hands lists (ListConfig): keep tuples, so the spec is hashable and records as plain JSON.
        for name in ("splits", "bundle_size_weights", "bundle_image_size"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "source", str(self.source))
        if self.num_bundles < 1:
            raise ValueError(f"num_bundles must be >= 1, got {self.num_bundles}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        weights = list(self.bundle_size_weights)
        if not 1 <= len(weights) <= 4 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"bundle_size_weights: 1 to 4 non-negative weights (P of 1..4 photos), got {weights}"
            )
        if len(self.bundle_image_size) != 2 or min(self.bundle_image_size) < 32:
            raise ValueError(f"bundle_image_size must be (width, height) >= 32, got {self.bundle_image_size}")
        if self.augment_strength < 0 or not 0.0 <= self.overlap < 0.5:
            raise ValueError("augment_strength must be >= 0 and overlap in [0, 0.5)")


@dataclass(frozen=True)
class Photo:
    """One source photo: its file, class and product id (the file's stem, a UUID in the real data)."""

    path: Path
    label: str
    product_id: str


@dataclass(frozen=True)
class CollagePlan:
    """Bundle ``index``: its photos (indices into the photo list, in paste order); ``test``: a test bundle."""

    index: int
    photos: tuple[int, ...]
    test: bool


@dataclass
class CollageReport:
    out_dir: Path
    num_products: int
    num_bundles: int
    num_train_bundles: int
    num_test_bundles: int
    num_pairs: int
    seconds: float


def list_photos(spec: CollageSpec) -> list[Photo]:
    """The source photos of ``spec.splits``, sorted; raises :class:`CatalogueError` for an unknown class
    directory or a product id found twice."""
    root = Path(spec.source)
    photos: list[Photo] = []
    per_class: dict[str, int] = {}
    for split in spec.splits:
        paths, labels, _ = list_split(root, split)
        for path, label in zip(paths, labels):
            if label not in CATEGORY_MAP:
                raise CatalogueError(
                    f"{root / split / label}: unknown class {label!r}; expected one of {sorted(CATEGORY_MAP)}"
                )
            if spec.max_photos_per_class is not None and per_class.get(label, 0) >= spec.max_photos_per_class:
                continue
            if not is_safe_name(path.stem):  # the file name becomes the product id, then a file name
                raise CatalogueError(f"{path}: file name is not a valid product id (docs/security.md)")
            per_class[label] = per_class.get(label, 0) + 1
            photos.append(Photo(path=path, label=label, product_id=path.stem))
    seen: dict[str, Path] = {}
    repeated = []
    for photo in photos:
        if photo.product_id in seen:
            repeated.append(f"{seen[photo.product_id]} and {photo.path}")
        seen[photo.product_id] = photo.path
    if repeated:
        raise CatalogueError(
            f"{root}: photos share a file name (the product id): {list_examples(repeated, 3)}"
        )
    return photos


def plan_collages(photos: Sequence[Photo], spec: CollageSpec) -> list[CollagePlan]:
    """Every bundle's photos: a size from ``bundle_size_weights`` (capped by the number of classes), then
    one photo from each of that many distinct classes; the last ``test_fraction`` of bundles (after a
    shuffle) are test bundles. One random stream, so the plan is a function of the spec alone."""
    rng = np.random.default_rng([spec.seed, 1])
    by_class: dict[str, list[int]] = {}
    for i, photo in enumerate(photos):
        by_class.setdefault(photo.label, []).append(i)
    classes = sorted(by_class)
    if not classes:
        raise CatalogueError(f"{spec.source}: no photos in splits {list(spec.splits)}")
    weights = np.asarray(spec.bundle_size_weights, np.float64)
    weights /= weights.sum()
    num_test = round(spec.num_bundles * spec.test_fraction)
    is_test = np.zeros(spec.num_bundles, bool)
    is_test[rng.permutation(spec.num_bundles)[:num_test]] = True
    plans = []
    for index in range(spec.num_bundles):
        size = min(int(rng.choice(len(weights), p=weights)) + 1, len(classes))
        chosen = rng.choice(len(classes), size=size, replace=False)
        members = tuple(int(rng.choice(by_class[classes[c]])) for c in chosen)
        plans.append(CollagePlan(index=index, photos=members, test=bool(is_test[index])))
    return plans


def photo_augmentation(strength: float) -> A.Compose:
    """Strong geometric and photometric change of one garment photo; the mask follows the geometry.

    Hue is kept, as in training (``data/transforms.py``): colour tells products apart."""
    s = strength
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(1.0 - 0.3 * s, 1.0 + 0.1 * s),
                rotate=(-25 * s, 25 * s),
                shear=(-8 * s, 8 * s),
                fit_output=True,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=min(1.0, s),
            ),
            A.Perspective(
                scale=(0.02 * s, 0.1 * s), fit_output=True, fill=0, fill_mask=0, p=0.7 * min(1.0, s)
            ),
            A.ColorJitter(
                brightness=0.35 * s, contrast=0.35 * s, saturation=0.3 * s, hue=0.0, p=0.9 * min(1.0, s)
            ),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2 * min(1.0, s)),
        ]
    )


def background(width: int, height: int, rng: np.random.Generator, texture: np.ndarray | None) -> np.ndarray:
    """``(height, width, 3) uint8``: a flat colour, a vertical gradient, or a blurred, tinted real photo."""
    kind = int(rng.integers(3)) if texture is not None else int(rng.integers(2))
    if kind == 0:
        canvas = np.empty((height, width, 3), np.float32)
        canvas[:] = rng.integers(40, 246, 3)
    elif kind == 1:
        top, bottom = rng.integers(30, 246, 3), rng.integers(30, 246, 3)
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        canvas = np.broadcast_to(top + (bottom - top) * ramp, (height, width, 3)).astype(np.float32)
    else:
        assert texture is not None
        canvas = cv2.resize(texture, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigmaX=float(rng.uniform(6, 14)))
        canvas = canvas * 0.6 + rng.integers(0, 256, 3) * 0.4
    noise = rng.normal(0.0, float(rng.uniform(0, 6)), (height, width, 1)).astype(np.float32)
    return np.clip(canvas + noise, 0, 255).astype(np.uint8)


def slots(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """``count`` (1..4) regions ``(x, y, w, h)`` tiling a portrait canvas: whole, halves, half + quarters,
    quarters."""
    half_w, half_h = width // 2, height // 2
    layouts = {
        1: [(0, 0, width, height)],
        2: [(0, 0, width, half_h), (0, half_h, width, height - half_h)],
        3: [
            (0, 0, width, half_h),
            (0, half_h, half_w, height - half_h),
            (half_w, half_h, width - half_w, height - half_h),
        ],
        4: [
            (x, y, w, h)
            for y, h in ((0, half_h), (half_h, height - half_h))
            for x, w in ((0, half_w), (half_w, width - half_w))
        ],
    }
    if count not in layouts:
        raise ValueError(f"a collage holds 1 to 4 photos, got {count}")
    return layouts[count]


def render_collage(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    rng: np.random.Generator,
    strength: float,
    overlap: float,
    texture: np.ndarray | None = None,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[float]]:
    """Paste augmented ``images`` (``(H, W, 3) uint8`` each, in paste order) on a background.

    Returns the ``(height, width, 3) uint8`` collage, each photo's box ``(x1, y1, x2, y2)`` in pixels
    (``x2``/``y2`` exclusive: the extent of its warped photo) and its visible fraction (the share of its
    pixels not covered by a later photo).
    """
    width, height = size
    canvas = background(width, height, rng, texture)
    owner = np.full((height, width), -1, np.int32)
    transform = photo_augmentation(strength)
    transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
    regions = slots(len(images), width, height)
    order = rng.permutation(len(regions))
    areas: list[int] = []
    boxes: list[tuple[int, int, int, int]] = []
    for i, image in enumerate(images):
        x, y, w, h = regions[int(order[i])]
        out = transform(image=image, mask=np.ones(image.shape[:2], np.uint8))
        tile, mask = out["image"], out["mask"]
        # Fit the tile in its slot grown by `overlap`, at a random size and place within it.
        grow_w, grow_h = int(w * overlap), int(h * overlap)
        room_w, room_h = w + 2 * grow_w, h + 2 * grow_h
        fit = min(room_w / tile.shape[1], room_h / tile.shape[0]) * float(rng.uniform(0.75, 1.0))
        tile_w, tile_h = max(8, int(tile.shape[1] * fit)), max(8, int(tile.shape[0] * fit))
        tile = cv2.resize(tile, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (tile_w, tile_h), interpolation=cv2.INTER_NEAREST) > 0
        left = x - grow_w + int(rng.integers(0, max(1, room_w - tile_w + 1)))
        top = y - grow_h + int(rng.integers(0, max(1, room_h - tile_h + 1)))
        # Clip the tile to the canvas.
        x1, y1 = max(0, left), max(0, top)
        x2, y2 = min(width, left + tile_w), min(height, top + tile_h)
        inside = mask[y1 - top : y2 - top, x1 - left : x2 - left]
        canvas[y1:y2, x1:x2][inside] = tile[y1 - top : y2 - top, x1 - left : x2 - left][inside]
        owner[y1:y2, x1:x2][inside] = i
        areas.append(int(inside.sum()))
        rows, cols = np.nonzero(inside)
        if len(rows):
            boxes.append(
                (
                    x1 + int(cols.min()),
                    y1 + int(rows.min()),
                    x1 + int(cols.max()) + 1,
                    y1 + int(rows.max()) + 1,
                )
            )
        else:
            boxes.append((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
    visible = [float((owner == i).sum()) / max(area, 1) for i, area in enumerate(areas)]
    return canvas, boxes, visible


def _csv(stack: contextlib.ExitStack, path: Path, header: Sequence[str]) -> Any:
    handle = stack.enter_context(atomic_open(path, "w", newline="", encoding="utf-8"))
    out = csv.writer(handle, lineterminator="\n")
    out.writerow(header)
    return out


def recorded_spec(spec: CollageSpec) -> dict[str, Any]:
    """The spec as ``metadata.json`` records it (JSON types, the source resolved, the collage version)."""
    payload = json.loads(json.dumps(asdict(spec)))
    payload["source"] = str(Path(spec.source).resolve())
    payload["collage_version"] = COLLAGE_VERSION
    return payload


def same_collage_exists(
    spec: CollageSpec, out_dir: str | Path, product_images: ProductImages = "copy"
) -> bool:
    """True when ``out_dir`` holds a finished collage set made from exactly this spec, its product images
    written the same way (:func:`generate_collage`)."""
    path = Path(out_dir) / writer.METADATA_FILE
    if not path.is_file():
        return False
    recorded = writer.read_metadata(path)
    return (
        recorded.get("spec") == recorded_spec(spec)
        and recorded.get("generator", writer.COLLAGE_GENERATOR_NAME) == writer.COLLAGE_GENERATOR_NAME
        and recorded.get("generator_version") == writer.GENERATOR_VERSION
        and recorded.get("product_images", "copy") == product_images
    )


def generate_collage(
    spec: CollageSpec, out_dir: str | Path, *, overwrite: bool = False, product_images: ProductImages = "copy"
) -> CollageReport:
    """Write the collage set of ``spec`` into ``out_dir`` (the format of docs/dataset.md).

    ``product_images``: ``copy`` writes each photo as ``images/products/<id>.jpg`` (a self-contained set);
    ``source`` writes no product image: ``product_image_url`` is the photo's absolute path, read in place
    (the real-photo scores' cached set, ``fashion_retrieval.evaluation.real_photos``).

    Raises :class:`CatalogueError` for a missing or malformed source, ``FileExistsError`` if ``out_dir``
    holds anything but this same set, unless ``overwrite`` (which removes only files of the format).
    """
    if product_images not in ("copy", "source"):
        raise ValueError(f"product_images must be copy or source, got {product_images!r}")
    start = time.perf_counter()
    out = Path(out_dir)
    photos = list_photos(spec)
    plans = plan_collages(photos, spec)
    spec_record = recorded_spec(spec)
    # The same guard and in-progress marker as the synthetic generator: never write into foreign files.
    writer.prepare_output_dir(out, spec_record, overwrite)
    bundle_ids = unique_ids("C_", spec.seed, "collage", spec.num_bundles)
    pairs = {"train": 0, "test": 0}
    uses = np.zeros(len(photos), np.int64)
    category_pairs: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        products_csv = _csv(stack, out / challenge_format.PRODUCTS_FILE, challenge_format.PRODUCT_COLUMNS)
        for photo in photos:
            if product_images == "source":
                products_csv.writerow(
                    (photo.product_id, str(photo.path.resolve()), CATEGORY_MAP[photo.label])
                )
                continue
            url = f"{writer.PRODUCT_IMAGE_DIR}/{photo.product_id}.jpg"
            products_csv.writerow((photo.product_id, url, CATEGORY_MAP[photo.label]))
            with atomic_path(out / url) as tmp:
                tmp.write_bytes(photo.path.read_bytes())  # the original photo is the packshot
        bundles_csv = _csv(stack, out / challenge_format.BUNDLES_FILE, challenge_format.BUNDLE_COLUMNS)
        train_csv = _csv(stack, out / challenge_format.TRAIN_MATCHES_FILE, challenge_format.MATCH_COLUMNS)
        test_csv = _csv(stack, out / challenge_format.TEST_MATCHES_FILE, challenge_format.MATCH_COLUMNS)
        truth_csv = _csv(stack, out / challenge_format.TEST_TRUTH_FILE, challenge_format.MATCH_COLUMNS)
        boxes_csv = _csv(stack, out / challenge_format.BOXES_FILE, challenge_format.BOX_COLUMNS)
        for plan in plans:
            rng = np.random.default_rng([spec.seed, 2, plan.index])
            images = [load_rgb(str(photos[i].path)) for i in plan.photos]
            texture_photo = int(rng.integers(len(photos)))
            texture = load_rgb(str(photos[texture_photo].path)) if texture_photo not in plan.photos else None
            canvas, boxes, visible = render_collage(
                images, tuple(spec.bundle_image_size), rng, spec.augment_strength, spec.overlap, texture
            )
            bundle_id = bundle_ids[plan.index]
            url = f"{writer.BUNDLE_IMAGE_DIR}/{bundle_id}.jpg"
            writer.write_jpeg(out / url, canvas, spec.bundle_jpeg_quality)
            bundles_csv.writerow((bundle_id, SECTION, url))
            if plan.test:
                test_csv.writerow((bundle_id, ""))  # the public test file names the bundle only
            for i, box, fraction in zip(plan.photos, boxes, visible):
                photo = photos[i]
                category = CATEGORY_MAP[photo.label]
                (truth_csv if plan.test else train_csv).writerow((bundle_id, photo.product_id))
                boxes_csv.writerow((bundle_id, photo.product_id, category, *box, f"{fraction:.4f}"))
                pairs["test" if plan.test else "train"] += 1
                uses[i] += 1
                category_pairs[category] = category_pairs.get(category, 0) + 1
    num_test = sum(plan.test for plan in plans)
    metadata = {
        "generator": writer.COLLAGE_GENERATOR_NAME,
        "generator_version": writer.GENERATOR_VERSION,
        "seed": spec.seed,
        "spec": spec_record,
        "product_images": product_images,
        "category_map": CATEGORY_MAP,
        "section": SECTION,
        "counts": {
            "products": len(photos),
            "bundles": len(plans),
            "train_bundles": len(plans) - num_test,
            "test_bundles": num_test,
            "train_pairs": pairs["train"],
            "test_pairs": pairs["test"],
            "distractor_products": int((uses == 0).sum()),
        },
        "category_histogram": {
            c: sum(CATEGORY_MAP[p.label] == c for p in photos) for c in sorted(set(CATEGORY_MAP.values()))
        },
        "category_histogram_in_bundles": dict(sorted(category_pairs.items())),
        "bundle_size_histogram": {str(k): sum(len(p.photos) == k for p in plans) for k in range(1, 5)},
    }
    writer.write_json(out / writer.METADATA_FILE, metadata)
    writer.finish_output_dir(out)
    report = CollageReport(
        out_dir=out,
        num_products=len(photos),
        num_bundles=len(plans),
        num_train_bundles=len(plans) - num_test,
        num_test_bundles=num_test,
        num_pairs=pairs["train"] + pairs["test"],
        seconds=time.perf_counter() - start,
    )
    log.info("collage: %s", report)
    return report
