"""Real-photo scores beside every synthetic figure (issue 14): how a model retrieves real garment photos.

Two measurements, both on clothing-dataset-small (``real_photos.root``, read in place, never copied):

- **category retrieval** (``clothing_small/``): the 372 ``test`` photos as queries against the 3,409
  ``train`` + ``validation`` photos, positives = the gallery photos of the query's class; ``precision@10``
  and ``map@R``, exactly as ``retrieval-eval reader=clothing_small`` computes them
  (:mod:`fashion_retrieval.evaluation.retrieval_sets`).
- **collage recall** (``collage/recall@15``): the real-photo collage set of ``generate-collage``
  (:mod:`fashion_retrieval.synthetic.collage`), whose products are those same ``train`` + ``validation``
  photos (embedded once for both) and whose bundles are collages of 1-4 of them. Its **test** bundles (160 of
  the 800 with the default spec: what a model trained on the collage set's training bundles never saw) are
  searched like challenge bundles, whole image, top 15 of all products; Recall@15 as the challenge counts it.
  The set is generated once per spec into ``<cache_dir>/collage/<digest>/`` (bundles only: its product URLs
  are the photos' own paths) and reused.

Every image is resized to ``real_photos.image_size`` (``null``: the backbone's native input size). How a
model embeds is a :class:`PhotoEncoder`: an encoder method (``forward``: the trained embedding,
``backbone_features``: the frozen backbone's pooled features) and optional heads for the query side
(clothing-small queries, collage bundles) and the gallery side (the photos as products). With a feature
cache, features are keyed by weights, preprocessing, ids and files (``fashion_retrieval.features``), so a
frozen backbone is embedded once per machine, not once per run.

Stages call :func:`real_photo_scores`, which returns ``real/<row>/...`` metrics, or, when the data is
absent and ``enabled: auto``, records why in ``real_photos.json`` in the run directory (the results table
shows it) and returns ``real/<row>/available = 0``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.data.readers import ImageList, load_clothing_small
from fashion_retrieval.evaluation.metrics import GroundTruth, retrieval_metrics
from fashion_retrieval.evaluation.real_photo_notes import record_note
from fashion_retrieval.evaluation.retrieval_sets import image_dataset, image_loader, score_set
from fashion_retrieval.features import FeatureCache, image_features
from fashion_retrieval.index.factory import FlatSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.locks import directory_lock
from fashion_retrieval.models.adapter_module import FeatureAdapterModule, apply_head
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.synthetic.collage import (
    CollageSpec,
    generate_collage,
    recorded_spec,
    same_collage_exists,
)

log = logging.getLogger(__name__)

PRECISION_K = 10
COLLAGE_K = 15
Side = Literal["query", "gallery"]
METHODS = ("forward", "backbone_features", "pooled_features")
Head = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RealPhotoSettings:
    """``real_photos:`` of the config. ``enabled``: ``auto`` (score when ``root`` exists, else record why),
    ``true`` (fail without it), ``false``. ``image_size``: ``(H, W)``, ``None`` for the native size.
    ``collage_bundles``: ``test`` (the collage set's test bundles) or ``all``. ``cache_dir``: the collage
    set; ``feature_cache``: where features are cached (``None``: computed in memory every time)."""

    root: str
    collage: CollageSpec
    cache_dir: str
    enabled: bool | str = "auto"
    image_size: tuple[int, int] | None = None
    query_split: str = "test"
    gallery_splits: tuple[str, ...] = ("train", "validation")
    collage_bundles: str = "test"
    feature_cache: str | None = None
    batch_size: int = 64
    num_workers: int = 0
    accelerator: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", str(self.root))
        object.__setattr__(self, "gallery_splits", tuple(str(s) for s in self.gallery_splits))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
            if len(self.image_size) != 2:
                raise ValueError(
                    f"real_photos.image_size must be [H, W] or null, got {list(self.image_size)}"
                )
        if str(self.enabled).lower() not in ("auto", "true", "false"):
            raise ValueError(f"real_photos.enabled must be auto, true or false, got {self.enabled!r}")
        if self.collage_bundles not in ("test", "all"):
            raise ValueError(f"real_photos.collage_bundles must be test or all, got {self.collage_bundles!r}")
        if Path(self.collage.source).resolve() != Path(self.root).resolve():
            raise ValueError(
                f"real_photos.collage.source ({self.collage.source}) must be real_photos.root ({self.root}): "
                "the collage's products are the gallery photos"
            )
        if tuple(self.collage.splits) != self.gallery_splits:
            raise ValueError(
                f"real_photos.collage.splits {list(self.collage.splits)} must be the gallery splits "
                f"{list(self.gallery_splits)}: the collage's products are the gallery photos"
            )

    @property
    def mode(self) -> str:
        return str(self.enabled).lower()


@dataclass
class PhotoEncoder:
    """How a model embeds real photos: ``encoder``'s ``method`` (``forward`` | ``backbone_features`` |
    ``pooled_features``) on images at ``native_size`` unless the settings give one, then ``query_head`` /
    ``gallery_head`` on the ``(N, D)`` features (``None``: as they are). Outputs are ``(N, D')`` float32,
    L2-normalised."""

    encoder: nn.Module
    method: str = "forward"
    native_size: tuple[int, int] | None = None
    query_head: Head | None = None
    gallery_head: Head | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.native_size is None:
            self.native_size = tuple(self.encoder.native_input_size)

    @classmethod
    def with_adapter(cls, encoder: nn.Module, module: FeatureAdapterModule) -> PhotoEncoder:
        """``encoder``'s backbone features through ``module``'s heads (``train-adapter``'s query head on
        queries, its catalogue head, none for the residual adapter, on the gallery)."""
        return cls(
            encoder,
            "backbone_features",
            query_head=lambda rows: apply_head(module, rows, "query"),
            gallery_head=lambda rows: apply_head(module, rows, "catalogue"),
        )

    @classmethod
    def with_own_head(cls, encoder: ImageEncoder) -> PhotoEncoder:
        """``encoder``'s own embedding, computed as its pooled backbone features then its head on both
        sides: the same vectors as ``forward``, but the feature cache keys them by the backbone alone, so
        heads trained on one frozen backbone (text_quickstart's seeds) share one embedding of the photos."""

        def head(rows: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return encoder.embed_features(torch.from_numpy(np.asarray(rows, np.float32))).numpy()

        return cls(encoder, "pooled_features", query_head=head, gallery_head=head)

    @property
    def encode(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``(B, 3, H, W)`` images -> ``(B, D)`` rows: ``method`` of ``encoder`` (L2-normalised, except
        ``pooled_features``, which only :meth:`with_own_head`'s head makes an embedding)."""
        return self.encoder if self.method == "forward" else getattr(self.encoder, self.method)

    def features(
        self,
        images: ImageList,
        size: Sequence[int],
        cache: FeatureCache | None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> np.ndarray:
        """``(N, D)`` features of ``images`` (whole images, or their boxes) at ``size``, before the heads
        (``batch_size``, ``num_workers``: the loader's without a cache; the cache has its own)."""
        if cache is None:
            return embed_loader(self.encode, image_loader(images, size, batch_size, num_workers))
        return image_features(cache, self.encoder, image_dataset(images, size), images.item_ids, self.method)

    def embed(
        self,
        images: ImageList,
        side: Side,
        size: Sequence[int],
        settings: RealPhotoSettings,
        cache: FeatureCache | None,
    ) -> np.ndarray:
        """``(N, D')`` embeddings of ``images`` as queries or as gallery items (through that side's head)."""
        with torch.no_grad():
            features = self.features(images, size, cache, settings.batch_size, settings.num_workers)
            return self.apply_head(features, side)

    def apply_head(self, features: np.ndarray, side: Side) -> np.ndarray:
        """``(N, D)`` features (of :attr:`encode`) -> ``(N, D')`` through the query or gallery head."""
        head = self.query_head if side == "query" else self.gallery_head
        return features if head is None else np.asarray(head(features), dtype=np.float32)


class RealPhotosUnavailableError(RuntimeError):
    """The real photos are not there (``enabled: auto`` records the reason and goes on)."""


def availability(settings: RealPhotoSettings) -> str | None:
    """Why the real photos cannot be scored (``"not available: <path> not found"``), or ``None``."""
    root = Path(settings.root)
    for split in (settings.query_split, *settings.gallery_splits):
        if not (root / split).is_dir():
            missing = root if not root.is_dir() else root / split
            return f"not available: {missing} not found"
    return None


def collage_dir(settings: RealPhotoSettings) -> Path:
    """Where the collage set of ``settings.collage`` lives: one folder per spec, under the cache."""
    payload = json.dumps(
        {"spec": recorded_spec(settings.collage), "product_images": "source"}, sort_keys=True
    )
    return Path(settings.cache_dir) / "collage" / hashlib.sha256(payload.encode()).hexdigest()[:16]


def ensure_collage(settings: RealPhotoSettings) -> Path:
    """The collage set's directory, generated (bundles only: products are the photos in place) when absent."""
    directory = collage_dir(settings)
    if same_collage_exists(settings.collage, directory, product_images="source"):
        return directory
    # Two evaluations started together would both generate it, and one would lose the other's rename: the
    # second waits for the first and then finds the set made.
    with directory_lock(directory.parent, "collage generation", wait=True):
        if not same_collage_exists(settings.collage, directory, product_images="source"):
            log.info("real photos: generating the collage set into %s (once per spec)", directory)
            generate_collage(settings.collage, directory, product_images="source")
    return directory


@dataclass(frozen=True)
class CollageBundles:
    """The scored collage bundles: ``images`` (whole bundle photos) and ``positives[i]``, gallery rows."""

    images: ImageList
    positives: tuple[np.ndarray, ...]


def collage_bundles(directory: Path, gallery: ImageList, which: str = "test") -> CollageBundles:
    """The bundles of the collage set in ``directory`` (``which``: ``test`` or ``all``) and their products
    as rows of ``gallery`` (matched by product id = photo file stem)."""
    files = [challenge_format.TEST_TRUTH_FILE] + (
        [challenge_format.TRAIN_MATCHES_FILE] if which == "all" else []
    )
    products: dict[str, list[str]] = {}
    for name in files:
        with open(directory / name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                products.setdefault(row["bundle_asset_id"], []).append(row["product_asset_id"])
    paths: dict[str, Path] = {}
    with open(directory / challenge_format.BUNDLES_FILE, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            bundle = row["bundle_asset_id"]
            paths[bundle] = challenge_format.resolve_image_path(
                directory, row["bundle_image_url"], "bundles", bundle
            )
    row_of = {item: j for j, item in enumerate(gallery.item_ids)}
    unknown = sorted({p for found in products.values() for p in found if p not in row_of})
    if unknown:
        raise ValueError(
            f"{directory}: {len(unknown)} collage product(s) are not gallery photos, e.g. {unknown[:3]}; "
            "regenerate the collage cache"
        )
    bundles = sorted(products)
    missing = [b for b in bundles if b not in paths]
    if missing:
        raise ValueError(f"{directory / challenge_format.BUNDLES_FILE}: bundles {missing[:3]} not listed")
    images = ImageList(
        paths=tuple(paths[b] for b in bundles), item_ids=tuple(bundles), categories=("bundle",) * len(bundles)
    )
    positives = tuple(np.unique([row_of[p] for p in products[b]]).astype(np.int64) for b in bundles)
    return CollageBundles(images=images, positives=positives)


def collage_recall(
    query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, bundles: CollageBundles
) -> float:
    """Recall@15 of ``(B, D)`` bundle embeddings searched among ``(G, D)`` product embeddings (exact inner
    product, every product eligible: the collage set has one section)."""
    index = EmbeddingIndex(
        gallery_embeddings, [str(j) for j in range(len(gallery_embeddings))], spec=FlatSpec()
    )
    k = min(COLLAGE_K, len(index))
    _, ranked = index.search(query_embeddings, k)
    scores = retrieval_metrics(ranked, GroundTruth.from_lists(bundles.positives), [k])
    return float(scores[f"recall@{k}"])


def single_device_cache(directory: str | Path, batch_size: int, accelerator: str) -> FeatureCache:
    """A feature cache in ``directory`` that extracts on one device at fp32 (a stage may run inside a
    distributed training's first process only): the entries every real-photo score shares."""
    options = {"accelerator": accelerator, "devices": 1, "precision": "32-true"}
    return FeatureCache(directory, batch_size=batch_size, trainer_options=options)


def feature_cache(settings: RealPhotoSettings) -> FeatureCache | None:
    """:func:`single_device_cache` of ``settings.feature_cache`` (``None``: no cache)."""
    if settings.feature_cache is None:
        return None
    return single_device_cache(settings.feature_cache, settings.batch_size, settings.accelerator)


def real_photo_metrics(model: PhotoEncoder, settings: RealPhotoSettings) -> dict[str, float]:
    """``clothing_small/precision@10``, ``clothing_small/map@R``, ``collage/recall@15`` (and the counts and
    image size) of ``model``; raises :class:`RealPhotosUnavailableError` when ``settings.root`` is
    incomplete."""
    reason = availability(settings)
    if reason is not None:
        raise RealPhotosUnavailableError(reason)
    assert model.native_size is not None
    size = settings.image_size or model.native_size
    cache = feature_cache(settings)
    data = load_clothing_small(
        settings.root, split=settings.query_split, gallery_splits=settings.gallery_splits
    )
    bundles = collage_bundles(ensure_collage(settings), data.gallery, settings.collage_bundles)
    gallery = model.embed(data.gallery, "gallery", size, settings, cache)
    queries = model.embed(data.queries, "query", size, settings, cache)
    overall, _ = score_set(queries, gallery, data, [PRECISION_K], True, FlatSpec())
    bundle_embeddings = model.embed(bundles.images, "query", size, settings, cache)
    return {
        f"clothing_small/precision@{PRECISION_K}": overall[f"precision@{PRECISION_K}"],
        "clothing_small/map@R": overall["map@R"],
        "clothing_small/num_queries": float(len(data.queries)),
        "clothing_small/num_gallery": float(len(data.gallery)),
        f"collage/recall@{COLLAGE_K}": collage_recall(bundle_embeddings, gallery, bundles),
        "collage/num_bundles": float(len(bundles.positives)),
        "image_height": float(size[0]),
        "image_width": float(size[1]),
    }


def real_photo_settings(cfg: DictConfig) -> RealPhotoSettings | None:
    """``cfg.real_photos`` built, or ``None`` for a config without the block (an older run's) or with
    ``enabled: false`` (its paths are then never resolved)."""
    node = cfg.get("real_photos")
    if node is None or str(node.get("enabled")).lower() == "false":
        return None
    return instantiate(node, _convert_="all")


def real_photo_scores(
    settings: RealPhotoSettings | None,
    model: PhotoEncoder | Callable[[], PhotoEncoder],
    row: str,
    output_dir: Path,
) -> dict[str, float]:
    """The real-photo metrics of one results row, keyed ``real/<row>/...`` (``row``: the synthetic metrics'
    prefix, e.g. ``val``, ``baseline/pretrained``, ``val_yolo``), with ``real/<row>/available``.

    ``settings`` ``None`` or ``enabled: false``: nothing. Data absent: ``enabled: true`` raises
    :class:`RealPhotosUnavailableError`; ``auto`` logs and records the reason in
    ``output_dir/real_photos.json`` (``{row: reason}``) and returns ``available = 0``. ``model`` may be
    a function building it (not called when nothing is scored).
    """
    if settings is None or settings.mode == "false":
        return {}
    prefix = f"real/{row}"
    reason = availability(settings)
    if reason is not None:
        if settings.mode == "true":
            raise RealPhotosUnavailableError(
                f"real_photos.enabled=true but the real photos are {reason} "
                "(set real_photos.root=..., or real_photos.enabled=auto to go on without them)"
            )
        log.warning("real photos for %s: %s (real_photos.root); the run goes on without them", row, reason)
        record_note(output_dir, row, reason)
        return {f"{prefix}/available": 0.0}
    scores = real_photo_metrics(model if isinstance(model, PhotoEncoder) else model(), settings)
    log.info("real photos (%s): %s", row, {k: round(v, 4) for k, v in scores.items()})
    return {f"{prefix}/available": 1.0, **{f"{prefix}/{k}": v for k, v in scores.items()}}
