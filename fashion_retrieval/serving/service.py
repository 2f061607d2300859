"""What ``serve`` answers, without HTTP: a run's :class:`~fashion_retrieval.search.retriever.Retriever`
loaded once, with its variants for the detectors a request may choose (re-ranking is per call), the
catalogue's product facts, the ground truth the dataset gives, and the run's description
(docs/serving.md).

With a text model (a ``train-text`` run: ``run_dir`` itself, or ``serve.text_run_dir`` beside another run),
it also answers text and composed queries (:meth:`SearchService.search_text`,
:class:`~fashion_retrieval.search.text.TextSearch`).

A :class:`SearchService` holds nothing a request changes except through its ``search_*`` methods, which
take its lock: a ``Retriever`` searches one call at a time (its chain's bundle priors and clock are bound
per call), and torch already spreads one search over the cores. More parallel searches come from more
worker processes (``serve.workers``), each with its own service.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import fashion_retrieval
from fashion_retrieval.data.transforms import ImageReadError, decode_rgb
from fashion_retrieval.io import is_safe_name
from fashion_retrieval.search.retriever import Crop, Retriever, SearchResult
from fashion_retrieval.search.run_config import BEST_CHECKPOINT
from fashion_retrieval.serving.schemas import Options, TextQuery
from fashion_retrieval.serving.spec import ServiceSpec, text_run_of

if TYPE_CHECKING:
    from fashion_retrieval.search.text import TextSearch

log = logging.getLogger(__name__)

# The detectors a request may name, by the class the config builds.
DETECTOR_TARGETS = {
    "fashion_retrieval.detection.zones.WholeImageDetector": "none",
    "fashion_retrieval.detection.zones.ZoneDetector": "zones",
    "fashion_retrieval.detection.yolo.YoloDetector": "yolo",
}
# Detectors that need no weights: always offered beside the run's own.
BUILTIN_DETECTORS = ("none", "zones")
# Formats an upload may have (OpenCV decodes them; the header check knows them) and well-known others,
# refused by name rather than as "not an image".
UPLOAD_FORMATS = ("JPEG", "PNG", "WebP")
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif")
PROVENANCE_FILE = "provenance.json"
METRICS_FILE = "metrics.json"
NO_TEXT_MODEL = (
    "this service has no text model: serve a train-text run (serve run_dir=<train-text run>), or add one "
    "to this run with serve.text_run_dir=<train-text run>"
)


class ServiceError(Exception):
    """A request the service refuses: ``status`` (an HTTP 4xx code) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_text(text_run: Path | None, settings: Mapping[str, Any]) -> TextSearch | None:
    """The towers and exported catalogue of ``text_run`` (``serve.text_weight`` and ``serve.fusion`` for
    composed queries), or ``None`` without one."""
    if text_run is None:
        return None
    # Imported here: the text tower needs transformers, which a service without text never imports.
    from fashion_retrieval.search.text import TextSearch

    return TextSearch.from_run_dir(
        text_run,
        text_weight=float(settings.get("text_weight", 1.0)),
        fusion=str(settings.get("fusion", "auto")),
    )


def image_format(data: bytes) -> str | None:
    """The format of encoded image ``data`` from its first bytes: ``JPEG``, ``PNG``, ``WebP``, ``GIF``,
    ``HEIF/AVIF``, ``BMP``, ``TIFF``, or ``None`` (not an image format we know)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "HEIF/AVIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def upload_problem(data: bytes) -> tuple[int, str] | None:
    """``(HTTP status, message)`` when ``data`` is not an upload to decode (empty, not an image, a format
    other than :data:`UPLOAD_FORMATS`); ``None`` when it may be decoded (its header is checked then)."""
    if not data:
        return 400, "the uploaded image is empty (0 bytes)"
    found = image_format(data)
    if found is None:
        return 400, "the upload is not an image (expected JPEG, PNG or WebP)"
    if found not in UPLOAD_FORMATS:
        return 415, f"{found} images are not supported: send a JPEG, PNG or WebP photo"
    return None


def detector_name(detector_config: Mapping[str, Any] | DictConfig) -> str:
    """``none``, ``zones`` or ``yolo`` for a ``detector:`` config (its class's name when it is another)."""
    target = str(detector_config.get("_target_", ""))
    return DETECTOR_TARGETS.get(target, target.rsplit(".", 1)[-1])


def builtin_detector(name: str) -> DictConfig:
    """The package's ``conf/detector/<name>.yaml`` (a detector that needs no weights)."""
    path = Path(fashion_retrieval.__file__).parent / "conf" / "detector" / f"{name}.yaml"
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig)
    return config


def json_score(value: float) -> float | None:
    """A score for JSON: ``None`` for a slot filled outside the crops' lists (NaN is not JSON)."""
    return None if math.isnan(value) else value


def crop_json(crop: Crop | None) -> dict[str, Any] | None:
    if crop is None:
        return None
    return {"box": None if crop.box is None else list(crop.box), "label": crop.label, "score": crop.score}


class SearchService:
    """A run's search behind one lock (module docstring).

    ``retriever``: the run's (its detector is the default); the variants for the other detectors (``none``,
    ``zones``) share its encoder, index and catalogue; re-ranking is switched off per call. ``run_dir``:
    where ``/info`` reads the run's commit and validation metrics. ``text``: the dual encoder of text and
    composed queries (``None``: they are refused); its catalogue must be the retriever's products.
    """

    def __init__(
        self,
        retriever: Retriever,
        run_dir: Path | None = None,
        checkpoint: Path | None = None,
        text: TextSearch | None = None,
    ):
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.lock = threading.Lock()
        cfg = retriever.cfg
        self.default_detector = detector_name(cfg.detector)
        self.rerank_steps = list((cfg.reranker.get("steps") or {}).keys())
        detectors = {self.default_detector: cfg.detector}
        for name in BUILTIN_DETECTORS:
            detectors.setdefault(name, builtin_detector(name))
        self.retrievers: dict[str, Retriever] = {}
        for name, detector in detectors.items():
            if name == self.default_detector:
                self.retrievers[name] = retriever
                continue
            variant = copy.deepcopy(cfg)
            variant.detector = detector
            self.retrievers[name] = Retriever(variant, retriever.model, retriever.datamodule, retriever.index)
        self.retriever = retriever
        catalogue = retriever.catalogue
        products = catalogue.products
        self.products = {
            pid: {"category": category, "section": int(section), "path": Path(path)}
            for pid, category, section, path in zip(
                retriever.product_ids,
                retriever.categories,
                retriever.known_sections.tolist(),
                products.set_index("product_asset_id").loc[retriever.product_ids, "image_path"],
            )
        }
        bundles = catalogue.bundles
        self.bundle_paths = dict(zip(bundles["bundle_asset_id"], map(Path, bundles["image_path"])))
        self.bundle_sections = {b: int(s) for b, s in catalogue.bundle_sections().items()}
        self.splits = {
            "val": list(retriever.datamodule.val_bundle_ids),
            "test": list(catalogue.searchable_test_bundle_ids),
        }
        self.truth = self._truth()
        self.text = text
        if text is not None:
            unknown = [product for product in text.ids if product not in self.products]
            if unknown:
                raise ValueError(
                    f"{text.source}: {len(unknown)} of its {len(text.ids)} products are not in this "
                    f"service's catalogue (e.g. {unknown[0]!r}): the text run was trained on other data"
                )
            missing = len(self.products) - len(text.ids)
            if missing:
                log.warning("text queries: %d catalogue products have no text-run embedding", missing)
            text.sections = np.asarray([self.products[p]["section"] for p in text.ids], dtype=np.int64)

    @classmethod
    def from_spec(cls, spec: ServiceSpec) -> SearchService:
        """Load the spec's encoder, index, detectors, re-ranking chain and catalogue (once), and its text
        run's towers when it has one."""
        retriever = Retriever.from_config(spec.config, spec.checkpoint)
        return cls(retriever, spec.run_dir, spec.checkpoint, load_text(spec.text_run, spec.settings))

    @classmethod
    def from_run_dir(
        cls, run_dir: str | Path, overrides: Sequence[str] = (), text_run_dir: str | Path | None = None
    ) -> SearchService:
        """A run directory's service (``overrides``: plain ``key=value`` values, as
        :meth:`~fashion_retrieval.search.retriever.Retriever.from_run_dir`), with text as
        :func:`text_run_of` finds it."""
        run = Path(run_dir)
        text = load_text(text_run_of(run, text_run_dir), {})
        return cls(Retriever.from_run_dir(run, overrides), run, run / BEST_CHECKPOINT, text)

    def _truth(self) -> dict[str, list[str]]:
        """Ground-truth products of the validation bundles (training matches held out by the data module)
        and, when the dataset ships it (``evaluate.truth_path``, synthetic data), of the test bundles."""
        truth = self.retriever.catalogue.products_of(self.splits["val"])
        truth_path = self.retriever.cfg.get("evaluate", {}).get("truth_path")
        if truth_path and Path(truth_path).is_file():
            pairs = pd.read_csv(truth_path, dtype=str, usecols=["bundle_asset_id", "product_asset_id"])
            for bundle, rows in pairs.groupby("bundle_asset_id", sort=False):
                truth.setdefault(str(bundle), list(rows["product_asset_id"]))
        return truth

    # -- look-ups -----------------------------------------------------------------------------------------
    @staticmethod
    def checked_id(kind: str, asset_id: str) -> str:
        """``asset_id`` when it is a safe name (:data:`fashion_retrieval.io.SAFE_NAME`), else a 400."""
        if not is_safe_name(asset_id):
            raise ServiceError(400, f"{kind} id {asset_id[:80]!r} is not a valid id (letters, digits, _ . -)")
        return asset_id

    def product(self, product_id: str) -> dict[str, Any]:
        """A product's facts, or a 404 naming the id."""
        found = self.products.get(self.checked_id("product", product_id))
        if found is None:
            raise ServiceError(404, f"unknown product id {product_id!r}")
        return {
            "product_asset_id": product_id,
            "category": found["category"],
            "section": found["section"],
            "image_url": f"/products/{product_id}/image",
        }

    def product_image(self, product_id: str) -> Path:
        self.product(product_id)
        return self.products[product_id]["path"]

    def bundle_image(self, bundle_id: str) -> Path:
        path = self.bundle_paths.get(self.checked_id("bundle", bundle_id))
        if path is None:
            raise ServiceError(404, f"unknown bundle id {bundle_id!r}")
        return path

    def random_bundle(self, split: str, rng: random.Random) -> str:
        if split not in self.splits:
            raise ServiceError(400, f"split must be one of {sorted(self.splits)}, got {split!r}")
        if not self.splits[split]:
            raise ServiceError(404, f"the dataset has no {split} bundles with a photo")
        return rng.choice(self.splits[split])

    def info(self) -> dict[str, Any]:
        """The model, index, dataset, commit and validation metrics of the run (``/info``)."""
        cfg = self.retriever.cfg
        backbone = OmegaConf.select(cfg, "model.encoder.backbone.model_name") or OmegaConf.select(
            cfg, "model.encoder.backbone.name"
        )
        metrics: dict[str, float] = {}
        commit = None
        if self.run_dir is not None:
            if (self.run_dir / METRICS_FILE).is_file():
                recorded = json.loads((self.run_dir / METRICS_FILE).read_text())
                metrics = {k: v for k, v in recorded.items() if k.startswith("val")}
            if (self.run_dir / PROVENANCE_FILE).is_file():
                commit = (json.loads((self.run_dir / PROVENANCE_FILE).read_text()).get("git") or {}).get(
                    "commit"
                )
        index = self.retriever.index
        return {
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "model": {
                "backbone": backbone,
                "embedding_dim": index.dim,
                "backend": OmegaConf.select(cfg, "encoder.backend", default="torch"),
            },
            "index": {"type": index.spec.index_type if index.spec else None, "size": len(index)},
            "dataset": {
                "data_dir": str(cfg.data.data_dir),
                "products": len(self.products),
                "bundles": len(self.bundle_paths),
                "val_bundles": len(self.splits["val"]),
                "test_bundles": len(self.splits["test"]),
                "sections": sorted(set(self.bundle_sections.values())),
            },
            "commit": commit,
            "metrics": metrics,
            "detectors": sorted(self.retrievers),
            "default_detector": self.default_detector,
            "reranker": self.rerank_steps,
            "text": self.text_info(),
        }

    def text_info(self) -> dict[str, Any]:
        """Whether text and composed queries are answered, and by what (``/info``'s ``text``)."""
        if self.text is None:
            return {"available": False, "how": NO_TEXT_MODEL}
        return {
            "available": True,
            "run_dir": str(self.text.source.parent.parent),
            "products": len(self.text.ids),
            "fusion": self.text.fusion,
            "text_weight": self.text.text_weight,
        }

    # -- searches -----------------------------------------------------------------------------------------
    def _variant(self, options: Options) -> tuple[str, bool, Retriever]:
        """The detector's name, whether re-ranking runs, and the retriever of that detector."""
        name = options.detector or self.default_detector
        retriever = self.retrievers.get(name)
        if retriever is None:
            raise ServiceError(
                400, f"detector {name!r} is not loaded; this service offers {sorted(self.retrievers)}"
            )
        return name, options.rerank and bool(self.rerank_steps), retriever

    def search_photo(self, data: bytes, options: Options) -> dict[str, Any]:
        """Rank the catalogue for an uploaded photo (encoded bytes, decoded in memory)."""
        problem = upload_problem(data)
        if problem is not None:
            raise ServiceError(*problem)
        name, rerank, retriever = self._variant(options)
        sections = None if options.section is None else [options.section]
        try:
            with self.lock:
                (result,) = retriever.search([data], sections=sections, k=options.k, rerank=rerank)
        except ImageReadError as error:
            raise ServiceError(400, f"the uploaded image: {error.reason}") from error
        return self._answer(result, name, rerank, options, bundle_id=None)

    def search_bundle(self, bundle_id: str, options: Options) -> dict[str, Any]:
        """Rank the catalogue for a bundle of the dataset, with what ``infer`` knows (its section and URL
        metadata, every training match). ``options.section`` must be the bundle's, if given."""
        self.bundle_image(bundle_id)
        own = self.bundle_sections[bundle_id]
        if options.section is not None and options.section != own:
            raise ServiceError(
                400, f"bundle {bundle_id} is in section {own}; a section option applies to uploaded photos"
            )
        name, rerank, retriever = self._variant(options)
        with self.lock:
            (result,) = retriever.search_bundles([bundle_id], k=options.k, rerank=rerank)
        return self._answer(result, name, rerank, options, bundle_id=bundle_id)

    def search_text(self, query: TextQuery, image: bytes | None = None) -> dict[str, Any]:
        """Rank the catalogue for a text, or for a composed query: ``query.product_id``'s exported embedding
        (the product itself is left out) or an uploaded ``image`` of one product (whole, no detector),
        fused with the text."""
        if self.text is None:
            raise ServiceError(400, NO_TEXT_MODEL)
        if image is not None and query.product_id is not None:
            raise ServiceError(400, "a composed query takes an image or a product_id, not both")
        text = self.text
        timings = dict.fromkeys(("decode", "detect", "embed", "embed_text", "search", "rerank"), 0.0)
        image_embedding, pixels, crops = None, None, []
        if query.product_id is not None:
            self.product(query.product_id)
            if query.product_id not in text.rows:
                raise ServiceError(404, f"product {query.product_id!r} is not in the text run's catalogue")
            image_embedding = text.product_embedding(query.product_id)
        elif image is not None:
            problem = upload_problem(image)
            if problem is not None:
                raise ServiceError(*problem)
            start = time.perf_counter()
            try:
                pixels = decode_rgb(image, "upload", self.retriever.datamodule.max_image_pixels)
            except ImageReadError as error:
                raise ServiceError(400, f"the uploaded image: {error.reason}") from error
            timings["decode"] = time.perf_counter() - start
            crops = [crop_json(Crop(None, "whole", 0.0))]
        with self.lock:
            if pixels is not None:
                start = time.perf_counter()
                image_embedding = text.embed_image(pixels)
                timings["embed"] = time.perf_counter() - start
            start = time.perf_counter()
            embedded = text.embed_text(query.text)
            timings["embed_text"] = time.perf_counter() - start
            start = time.perf_counter()
            composed = embedded if image_embedding is None else text.compose(image_embedding, embedded)
            ranked = text.search(composed, query.k, query.section, exclude=query.product_id)
            timings["search"] = time.perf_counter() - start
        timings_ms = {stage: seconds * 1000 for stage, seconds in timings.items()}
        timings_ms["total"] = sum(timings_ms.values())
        return {
            "query": "text" if image_embedding is None else "composed",
            "bundle_id": None,
            "image_url": None if query.product_id is None else f"/products/{query.product_id}/image",
            "text": query.text,
            "product_id": query.product_id,
            "fusion": None if image_embedding is None else text.fusion,
            "k": query.k,
            "section": query.section,
            "detector": "none",
            "rerank": False,
            "products": [
                {
                    **self.product(product_id),
                    "score": score,
                    "crop": None,
                    "hit": None,
                }
                for product_id, score in ranked
            ],
            "crops": crops,
            "truth": None,
            "timings_ms": timings_ms,
        }

    def _answer(
        self,
        result: SearchResult,
        detector: str,
        rerank: bool,
        options: Options,
        bundle_id: str | None,
    ) -> dict[str, Any]:
        truth = self.truth.get(bundle_id) if bundle_id is not None else None
        hits = set(truth or ())
        timings = {stage: seconds * 1000 for stage, seconds in vars(result.timings).items()}
        timings["total"] = result.timings.total * 1000
        return {
            "query": bundle_id or "upload",
            "bundle_id": bundle_id,
            "image_url": None if bundle_id is None else f"/bundles/{bundle_id}/image",
            "k": options.k,
            "section": self.bundle_sections[bundle_id] if bundle_id is not None else options.section,
            "detector": detector,
            "rerank": rerank,
            "products": [
                {
                    "product_asset_id": product.product_id,
                    "score": json_score(product.score),
                    "category": product.category,
                    "section": product.section,
                    "image_url": f"/products/{product.product_id}/image",
                    "crop": crop_json(product.crop),
                    "hit": None if truth is None else product.product_id in hits,
                }
                for product in result.products
            ],
            "crops": [crop_json(crop) for crop in result.crops],
            "truth": truth,
            "timings_ms": timings,
        }
