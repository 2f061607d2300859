"""Difficulty check of a generated dataset: how far does a colour histogram get?

``python -m fashion_retrieval.synthetic.difficulty DATA_DIR`` prints, on the test bundles:

* random Recall@15 and whole-photo colour-histogram Recall@15 (should be about equal: the photo's colours
  say little about which products are in it);
* with the ground-truth garment box cropped (an oracle detector), how often the colour histogram ranks
  the exact product first / in the top 15, and how often a colour variant of the same article outranks it.

Recall@15 here is per bundle: the share of its products found in the first 15, averaged over bundles.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.synthetic import writer
from fashion_retrieval.synthetic.catalogue import spec_layout
from fashion_retrieval.synthetic.spec import SyntheticSpec


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def colour_histogram(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """L2-normalised square-rooted 12x4x4 HSV histogram of a BGR image (optionally masked)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], mask, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / max(float(hist.sum()), 1.0))
    return hist / (np.linalg.norm(hist) + 1e-9)


def packshot_histogram(path: str | Path) -> np.ndarray:
    """:func:`colour_histogram` of a packshot's foreground: pixels clearly different from the light
    background (its corner pixel); the whole image when too few are."""
    image = cv2.imread(str(path))
    distance = np.abs(image.astype(np.int16) - image[2, 2].astype(np.int16)).max(axis=2)
    mask = (distance > 25).astype(np.uint8)
    return colour_histogram(image, mask if mask.sum() > 30 else None)


def difficulty(data_dir: str | Path, k: int = 15, seed: int = 0) -> dict[str, float]:
    """The figures described in the module docstring, as a dict."""
    root = Path(data_dir)
    meta = writer.read_metadata(root / writer.METADATA_FILE)
    s = SyntheticSpec(**meta["spec"])
    layout = spec_layout(s)
    index = {product: i for i, product in enumerate(layout.product_ids)}
    hists = np.stack([packshot_histogram(root / writer.product_image_path(p)) for p in layout.product_ids])
    truth: dict[str, list[int]] = defaultdict(list)
    for bundle, product in _rows(root / challenge_format.TEST_TRUTH_FILE):
        truth[bundle].append(index[product])
    boxes: dict[str, list[tuple[int, int, int, int, int]]] = defaultdict(list)
    for bundle, product, _, x1, y1, x2, y2, _ in _rows(root / writer.BOXES_FILE):
        boxes[bundle].append((index[product], int(x1), int(y1), int(x2), int(y2)))
    rng = np.random.default_rng(seed)
    whole, random_hits, top1, topk, variant_above = [], [], [], [], []
    for bundle, products in truth.items():
        photo = cv2.imread(str(root / writer.bundle_image_path(bundle)))
        wanted = set(products)
        ranked = np.argsort(-(hists @ colour_histogram(photo)))[:k]
        whole.append(len(wanted & set(ranked.tolist())) / len(wanted))
        random_hits.append(len(wanted & set(rng.choice(len(hists), k, replace=False).tolist())) / len(wanted))
        for product, x1, y1, x2, y2 in boxes[bundle]:
            scores = hists @ colour_histogram(photo[y1:y2, x1:x2])
            rank = int((scores > scores[product]).sum())
            top1.append(rank == 0)
            topk.append(rank < k)
            siblings = np.flatnonzero(layout.article == layout.article[product])
            siblings = siblings[siblings != product]
            if len(siblings):
                variant_above.append(bool((scores[siblings] > scores[product]).any()))
    return {
        "test_bundles": float(len(truth)),
        "products": float(len(hists)),
        f"random_recall@{k}": float(np.mean(random_hits)),
        f"colour_histogram_recall@{k}": float(np.mean(whole)),
        "gt_crop_top1": float(np.mean(top1)),
        f"gt_crop_top{k}": float(np.mean(topk)),
        "gt_crop_variant_outranks_product": float(np.mean(variant_above)) if variant_above else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Colour-histogram difficulty check of a synthetic dataset.")
    parser.add_argument("data_dir")
    args = parser.parse_args()
    for name, value in difficulty(args.data_dir).items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
