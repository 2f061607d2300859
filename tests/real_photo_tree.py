"""A tiny fabricated clothing-dataset-small tree for the real-photo scores (CI has no shared photos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# One flat colour per class (classes of the collage's CATEGORY_MAP), so a colour embedding separates them.
CLASS_COLOURS = {"dress": (200, 30, 30), "pants": (30, 30, 200), "shoes": (30, 160, 30)}
SPLIT_SIZES = {"test": 2, "train": 3, "validation": 1}


def write_real_tree(root: Path, split_sizes: dict[str, int] = SPLIT_SIZES) -> Path:
    """``root/<split>/{dress,pants,shoes}/<split>-<class>-<i>.jpg``, ``split_sizes[split]`` photos per class
    (by default 6 test photos (queries), 12 train + validation photos (gallery, the collage's products)),
    40 x 30 pixels."""
    rng = np.random.default_rng(0)
    for split, count in split_sizes.items():
        for name, colour in CLASS_COLOURS.items():
            for i in range(count):
                image = np.clip(np.asarray(colour) + rng.normal(0, 20, (40, 30, 3)), 0, 255).astype(np.uint8)
                path = root / split / name / f"{split}-{name}-{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    return root


def real_overrides(root: Path, cache: Path) -> list[str]:
    """Overrides pointing ``real_photos`` at a tree of :func:`write_real_tree`, with a tiny collage set."""
    return [
        f"real_photos.root={root}",
        f"real_photos.cache_dir={cache}",
        "real_photos.enabled=true",
        "real_photos.feature_cache=null",
        "real_photos.image_size=[32,32]",
        "real_photos.collage.num_bundles=8",
        "real_photos.collage.test_fraction=0.5",
        "real_photos.collage.bundle_image_size=[64,96]",
    ]
