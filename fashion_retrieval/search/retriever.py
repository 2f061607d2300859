"""The public face of search: a trained run's encoder, catalogue index, detector, re-ranking chain and
catalogue, loaded once, answering "which products are in these photos?" (docs/search.md).

Build it once (:meth:`Retriever.from_run_dir`, :meth:`Retriever.from_config`), then call it many times:

* :meth:`Retriever.search`: photos from anywhere (file paths, encoded bytes, or decoded ``(H, W, 3)`` uint8
  RGB arrays), with their sections when known;
* :meth:`Retriever.search_bundles`: bundles of the dataset by id (their photo, section and URL metadata,
  and the bundle priors of every training match, as ``infer``);
* :meth:`Retriever.search_split`: a split's bundles as arrays, for the stages (``validate``, ``infer``,
  ``self-train``, ``train-adapter``).

Every path ranks through the same code: detection (``detector=``; ``none`` embeds the whole photo),
per-crop search within the query's section and its label's categories, the re-ranking chain
(``reranker=``) and the slot rules (``retrieval.*``). One search at a time per ``Retriever``: the chain's
bundle priors are bound per call (a server runs one per worker process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashion_retrieval.data.boxes import region
from fashion_retrieval.data.catalogue import QuerySet, code_numbers
from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.data.transforms import crop_fraction, decode_rgb, eval_transform, load_rgb
from fashion_retrieval.detection.crops import CropSettings, detect_images
from fashion_retrieval.detection.types import Box, Detection
from fashion_retrieval.detection.zones import WholeImageDetector
from fashion_retrieval.index.eligibility import UNKNOWN_SECTION, Eligibility
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.onnx_session import OnnxSession
from fashion_retrieval.models.views import check_views
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    BundleStatistics,
    bind_bundle_priors,
    bundle_prior_steps,
)
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankChain, RerankContext
from fashion_retrieval.search.bundles import (
    bundle_photo_embeddings,
    bundle_prior_data,
    detect_garments,
    slot_settings,
)
from fashion_retrieval.search.garments import (
    GarmentQueries,
    SlotSettings,
    category_codes,
    rank_bundles_sourced,
)
from fashion_retrieval.search.loading import load_for_search, torch_encoder
from fashion_retrieval.search.run_config import BEST_CHECKPOINT, load_run_config
from fashion_retrieval.search.slots import merge_garment_lists, slot_scores

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

STAGES = ("decode", "detect", "embed", "search", "rerank")

Image = str | Path | bytes | np.ndarray


# -- results ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Crop:
    """A region of a photo that was searched on its own.

    ``box``: ``(x1, y1, x2, y2)`` in the photo's pixels, ``x2``/``y2`` exclusive (``None``: the whole photo);
    ``label``: the detector's garment group or zone (``whole`` for the whole photo); ``score``: the
    detector's confidence in ``[0, 1]``.
    """

    box: Box | None
    label: str
    score: float


@dataclass(frozen=True)
class RankedProduct:
    """One product of a ranked list.

    ``score``: on the re-ranking chain's scale (``(cosine + 1) / 2`` times its steps' factors) when it has
    steps, else the cosine similarity; ``nan`` for a slot filled outside the crops' lists (too few products
    of the crops' categories). ``category`` (``product_description``) and ``section`` (``-1``: never seen in
    a training match) are the catalogue's. ``crop``: the crop whose list gave the product its score
    (``None`` where the score is ``nan``).
    """

    product_id: str
    score: float
    category: str
    section: int
    crop: Crop | None


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage by the call that produced a result (one call may search many photos: the
    stages are timed for the whole call). ``decode``: reading and decoding photos (for dataset bundles it
    happens inside the embedding loader and counts as ``embed``); ``search``: FAISS, eligibility and slot
    merging; ``rerank``: the chain's steps."""

    decode: float = 0.0
    detect: float = 0.0
    embed: float = 0.0
    search: float = 0.0
    rerank: float = 0.0

    @property
    def total(self) -> float:
        return self.decode + self.detect + self.embed + self.search + self.rerank


@dataclass(frozen=True)
class SearchResult:
    """The answer for one photo: ``query`` (the bundle id, the path, or ``image-<i>`` for bytes and arrays),
    ``products`` ranked best first (at most ``k``), the ``crops`` searched, and the call's ``timings``."""

    query: str
    products: list[RankedProduct]
    crops: list[Crop]
    timings: Timings


@dataclass(frozen=True)
class RankedQueries:
    """A query set's search as arrays (what the stages score and write): ``queries`` (``Q`` bundles),
    ``ranked (Q, k)`` int64 catalogue indices (``-1`` padding), ``scores (Q, k)`` float32 (see
    :class:`RankedProduct`), ``sources (Q, k)`` int64 the row of ``crops`` that found each slot (``-1``:
    none), ``crops`` the searched regions (whole photos: one per bundle) and the call's ``timings``."""

    queries: QuerySet
    ranked: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    crops: GarmentQueries
    timings: Timings


# -- timing -----------------------------------------------------------------------------------------------
@dataclass
class _Clock:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def timings(self) -> Timings:
        return Timings(**self.seconds)


class _TimedChain(RerankChain):
    """The configured chain, its steps' time added to the current call's clock as ``rerank``."""

    def __init__(self, chain: RerankChain) -> None:
        super().__init__(chain.steps, chain.depth)
        self.clock = _Clock()

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        with self.clock("rerank"):
            return super().__call__(candidates, scores, context)


# -- the retriever ----------------------------------------------------------------------------------------
class Retriever:
    """A trained run's search, loaded once (module docstring; docs/search.md).

    ``cfg``: the run's config (``data``, ``detector``, ``crops``, ``reranker``, ``retrieval``, ``index``);
    ``model``: the trained model, or its ONNX export's session (``encoder.backend=onnx``: photos are then
    embedded without torch; its torch face, :attr:`encoder`, is made for the data loaders, on first use);
    ``datamodule``: the
    catalogue it searches (:class:`~fashion_retrieval.data.catalogue_data.CatalogueData`, or the training
    data module built on it; set up); ``index``: its products, in catalogue order. ``crop_embedder``:
    ``crops -> (N, D)`` float32 L2-normalised embeddings in place of ``encoder``'s for dataset bundles
    (``train-adapter``: cached features through a head).
    """

    def __init__(
        self,
        cfg: DictConfig,
        model: nn.Module | OnnxSession,
        datamodule: CatalogueData,
        index: EmbeddingIndex,
        crop_embedder: Callable[[GarmentQueries], np.ndarray] | None = None,
    ) -> None:
        if list(index.ids) != datamodule.catalogue_ids:
            raise ValueError("the index does not hold the data module's catalogue products in order")
        self.cfg, self.model, self.datamodule, self.index = cfg, model, datamodule, index
        self._encoder: nn.Module | None = None
        self.crop_embedder = crop_embedder
        self.catalogue = datamodule.cat
        self.settings = slot_settings(cfg)
        self.views = check_views(list(cfg.retrieval.tta))
        self.detector = instantiate(cfg.detector)
        self.whole_photos = isinstance(self.detector, WholeImageDetector)
        self.crop_settings: CropSettings = instantiate(cfg.crops)
        self.reranker = _TimedChain(instantiate(cfg.reranker))
        self.priors = bundle_prior_steps(self.reranker)
        needs_catalogue = bool(self.reranker) or self.settings.one_per_article
        self.catalogue_metadata = (
            CatalogueMetadata.from_catalogue(self.catalogue) if needs_catalogue else None
        )
        self.product_ids = list(index.ids)
        self.categories = list(self.catalogue.products["product_description"])
        self.known_sections = self.catalogue.section_array()
        self._prior_data: dict[str, BundlePriorData] = {}
        self._known: BundleStatistics | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, checkpoint: str | Path | None = None) -> Retriever:
        """Load ``checkpoint`` (default ``cfg.ckpt_path``), the data module of ``cfg`` and the index of
        ``cfg.index.dir`` (built there when it is missing or was built from another checkpoint or
        catalogue)."""
        checkpoint = checkpoint or cfg.get("ckpt_path")
        if not checkpoint:
            raise ValueError("Retriever.from_config needs a checkpoint: pass one or set ckpt_path")
        encoder, datamodule, index = load_for_search(cfg, Path(checkpoint))
        return cls(cfg, encoder, datamodule, index)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, overrides: Sequence[str] = ()) -> Retriever:
        """Load a run directory: its config (:func:`load_run_config`, with plain-value ``overrides`` such as
        ``retrieval.k=10`` or ``crops.max_crops=3``; choosing another config group, ``detector=yolo``,
        needs a composed config and :meth:`from_config`), ``checkpoints/best.ckpt`` and ``index/``."""
        cfg = load_run_config(run_dir, overrides)
        return cls.from_config(cfg, Path(run_dir) / BEST_CHECKPOINT)

    @property
    def encoder(self) -> nn.Module:
        """The model as a torch module (the data loaders', and the stages'), made once on first use."""
        if self._encoder is None:
            self._encoder = torch_encoder(self.model)
        return self._encoder

    # -- public searches ----------------------------------------------------------------------------------
    def search(
        self,
        images: Sequence[Image],
        sections: Sequence[int] | None = None,
        k: int | None = None,
        rerank: bool = True,
    ) -> list[SearchResult]:
        """Rank the catalogue for each photo.

        ``images``: file paths, encoded bytes (JPEG, PNG, WebP...) or ``(H, W, 3)`` uint8 RGB arrays;
        bytes and files are refused before decoding when truncated or over ``data.max_image_pixels``.
        ``sections``: each photo's section (``None``: unknown, every product is eligible). ``k``: products
        per photo (default ``retrieval.k``). ``rerank``: apply the re-ranking chain (``False``: the plain
        search). The bundle priors know every training bundle; URL metadata priors see no metadata. A chain
        with a colour step needs file paths (it reads the photo).
        """
        clock = self._start()
        names = [
            str(image) if isinstance(image, (str, Path)) else f"image-{i}" for i, image in enumerate(images)
        ]
        if sections is not None and len(sections) != len(images):
            raise ValueError(f"{len(sections)} sections for {len(images)} images")
        readers = [step for step in self.reranker.steps if getattr(step, "reads_query_photos", False)]
        if rerank and readers and not all(isinstance(image, (str, Path)) for image in images):
            raise ValueError(
                f"the reranker's step {readers[0]!r} reads query photos from files: pass paths, or switch "
                "it off (e.g. reranker.steps.colour=null, reranker.steps.text.mode=category)"
            )
        with clock("decode"):
            arrays = [self._decode(image, name) for image, name in zip(images, names)]
        if self.whole_photos:
            crops = GarmentQueries.from_detections(names, [[] for _ in names], whole_image=True)
        else:
            found: list[list[Detection]] = []
            step = self.crop_settings.batch_size
            with clock("detect"):
                for start in range(0, len(arrays), step):
                    batch = slice(start, start + step)
                    found += detect_images(self.detector, arrays[batch], names[batch], self.crop_settings)[0]
            crops = GarmentQueries.from_detections(
                names, found, whole_image=bool(self.cfg.retrieval.whole_image)
            )
        with clock("embed"):
            embeddings = self._embed_arrays(arrays, crops)
        prior_data = None
        if rerank and self.priors:
            photos = None
            if any(prior.needs_embeddings for prior in self.priors):
                with clock("embed"):
                    photos = embeddings if self.whole_photos else self._embed_arrays(arrays, None)
            prior_data = BundlePriorData(self._known_statistics(), names, photos)
        if sections is None:
            query_sections = np.full(len(names), UNKNOWN_SECTION, dtype=np.int64)
            catalogue_sections = np.full(len(self.product_ids), UNKNOWN_SECTION, dtype=np.int64)
        else:
            query_sections = np.asarray(sections, dtype=np.int64)
            catalogue_sections = self._configured_sections(self.known_sections)
        metadata = np.full(len(names), np.nan), np.full(len(names), -1, dtype=np.int64)
        ranked, scores, sources = self._rank(
            embeddings, crops, query_sections, catalogue_sections, metadata, prior_data, k, clock, rerank
        )
        return self._results(names, crops, ranked, scores, sources, clock.timings())

    def search_bundles(
        self, bundle_ids: Sequence[str], k: int | None = None, rerank: bool = True
    ) -> list[SearchResult]:
        """Rank the catalogue for bundles of the dataset (their photos, sections and URL metadata), with
        what ``infer`` knows: the sections and bundle priors of every training match (so a validation
        bundle's own matches are known here: score validation with ``validate``). ``k``, ``rerank`` as
        :meth:`search`."""
        known = self.catalogue.bundle_paths()
        unknown = [b for b in bundle_ids if b not in known]
        if unknown:
            raise KeyError(f"unknown bundle id(s) {unknown[:5]}: not in bundles_dataset.csv, or no photo")
        queries = self.catalogue.bundle_queries(bundle_ids, with_truth=False)
        prior_data = None
        if rerank and self.priors:
            photos = None
            if any(prior.needs_embeddings for prior in self.priors):
                photos = bundle_photo_embeddings(self.encoder, self.datamodule, list(bundle_ids), self.views)
            prior_data = BundlePriorData(self._known_statistics(), list(bundle_ids), photos)
        catalogue_sections = self._configured_sections(self.known_sections)
        found = self._search_query_set(queries, catalogue_sections, prior_data, k, rerank)
        return self._results(
            queries.bundle_ids, found.crops, found.ranked, found.scores, found.sources, found.timings
        )

    def search_split(self, split: str, prior_data: BundlePriorData | None = None) -> RankedQueries:
        """The ``split`` bundles (``val`` or ``test``) ranked as the stages score them. Product sections
        come from the training matches the split may know (``val``: the data module's training split only;
        ``test``: every training match); so do the bundle priors (:func:`bundle_prior_data`, computed once
        per split) unless ``prior_data`` is given (self-training adds pseudo pairs)."""
        catalogue_sections = (
            self.datamodule.catalogue_section_array() if split == "val" else self.known_sections
        )
        if self.priors and prior_data is None:
            if split not in self._prior_data:
                needs_embeddings = any(prior.needs_embeddings for prior in self.priors)
                self._prior_data[split] = bundle_prior_data(
                    self.cfg, self.encoder, self.datamodule, split, needs_embeddings
                )
            prior_data = self._prior_data[split]
        queries = self.datamodule.query_set(split)
        return self._search_query_set(queries, self._configured_sections(catalogue_sections), prior_data)

    # -- shared steps -------------------------------------------------------------------------------------
    def _start(self) -> _Clock:
        self.reranker.clock = _Clock()
        return self.reranker.clock

    def _configured_sections(self, catalogue_sections: np.ndarray) -> np.ndarray:
        if not self.cfg.retrieval.get("sections", True):
            # Measuring the section rule: every product's section unknown, so neither the search nor the
            # chain's SectionFilter can rule a product out.
            return np.full(np.shape(catalogue_sections), UNKNOWN_SECTION, dtype=np.int64)
        return catalogue_sections

    def _known_statistics(self) -> BundleStatistics:
        """Every training bundle's products (and whole-photo embeddings when a prior needs them), once."""
        if self._known is None:
            known = list(self.catalogue.train_bundle_ids)
            embeddings = None
            if any(prior.needs_embeddings for prior in self.priors):
                embeddings = bundle_photo_embeddings(self.encoder, self.datamodule, known, self.views)
            self._known = BundleStatistics.from_catalogue(self.catalogue, known, embeddings)
        return self._known

    def _decode(self, image: Image, name: str) -> np.ndarray:
        max_pixels = self.datamodule.max_image_pixels
        if isinstance(image, (str, Path)):
            return load_rgb(str(image), max_pixels)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_rgb(bytes(image), name, max_pixels)
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(
                f"{name}: an image array must be (H, W, 3) uint8 RGB, got {array.dtype} {array.shape}"
            )
        return array

    def _embed_arrays(self, arrays: Sequence[np.ndarray], crops: GarmentQueries | None) -> np.ndarray:
        """``(N, D)`` float32 embeddings, as the data module's eval loaders make them: each crop of ``crops``
        at the crop size, or (``None``, or whole-photo search) each photo whole at the query size."""
        data = self.datamodule
        if crops is None or self.whole_photos:
            transform = eval_transform(data.query_size)
            images = [transform.array(crop_fraction(array, data.query_crop)) for array in arrays]
        else:
            transform = eval_transform(data.crop_size)
            images = [
                transform.array(region(arrays[row], box)) for row, box in zip(crops.bundle_rows, crops.boxes)
            ]
        batch = int(data.eval_batch_size)
        batches = [np.stack(images[start : start + batch]) for start in range(0, len(images), batch)]
        if isinstance(self.model, OnnxSession):
            return np.concatenate([self.model.embed_views(images, self.views) for images in batches])
        return self._embed_torch(batches)

    def _embed_torch(self, batches: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``(B, 3, H, W)`` uint8 batches by the torch model."""
        # Imported here: the torch backend's path; the ONNX one above never imports torch.
        import torch

        from fashion_retrieval.models.inference import TEST_TIME_VIEWS, embed_views

        views = [TEST_TIME_VIEWS[view] for view in self.views]
        encoder = self.encoder.eval()
        with torch.no_grad():
            return np.concatenate(
                [embed_views(encoder, torch.from_numpy(images), views).cpu().numpy() for images in batches]
            )

    def _search_query_set(
        self,
        queries: QuerySet,
        catalogue_sections: np.ndarray,
        prior_data: BundlePriorData | None,
        k: int | None = None,
        rerank: bool = True,
    ) -> RankedQueries:
        """Dataset photos through the data module's loaders (and the detection cache)."""
        # Imported here: the data loaders need torch (see :mod:`.loading`).
        from fashion_retrieval.models.inference import embed_loader

        clock = self._start()
        if self.whole_photos:
            if self.crop_embedder is not None:
                raise ValueError(
                    "a crop_embedder needs a crop detector (detector=zones|yolo|truth), not none"
                )
            crops = GarmentQueries.from_detections(
                queries.image_paths, [[] for _ in queries.image_paths], True
            )
            with clock("embed"):
                embeddings = embed_loader(
                    self.encoder, self.datamodule.query_set_dataloader(queries), views=self.views
                )
        else:
            with clock("detect"):
                crops = detect_garments(self.cfg, self.detector, queries.image_paths, queries.bundle_ids)
            log.info(
                "search: %d crops of %d bundles (%.2f per bundle)",
                len(crops),
                len(queries.bundle_ids),
                len(crops) / max(1, len(queries.bundle_ids)),
            )
            with clock("embed"):
                if self.crop_embedder is None:
                    loader = self.datamodule.crop_dataloader(crops.paths, crops.boxes)
                    embeddings = embed_loader(self.encoder, loader, views=self.views)
                else:
                    embeddings = self.crop_embedder(crops)
        metadata = (
            self.catalogue.bundle_timestamps(queries.bundle_ids),
            code_numbers(self.catalogue.bundle_codes(queries.bundle_ids)),
        )
        ranked, scores, sources = self._rank(
            embeddings,
            crops,
            np.asarray(queries.sections),
            catalogue_sections,
            metadata,
            prior_data,
            k,
            clock,
            rerank,
        )
        return RankedQueries(queries, ranked, scores, sources, crops, clock.timings())

    def _rank(
        self,
        embeddings: np.ndarray,
        crops: GarmentQueries,
        query_sections: np.ndarray,
        catalogue_sections: np.ndarray,
        metadata: tuple[np.ndarray, np.ndarray],
        prior_data: BundlePriorData | None,
        k: int | None,
        clock: _Clock,
        rerank: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Q, k)`` ranked catalogue indices, scores and source crops of ``Q`` photos from the ``(N, D)``
        embeddings of their ``crops`` (whole-photo search: one per photo, in photo order); through the
        re-ranking chain unless ``rerank`` is false."""
        settings = self.settings if k is None else replace(self.settings, k=int(k))
        if settings.k < 1:
            raise ValueError(f"k must be a positive number of products, got {settings.k}")
        chain = self.reranker if rerank else RerankChain()
        if rerank and self.priors:
            if prior_data is None:
                raise ValueError("the reranker's bundle priors need their known bundles (prior_data)")
            bind_bundle_priors(self.reranker, prior_data)
        timestamps, codes = metadata
        start = time.perf_counter()
        rerank_before = clock.seconds["rerank"]
        if self.whole_photos:
            ranked, scores = self._rank_whole(
                embeddings, crops, query_sections, catalogue_sections, metadata, settings, chain
            )
            photos = np.arange(len(query_sections))[:, None]
            sources = np.where(np.isfinite(scores) & (ranked >= 0), photos, -1)
        else:
            ranked, scores, sources = rank_bundles_sourced(
                embeddings,
                crops,
                len(query_sections),
                query_sections,
                self.index,
                catalogue_sections,
                self.categories,
                self.detector.label_categories,
                settings,
                chain,
                self.catalogue_metadata,
                bundle_timestamps=timestamps,
                bundle_codes=codes,
            )
        spent = time.perf_counter() - start - (clock.seconds["rerank"] - rerank_before)
        clock.seconds["search"] += spent
        return ranked, scores, sources

    def _rank_whole(
        self,
        embeddings: np.ndarray,
        crops: GarmentQueries,
        query_sections: np.ndarray,
        catalogue_sections: np.ndarray,
        metadata: tuple[np.ndarray, np.ndarray],
        settings: SlotSettings,
        chain: RerankChain,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whole-photo search: one list per photo, re-ranked by ``chain``, under the slot rules when there
        are any."""
        eligibility = Eligibility(query_sections, catalogue_sections)
        context = None
        if chain:
            context = RerankContext(
                eligibility,
                crops.paths,
                None,
                catalogue=self.catalogue_metadata or CatalogueMetadata(),
                query_bundles=np.arange(len(query_sections)),
                query_timestamps=metadata[0],
                query_codes=metadata[1],
            )
        constraints = settings.constraints(*category_codes(self.categories), self.catalogue_metadata)
        if constraints is None:
            return chain.search(self.index, embeddings, eligibility, settings.k, context)
        # Diverse slots: the photo's list is one "crop" list, searched deeper so the rules have room.
        depth = max(settings.k, settings.per_crop_k or 2 * settings.k)
        ids, all_scores = chain.search(self.index, embeddings, eligibility, depth, context)
        ranked = np.stack(
            [
                merge_garment_lists(i[None], s[None], settings.k, constraints=constraints)
                for i, s in zip(ids, all_scores)
            ]
        )
        scores = np.stack([slot_scores(r, i[None], s[None]) for r, i, s in zip(ranked, ids, all_scores)])
        return ranked, scores

    def _results(
        self,
        names: Sequence[str],
        crops: GarmentQueries,
        ranked: np.ndarray,
        scores: np.ndarray,
        sources: np.ndarray,
        timings: Timings,
    ) -> list[SearchResult]:
        regions = [
            Crop(None if box is None else tuple(float(v) for v in box), label, float(score))  # type: ignore[misc]
            for box, label, score in zip(crops.boxes, crops.labels, crops.scores)
        ]
        results = []
        for row, name in enumerate(names):
            products = [
                RankedProduct(
                    self.product_ids[g],
                    float(s),
                    self.categories[g],
                    int(self.known_sections[g]),
                    regions[c] if c >= 0 else None,
                )
                for g, s, c in zip(ranked[row].tolist(), scores[row].tolist(), sources[row].tolist())
                if g >= 0
            ]
            own = [regions[c] for c in np.flatnonzero(crops.bundle_rows == row)]
            results.append(SearchResult(str(name), products, own, timings))
        return results
