"""``generate_dataset``: stream a synthetic dataset in the challenge's on-disk format to a directory.

The parent process lays out the catalogue (a few small arrays), plans every bundle (one sequential
random stream) and writes all CSV rows in a fixed order; workers render and write images. Every
image depends only on (seed, item index), and results come back in submission order, so the output is
byte-identical for any ``num_workers``. Nothing grows with the number of images except the compact
layout and the bundle plans.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.data.captions import ATTRIBUTES_FILE, CAPTIONS_FILE
from fashion_retrieval.synthetic import captions as synthetic_text
from fashion_retrieval.synthetic import metadata as url_metadata
from fashion_retrieval.synthetic import writer
from fashion_retrieval.synthetic.catalogue import CatalogueLayout, spec_layout
from fashion_retrieval.synthetic.outfits import compose_bundles
from fashion_retrieval.synthetic.rng import Domain, item_rng, unique_ids
from fashion_retrieval.synthetic.scene import (
    BundlePlan,
    GarmentBox,
    SceneConfig,
    render_bundle,
    render_packshot,
)
from fashion_retrieval.synthetic.spec import SyntheticSpec
from fashion_retrieval.synthetic.taxonomy import CATEGORIES, SECTIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
_LOG_EVERY_S = 5.0
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


@dataclass
class GenerationReport:
    """What ``generate_dataset`` wrote and how fast (seconds are wall-clock for the whole call)."""

    out_dir: Path
    num_products: int
    num_bundles: int
    num_train_bundles: int
    num_test_bundles: int
    num_train_pairs: int
    num_test_pairs: int
    num_distractor_products: int
    num_boxes: int
    seconds: float
    images_per_second: float
    products_per_second: float
    bundles_per_second: float


def scene_config(spec: SyntheticSpec) -> SceneConfig:
    return SceneConfig(
        seed=spec.seed,
        product_size=spec.product_image_size,
        bundle_size=spec.bundle_image_size,
        product_jpeg_quality=spec.product_jpeg_quality,
        bundle_jpeg_quality=spec.bundle_jpeg_quality,
        blur_sigma_max=spec.blur_sigma_max,
        noise_sigma_max=spec.noise_sigma_max,
        occluder_probability=spec.occluder_probability,
        studio_probability=spec.studio_probability,
        min_visible_fraction=spec.min_visible_fraction,
        supersample=spec.supersample,
    )


# Worker state: set once per process (initializer), read by the render tasks.
_STATE: dict[str, Any] = {}


def _init_worker(layout: CatalogueLayout, bundle_ids: list[str], cfg: SceneConfig, out_dir: Path) -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe
    _STATE.update(layout=layout, bundle_ids=bundle_ids, cfg=cfg, out_dir=out_dir)


def _init_pool_worker(*args: Any) -> None:
    """Pool processes are ours alone: also keep freed image buffers in the heap (glibc), which avoids a
    page fault storm from mmap-ing and zeroing every multi-megabyte temporary (~20% faster)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 2**20)
    except (OSError, AttributeError):  # not glibc: keep the default allocator behaviour
        pass
    _init_worker(*args)


def _product_task(index: int) -> None:
    layout: CatalogueLayout = _STATE["layout"]
    cfg: SceneConfig = _STATE["cfg"]
    article, variant = layout.product_article(cfg.seed, index)
    image = render_packshot(article, variant, cfg, index)
    quality = int(
        item_rng(cfg.seed, Domain.PACKSHOT, index, 1).integers(
            cfg.product_jpeg_quality[0], cfg.product_jpeg_quality[1] + 1
        )
    )
    path = _STATE["out_dir"] / writer.product_image_path(layout.product_ids[index])
    writer.write_jpeg(path, image, quality)


def _bundle_task(plan: BundlePlan) -> list[GarmentBox]:
    cfg: SceneConfig = _STATE["cfg"]
    image, boxes = render_bundle(plan, _STATE["layout"], cfg)
    quality = int(
        item_rng(cfg.seed, Domain.SCENE, plan.index, 1).integers(
            cfg.bundle_jpeg_quality[0], cfg.bundle_jpeg_quality[1] + 1
        )
    )
    writer.write_jpeg(
        _STATE["out_dir"] / writer.bundle_image_path(_STATE["bundle_ids"][plan.index]), image, quality
    )
    return boxes


@contextlib.contextmanager
def _executor(
    num_workers: int, initargs: tuple[Any, ...]
) -> Iterator[Callable[[Callable[[T], R], Iterable[T], int], Iterator[R]]]:
    """An ordered ``imap(func, items, chunksize)``: in-process for one worker, else a process pool."""
    if num_workers <= 1:
        previous_threads = cv2.getNumThreads()
        saved = dict(_STATE)
        _init_worker(*initargs)
        try:
            yield lambda func, items, chunksize: map(func, items)
        finally:
            _STATE.clear()
            _STATE.update(saved)
            cv2.setNumThreads(previous_threads)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(num_workers, initializer=_init_pool_worker, initargs=initargs) as pool:
        yield lambda func, items, chunksize: pool.imap(func, items, chunksize)


class _Progress:
    """Logs items/s every few seconds and at the end of a phase."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.start = self.last = time.perf_counter()

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= _LOG_EVERY_S:
            self.last = now
            log.info("%s: %d/%d (%.1f/s)", self.what, self.done, self.total, self.done / (now - self.start))

    def finish(self) -> float:
        seconds = time.perf_counter() - self.start
        log.info("%s: %d in %.1fs (%.1f/s)", self.what, self.done, seconds, self.done / max(seconds, 1e-9))
        return seconds


def plan_dataset(spec: SyntheticSpec) -> tuple[CatalogueLayout, list[BundlePlan], np.ndarray, np.ndarray]:
    """Everything but the images: the catalogue layout, the bundle plans, and the dates (timeline days) of
    the bundle photos ``(B,)`` and of the product debuts ``(P,)`` (see ``synthetic.metadata``)."""
    layout = spec_layout(spec)
    days = url_metadata.bundle_days(spec.seed, spec.num_bundles)
    debut = url_metadata.debut_days(spec.seed, spec.num_products)
    plans = compose_bundles(
        layout,
        spec.seed,
        spec.num_bundles,
        spec.test_fraction,
        spec.section_weights,
        spec.bundle_size_weights,
        spec.popularity_exponent,
        spec.coverage_probability,
        bundle_days=days,
        product_debut=debut,
        lifetime_days=url_metadata.LIFETIME_DAYS,
    )
    return layout, plans, days, debut


def generate_dataset(
    spec: SyntheticSpec, out_dir: str | Path, *, num_workers: int = 1, overwrite: bool = False
) -> GenerationReport:
    """Write the dataset described by ``spec`` into ``out_dir`` (see docs/dataset.md for the format).

    ``num_workers`` processes render images (the output does not depend on it). Raises FileExistsError
    if ``out_dir`` holds anything but this same dataset, unless ``overwrite``.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    spec_dict = _json_roundtrip(asdict(spec))
    writer.prepare_output_dir(out, spec_dict, overwrite)
    layout, plans, days, debut = plan_dataset(spec)
    codes = url_metadata.product_codes(spec.seed, layout)
    product_ms = url_metadata.to_ms(url_metadata.upload_days(spec.seed, debut))
    bundle_ms = url_metadata.to_ms(days)
    bundle_codes, taken_codes = [""] * spec.num_bundles, set(codes)
    bundle_ids = unique_ids("B_", spec.seed, "bundle", spec.num_bundles)
    log.info(
        "planned %d products and %d bundles in %.1fs; rendering with %d worker(s) into %s",
        spec.num_products,
        spec.num_bundles,
        time.perf_counter() - start,
        num_workers,
        out,
    )
    cfg = scene_config(spec)
    workers = max(1, int(num_workers))
    chunk = max(1, min(64, spec.num_products // (workers * 16)))
    bundle_chunk = max(1, min(16, spec.num_bundles // (workers * 16)))
    stats: dict[str, Any] = {
        "pairs": Counter(),
        "sizes": Counter(),
        "uses": np.zeros(spec.num_products, np.int32),
        "dropped": 0,
        "boxes": 0,
        "pair_bundles": [],
        "pair_products": [],
    }
    with _executor(workers, (layout, bundle_ids, cfg, out)) as imap, contextlib.ExitStack() as stack:
        products_csv = writer.csv_writer(
            stack, out / challenge_format.PRODUCTS_FILE, challenge_format.PRODUCT_COLUMNS
        )
        for index, product_id in enumerate(layout.product_ids):
            products_csv.writerow(
                (
                    product_id,
                    writer.product_image_url(product_id, codes[index], int(product_ms[index])),
                    CATEGORIES[int(layout.category[index])].name,
                )
            )
        # Colour variants share an article: the (synthetic-only) file behind "mask same-article negatives".
        articles_csv = writer.csv_writer(
            stack, out / challenge_format.PRODUCT_ARTICLES_FILE, challenge_format.ARTICLE_COLUMNS
        )
        article_ids = unique_ids("A_", spec.seed, "article", len(layout.article_category))
        for index, product_id in enumerate(layout.product_ids):
            articles_csv.writerow((product_id, article_ids[int(layout.article[index])]))
        for name, (header, rows) in synthetic_text.text_files(spec.seed, layout).items():
            writer.csv_writer(stack, out / name, header).writerows(rows)
        progress = _Progress("products", spec.num_products)
        for _ in imap(_product_task, range(spec.num_products), chunk):
            progress.step()
        product_seconds = progress.finish()

        bundles_csv = writer.csv_writer(
            stack, out / challenge_format.BUNDLES_FILE, challenge_format.BUNDLE_COLUMNS
        )
        train_csv = writer.csv_writer(
            stack, out / challenge_format.TRAIN_MATCHES_FILE, challenge_format.MATCH_COLUMNS
        )
        test_csv = writer.csv_writer(
            stack, out / challenge_format.TEST_MATCHES_FILE, challenge_format.MATCH_COLUMNS
        )
        truth_csv = writer.csv_writer(
            stack, out / challenge_format.TEST_TRUTH_FILE, challenge_format.MATCH_COLUMNS
        )
        boxes_csv = writer.csv_writer(stack, out / writer.BOXES_FILE, challenge_format.BOX_COLUMNS)
        progress = _Progress("bundles", spec.num_bundles)
        for plan, boxes in zip(plans, imap(_bundle_task, plans, bundle_chunk)):
            bundle_id = bundle_ids[plan.index]
            bundle_codes[plan.index] = url_metadata.bundle_code(spec.seed, plan, boxes, codes, taken_codes)
            url = writer.bundle_image_url(bundle_id, bundle_codes[plan.index], int(bundle_ms[plan.index]))
            bundles_csv.writerow((bundle_id, plan.section, url))
            matches = truth_csv if plan.test else train_csv
            if plan.test:
                test_csv.writerow((bundle_id, ""))  # the public test file names the bundle only
            for box in boxes:
                product_id = layout.product_ids[box.product]
                category = CATEGORIES[int(layout.category[box.product])].name
                matches.writerow((bundle_id, product_id))
                boxes_csv.writerow((bundle_id, product_id, category, *box.box, f"{box.visible_fraction:.4f}"))
                stats["pairs"][(plan.test, category)] += 1
                stats["uses"][box.product] += 1
                stats["pair_bundles"].append(plan.index)
                stats["pair_products"].append(box.product)
            stats["boxes"] += len(boxes)
            stats["sizes"][len(boxes)] += 1
            stats["dropped"] += sum(item.product >= 0 for item in plan.items) - len(boxes)
            progress.step()
        bundle_seconds = progress.finish()
    metadata = _metadata(spec, spec_dict, layout, plans, stats)
    metadata["url_metadata"] = url_metadata.url_statistics(
        spec.seed, stats["pair_bundles"], stats["pair_products"], bundle_ms, product_ms, bundle_codes, codes
    )
    log.info("image URL metadata: %s", {k: v for k, v in metadata["url_metadata"].items() if k != "timeline"})
    writer.write_json(out / writer.METADATA_FILE, metadata)
    writer.finish_output_dir(out)
    seconds = time.perf_counter() - start
    counts = metadata["counts"]
    report = GenerationReport(
        out_dir=out,
        num_products=spec.num_products,
        num_bundles=spec.num_bundles,
        num_train_bundles=counts["train_bundles"],
        num_test_bundles=counts["test_bundles"],
        num_train_pairs=counts["train_pairs"],
        num_test_pairs=counts["test_pairs"],
        num_distractor_products=counts["distractor_products"],
        num_boxes=counts["boxes"],
        seconds=seconds,
        images_per_second=(spec.num_products + spec.num_bundles) / max(seconds, 1e-9),
        products_per_second=spec.num_products / max(product_seconds, 1e-9),
        bundles_per_second=spec.num_bundles / max(bundle_seconds, 1e-9),
    )
    log.info(
        "generated %d products (%.1f/s) and %d bundles (%.1f/s) in %.1fs into %s",
        spec.num_products,
        report.products_per_second,
        spec.num_bundles,
        report.bundles_per_second,
        seconds,
        out,
    )
    return report


def _json_roundtrip(value: dict[str, Any]) -> dict[str, Any]:
    """The spec as JSON stores it (tuples become lists), so it compares equal to a re-read file."""
    return json.loads(json.dumps(value))


def _metadata(
    spec: SyntheticSpec,
    spec_dict: dict[str, Any],
    layout: CatalogueLayout,
    plans: list[BundlePlan],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """metadata.json: spec, counts and histograms. Deterministic (no timings), like every other file."""
    uses: np.ndarray = stats["uses"]
    pairs: Counter = stats["pairs"]
    n_test = sum(plan.test for plan in plans)
    used = uses[uses > 0]
    return {
        "generator": writer.GENERATOR_NAME,
        "generator_version": writer.GENERATOR_VERSION,
        "seed": spec.seed,
        "spec": spec_dict,
        "files": {
            "products": challenge_format.PRODUCTS_FILE,
            "product_articles": challenge_format.PRODUCT_ARTICLES_FILE,
            "product_attributes": ATTRIBUTES_FILE,
            "product_captions": CAPTIONS_FILE,
            "bundles": challenge_format.BUNDLES_FILE,
            "train_matches": challenge_format.TRAIN_MATCHES_FILE,
            "test_bundles": challenge_format.TEST_MATCHES_FILE,
            "test_truth": challenge_format.TEST_TRUTH_FILE,
            "garment_boxes": writer.BOXES_FILE,
            "product_images": writer.PRODUCT_IMAGE_DIR,
            "bundle_images": writer.BUNDLE_IMAGE_DIR,
        },
        "counts": {
            "products": layout.num_products,
            "articles": len(layout.article_category),
            "bundles": len(plans),
            "train_bundles": len(plans) - n_test,
            "test_bundles": n_test,
            "train_pairs": sum(v for (test, _), v in pairs.items() if not test),
            "test_pairs": sum(v for (test, _), v in pairs.items() if test),
            "boxes": stats["boxes"],
            "distractor_products": int((uses == 0).sum()),
            "designated_distractor_products": int((~layout.eligible).sum()),
            "products_in_bundles": len(used),
            "listed_products_dropped_as_hidden": stats["dropped"],
        },
        "category_histogram": {c.name: int((layout.category == i).sum()) for i, c in enumerate(CATEGORIES)},
        "category_histogram_in_bundles": {
            c.name: int(pairs[(False, c.name)] + pairs[(True, c.name)]) for c in CATEGORIES
        },
        "section_histogram": {str(s): int((layout.section == s).sum()) for s in SECTIONS},
        "bundle_section_histogram": {str(s): sum(plan.section == s for plan in plans) for s in SECTIONS},
        "bundle_size_histogram": {str(k): stats["sizes"][k] for k in sorted(stats["sizes"])},
        "product_reuse": {
            "max_bundles_per_product": int(uses.max()) if len(uses) else 0,
            "mean_bundles_per_used_product": round(float(used.mean()), 3) if len(used) else 0.0,
        },
    }
