"""Safe output: the output-directory guard, atomic JPEG writes and the file names of the format.

Every file appears under its final name only once complete (temp file + ``os.replace``), so an
interrupted run never leaves a truncated JPEG or CSV. A directory holding something else is never
written into unless the caller asks for ``overwrite``, and even then only files of this format are
removed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashion_retrieval.data.captions import ATTRIBUTES_FILE, CAPTIONS_FILE
from fashion_retrieval.data.catalogue import (  # the challenge format: one definition, shared with the reader
    BOXES_FILE,
    BUNDLES_FILE,
    PRODUCT_ARTICLES_FILE,
    PRODUCTS_FILE,
    TEST_MATCHES_FILE,
    TEST_TRUTH_FILE,
    TRAIN_MATCHES_FILE,
)
from fashion_retrieval.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

# Bump the minor version when the output gains a file or changes: a directory written by another version is
# stale (``pipelines.generate.same_dataset_exists``) and is regenerated in place (``prepare_output_dir``).
# 1.1.0: product_articles.csv. 1.2.0: https image URLs with 11-digit codes and ts= timestamps (metadata.py),
# bundles composed in date order (so the pairs differ from 1.1.0's). 1.3.0: half the bundle URLs name an
# unlisted garment's code instead of a listed product's (15.4% of true pairs share the code, as in the real
# data); images, pairs and boxes are 1.2.0's. 1.4.0: product_attributes.csv and product_captions.csv
# (synthetic/captions.py); every other file but metadata.json is 1.3.0's, byte for byte. Older datasets still
# load, and ``generate.captions_only=true`` adds the two files to a 1.2.0 or 1.3.0 dataset in place.
GENERATOR_VERSION = "1.4.0"
# Versions whose catalogue (product ids, categories, articles and variants) this generator reproduces
# exactly: the text of their products can be written afterwards (``synthetic.captions.add_captions``).
SAME_CATALOGUE_VERSIONS = ("1.2.0", "1.3.0", GENERATOR_VERSION)

# The ``generator`` field of metadata.json names the module that wrote the dataset. Datasets written before
# the generators left the data package (issue 16) record the old module path: read back as today's name.
GENERATOR_NAME = "fashion_retrieval.synthetic"
COLLAGE_GENERATOR_NAME = "fashion_retrieval.synthetic.collage"
FORMER_GENERATOR_NAMES = {
    "fashion_retrieval.data.synthetic": GENERATOR_NAME,
    "fashion_retrieval.data.collage": COLLAGE_GENERATOR_NAME,
}

METADATA_FILE = "metadata.json"
MARKER_FILE = ".synthetic_in_progress.json"  # written first, removed last: names the spec being written
PRODUCT_IMAGE_DIR = "images/products"
BUNDLE_IMAGE_DIR = "images/bundles"

OUTPUT_FILES = (
    PRODUCTS_FILE,
    PRODUCT_ARTICLES_FILE,
    ATTRIBUTES_FILE,
    CAPTIONS_FILE,
    BUNDLES_FILE,
    TRAIN_MATCHES_FILE,
    TEST_MATCHES_FILE,
    TEST_TRUTH_FILE,
    BOXES_FILE,
    METADATA_FILE,
    MARKER_FILE,
)


# The real CSVs' URL shape (Inditex static assets): four hash folders, then the code-named file.
IMAGE_URL_HOST = "https://static.zara.net/assets/public"


def product_image_path(product_id: str) -> str:
    """Where a product's JPEG lives, relative to the dataset root (and the URL of datasets before 1.2.0)."""
    return f"{PRODUCT_IMAGE_DIR}/{product_id}.jpg"


def bundle_image_path(bundle_id: str) -> str:
    return f"{BUNDLE_IMAGE_DIR}/{bundle_id}.jpg"


def _asset_url(asset_id: str, code: str, suffix: str, timestamp_ms: int) -> str:
    digest = hashlib.blake2b(asset_id.encode(), digest_size=16).hexdigest()
    folders = f"{digest[:4]}/{digest[4:8]}/{digest[8:20]}/{digest[20:]}"
    name = f"{code}-{suffix}"
    return f"{IMAGE_URL_HOST}/{folders}/{name}/{name}.jpg?ts={int(timestamp_ms)}&w=750"


def product_image_url(product_id: str, code: str, timestamp_ms: int) -> str:
    """A packshot URL in the real data's style: its 11-digit ``code`` (``-p``: packshot) and upload
    timestamp; the loader maps it to :func:`product_image_path` by asset id."""
    return _asset_url(product_id, code, "p", timestamp_ms)


def bundle_image_url(bundle_id: str, code: str, timestamp_ms: int) -> str:
    """A bundle photo URL naming its lead product's ``code`` (``-e1``: an editorial photo)."""
    return _asset_url(bundle_id, code, "e1", timestamp_ms)


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode an (H, W, 3) uint8 RGB image as JPEG and write it atomically."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV only fails on invalid input
        raise RuntimeError(f"JPEG encoding failed for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def csv_writer(stack: contextlib.ExitStack, path: Path, header: Sequence[str]) -> Any:
    """A ``csv.writer`` into ``path`` that has written ``header``; the file appears, complete, when
    ``stack`` closes without an error (so an interrupted run leaves none of the dataset's CSVs)."""
    handle = stack.enter_context(atomic_open(path, "w", newline="", encoding="utf-8"))
    out = csv.writer(handle, lineterminator="\n")
    out.writerow(header)
    return out


def write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_metadata(path: Path) -> dict[str, Any]:
    """A dataset's ``metadata.json`` as a dict, its ``generator`` under today's module name (see
    ``FORMER_GENERATOR_NAMES``); ``ValueError`` naming the file and the way out when it is not a JSON object
    (a damaged or hand-edited file)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path}: not valid JSON ({error}); the dataset there is damaged: regenerate it with "
            "generate.overwrite=true (or delete the directory)"
        ) from error
    if not isinstance(payload, dict):
        raise ValueError(  # noqa: TRY004 - bad file content, not a wrong argument
            f"{path}: expected a JSON object, got {type(payload).__name__}; regenerate the dataset with "
            "generate.overwrite=true"
        )
    generator = payload.get("generator")
    if isinstance(generator, str):
        payload["generator"] = FORMER_GENERATOR_NAMES.get(generator, generator)
    return payload


def _recorded_spec(out_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(spec, generator version) recorded by a finished or interrupted run in ``out_dir``, if any."""
    for name in (METADATA_FILE, MARKER_FILE):
        path = out_dir / name
        if path.is_file():
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(payload, dict) and isinstance(payload.get("spec"), dict):
                return payload["spec"], payload.get("generator_version")
    return None, None


def _remove_stale_temp_files(out_dir: Path) -> None:
    """Temp files of a killed run (atomic writes leave ``.<name>.*.tmp`` behind only on SIGKILL)."""
    for folder in (out_dir, out_dir / PRODUCT_IMAGE_DIR, out_dir / BUNDLE_IMAGE_DIR):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _remove_dataset(out_dir: Path) -> None:
    """Delete the files of this format (CSVs, metadata, JPEGs under images/); leave anything else."""
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for folder in (PRODUCT_IMAGE_DIR, BUNDLE_IMAGE_DIR):
        for image in (out_dir / folder).glob("*.jpg") if (out_dir / folder).is_dir() else ():
            image.unlink()


def prepare_output_dir(out_dir: Path, spec: dict[str, Any], overwrite: bool) -> None:
    """Create ``out_dir`` or check it may be (re)written, then record the spec being generated.

    An empty directory, or one holding this very dataset (same spec and generator version, finished or
    interrupted), is written in place; the same spec from another generator version is replaced (its
    files removed first). Anything else raises FileExistsError unless ``overwrite``, which removes the
    previous dataset's files first.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        recorded, version = _recorded_spec(out_dir)
        same = recorded == spec and version == GENERATOR_VERSION
        # The same spec written by another generator version is this dataset, only stale: replace it.
        outdated = recorded == spec and version != GENERATOR_VERSION
        if outdated:
            log.warning(
                "%s holds this spec written by generator %s; regenerating it with %s",
                out_dir,
                version,
                GENERATOR_VERSION,
            )
            _remove_dataset(out_dir)
        elif not same:
            if not overwrite:
                what = (
                    "a different synthetic dataset"
                    if recorded is not None
                    else "files that are not this dataset"
                )
                raise FileExistsError(
                    f"{out_dir} is not empty: it holds {what}. Choose another directory or pass "
                    "overwrite=True (generate.overwrite=true) to replace it."
                )
            log.warning(
                "overwriting %s (it held %s)", out_dir, "another dataset" if recorded else "other files"
            )
            _remove_dataset(out_dir)
    _remove_stale_temp_files(out_dir)
    (out_dir / PRODUCT_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / BUNDLE_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    write_json(out_dir / MARKER_FILE, {"generator_version": GENERATOR_VERSION, "spec": spec})


def finish_output_dir(out_dir: Path) -> None:
    """The dataset is complete (metadata.json written): drop the in-progress marker."""
    (out_dir / MARKER_FILE).unlink(missing_ok=True)
