"""``train-adapter``: a head trained on cached frozen-backbone features, scored on the validation bundles.

1. A frozen backbone (``model=``, ImageNet weights by default; ``ckpt_path`` for a trained encoder) embeds
   the catalogue packshots and the bundles' garment crops (``detector=``, through the detection cache) once,
   as raw backbone features in the feature cache (``features.cache_dir``, ``method="backbone_features"``),
   both resized to ``adapter.image_size`` (``null``: the backbone's native input size).
2. Training pairs, from the data module's training bundles only: ``adapter.pairs=pseudo`` pairs each
   (bundle, product) match with the bundle's crop whose raw feature is closest to the product's (the
   winners' pseudo-labelling: no box needed, so real data works); ``adapter.pairs=truth_boxes`` crops the
   synthetic ground-truth box of the product instead (``bundle_garment_boxes.csv``).
3. ``adapter=``'s :class:`~fashion_retrieval.models.adapter_module.FeatureAdapterModule` trains on them with
   the ``trainer:`` config (``adapter=none``: nothing to train, the frozen backbone alone).
   ``adapter.features=backbone`` trains the same head on the same pairs, in the same batch order, end to
   end through the frozen backbone (:class:`FrozenFeatureExtractor` on the preprocessed images the cache
   was computed from) instead of the cached features: issue 7's speed and equality check.
4. The validation bundles' crop features go through the query head, the catalogue's through the catalogue
   head (none for the residual adapter), and the search runs through
   :meth:`~fashion_retrieval.search.retriever.Retriever.search_split`: the reranker chain, bundle
   priors and slot rules apply as in ``validate``, and so do its metrics (``val_<name>/recall@15``...).
   With ``adapter.self_train`` the self-training passes (``self_train:``) run on top, on validation.
5. Real photos (``real/val_<name>/...``, :mod:`fashion_retrieval.evaluation.real_photos`): queries (the
   clothing-small test photos, the collage bundles, whole images) through the query head, the photos as
   products through the catalogue head, on the frozen backbone's cached features at its native size.

Validation never reads validation matches for training, pseudo-labels or priors (``known_bundle_ids``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.callbacks.checkpointing import use_atomic_checkpoints
from fashion_retrieval.callbacks.epoch_timer import EpochTimer
from fashion_retrieval.data.datamodule import ChallengeDataModule, QuerySet
from fashion_retrieval.data.training_sets import reject_extra_training_sets
from fashion_retrieval.detection.types import Detector
from fashion_retrieval.detection.zones import WholeImageDetector
from fashion_retrieval.evaluation.bundle_metrics import validation_metrics
from fashion_retrieval.evaluation.real_photos import PhotoEncoder, real_photo_scores, real_photo_settings
from fashion_retrieval.features import FeatureCache, feature_cache, load_features, read_manifest
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.io import atomic_path
from fashion_retrieval.models.adapter_module import (
    FeatureAdapterModule,
    FrozenFeatureExtractor,
    apply_head,
    load_head,
)
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.ensemble import EnsembleEncoder
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.rerank.bundle_priors import BundlePriorData, bundle_prior_steps
from fashion_retrieval.search.bundles import bundle_prior_data, detect_garments
from fashion_retrieval.search.garments import GarmentQueries
from fashion_retrieval.search.retriever import Retriever
from fashion_retrieval.search.self_training import configured_passes, pseudo_precision

log = logging.getLogger(__name__)

PAIR_SOURCES = ("pseudo", "truth_boxes")
FEATURE_SOURCES = ("cache", "backbone")
METHOD = "backbone_features"


def closest_crops(
    crop_features: np.ndarray, crop_bundles: np.ndarray, product_features: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """The pseudo-labelled query of each (bundle, product) pair: the bundle's crop closest to the product.

    Args:
        crop_features: ``(N, D)`` float32 L2-normalised crop features; crop_bundles ``(N,)`` int bundle rows.
        product_features: ``(G, D)`` float32 L2-normalised catalogue features.
        pairs: ``(M, 2)`` int ``(bundle row, product row)``.

    Returns ``(M,)`` int64 crop rows (cosine ties: the first crop, i.e. the detector's most confident);
    ``-1`` for a bundle without crops.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    crop_bundles = np.asarray(crop_bundles, dtype=np.int64)
    chosen = np.full(len(pairs), -1, dtype=np.int64)
    for bundle in np.unique(pairs[:, 0]):
        crops = np.flatnonzero(crop_bundles == bundle)
        if not len(crops):
            continue
        rows = np.flatnonzero(pairs[:, 0] == bundle)
        similarity = product_features[pairs[rows, 1]] @ crop_features[crops].T  # (pairs, crops)
        chosen[rows] = crops[np.argmax(similarity, axis=1)]
    return chosen


def crop_ids(bundle_ids: Sequence[str], crops: GarmentQueries) -> list[str]:
    """``<bundle id>#<j>``: the ``j``-th crop of its bundle (the feature cache's item ids)."""
    seen: dict[int, int] = {}
    ids = []
    for row in crops.bundle_rows.tolist():
        ids.append(f"{bundle_ids[row]}#{seen.get(row, 0)}")
        seen[row] = seen.get(row, 0) + 1
    return ids


def feature_input_size(cfg: DictConfig, encoder: nn.Module) -> tuple[int, int]:
    """``(H, W)`` the frozen backbone embeds crops and packshots at: ``adapter.image_size``, else (``null``)
    the backbone's native input size (224 x 224 for Lite0, 260 x 260 for Lite2)."""
    size = cfg.adapter.get("image_size")
    if size is None:
        return encoder.native_input_size
    if len(size) != 2 or min(int(v) for v in size) <= 0:
        raise ValueError(f"adapter.image_size must be [H, W] or null (native), got {list(size)}")
    return int(size[0]), int(size[1])


def adapter_datamodule(cfg: DictConfig, encoder: ImageEncoder) -> ChallengeDataModule:
    """``data:``'s module with packshots and crops at :func:`feature_input_size` (bundle photos, which only
    the similar-bundle prior embeds, keep ``data.query_size``)."""
    size = list(feature_input_size(cfg, encoder))
    datamodule: ChallengeDataModule = instantiate(cfg.data, catalogue_size=size, crop_size=size)
    reject_extra_training_sets(datamodule.extra_sets, "train-adapter")
    datamodule.setup()
    return datamodule


def frozen_encoder(cfg: DictConfig) -> ImageEncoder:
    """``ckpt_path``'s encoder, else ``model=``'s with its pretrained weights, in eval mode."""
    if cfg.get("ckpt_path"):
        return load_encoder(Path(cfg.ckpt_path)).eval()
    return instantiate(cfg.model.encoder).eval()


def backbone_members(encoder: nn.Module) -> tuple[list[ImageEncoder], list[float]]:
    """The encoders whose backbone features the cache holds and their weights: an ensemble's members (their
    features are concatenated, ``EnsembleEncoder.backbone_features``), else the encoder alone."""
    if isinstance(encoder, EnsembleEncoder):
        return encoder.member_list(), list(encoder.weights)
    return [encoder], [1.0]


class AdapterFeatures:
    """The frozen backbone's cached features of the catalogue and of bundle crops.

    An ensemble's features are its members', each embedded at its own :func:`feature_input_size` into its
    own cache entry (shared with runs of that backbone alone), then concatenated
    (:meth:`FeatureCache.get_or_combine`).
    """

    def __init__(
        self, cfg: DictConfig, encoder: ImageEncoder, datamodule: ChallengeDataModule, detector: Detector
    ) -> None:
        self.cfg, self.encoder, self.datamodule, self.detector = cfg, encoder, datamodule, detector
        self.cache: FeatureCache = feature_cache(cfg)
        self.crop_settings = OmegaConf.to_container(cfg.crops, resolve=True)
        members, self.weights = backbone_members(encoder)
        single = len(members) == 1
        self.members = [(m, datamodule if single else adapter_datamodule(cfg, m)) for m in members]
        sizes = [tuple(dm.crop_size) for _, dm in self.members]
        log.info("train-adapter: crops and packshots at %s (H, W; one per backbone)", sizes)
        self.datasets: dict[Path, Dataset] = {}  # cache directory -> the dataset its features came from

    def _features(
        self, dataset_of: Callable[[ChallengeDataModule], Dataset], ids: Sequence[str], **crops: object
    ) -> Path:
        directories = []
        for member, datamodule in self.members:
            dataset = dataset_of(datamodule)
            directory = Path(self.cache.get_or_compute(member, dataset, ids, METHOD, **crops))
            self.datasets[directory] = dataset
            directories.append(directory)
        if len(directories) == 1:
            return directories[0]
        return self.cache.get_or_combine(directories, self.weights)

    def images(self, directory: Path) -> torch.Tensor:
        """``(N, 3, H, W)`` uint8: the preprocessed images the features of ``directory`` were computed from
        (the cache's eval transform, no augmentation), row for row."""
        loader = DataLoader(
            self.datasets[Path(directory)], batch_size=256, num_workers=int(self.cfg.features.num_workers)
        )
        return torch.cat([batch["image"] for batch in loader])

    def catalogue(self) -> tuple[Path, np.ndarray]:
        """The catalogue's cache directory and ``(G, D)`` features, in catalogue order."""
        directory = self._features(
            lambda dm: dm.catalogue_dataloader().dataset, self.datamodule.catalogue_ids
        )
        features, ids = load_features(directory)
        if list(ids) != self.datamodule.catalogue_ids:
            raise ValueError(f"feature cache {directory} does not hold this catalogue's products in order")
        return directory, features

    def crops(self, bundle_ids: Sequence[str], crops: GarmentQueries) -> tuple[Path, np.ndarray, list[str]]:
        """The cache directory, ``(N, D)`` features and ids (:func:`crop_ids`) of the bundles' ``crops``."""
        ids = crop_ids(bundle_ids, crops)
        crop_key = {"detector": self.detector.fingerprint(), "settings": self.crop_settings}
        directory = self._features(
            lambda dm: dm.crop_dataloader(crops.paths, crops.boxes).dataset, ids, crops=crop_key
        )
        features, _ = load_features(directory)
        return directory, features, ids

    def truth_garments(self, garments: QuerySet, ids: list[str]) -> Path:
        """The cache directory of ground-truth garment crops (padded by ``data.garment_padding``)."""
        return self._features(
            lambda dm: dm.query_set_dataloader(garments).dataset, ids, crops={"source": "truth_boxes"}
        )


@dataclass(frozen=True)
class BackboneInputs:
    """``adapter.features=backbone``: the frozen extractor and the images of the query and catalogue rows."""

    extractor: FrozenFeatureExtractor
    query_images: torch.Tensor  # (Q, 3, H, W) uint8, the query cache's rows
    catalogue_images: torch.Tensor  # (G, 3, H, W) uint8, the catalogue cache's rows


def training_pairs(
    cfg: DictConfig, features: AdapterFeatures, catalogue: np.ndarray
) -> tuple[Path, list[tuple[str, str]]]:
    """The query cache directory and ``(query id, product id)`` pairs of the training bundles."""
    datamodule = features.datamodule
    train_ids = list(datamodule.train_bundle_ids)
    source = str(cfg.adapter.pairs)
    if source == "truth_boxes":
        garments = datamodule.visible_garments(train_ids)
        paths = datamodule.cat.bundle_paths()
        ids = [f"{bundle}|{product}" for bundle, product, _ in garments]
        query_set = QuerySet(
            [b for b, _, _ in garments],
            [str(paths[b]) for b, _, _ in garments],
            [0] * len(garments),
            None,
            [box for _, _, box in garments],
        )
        directory = features.truth_garments(query_set, ids)
        return directory, [(qid, product) for qid, (_, product, _) in zip(ids, garments)]
    if source != "pseudo":
        raise ValueError(f"adapter.pairs must be one of {PAIR_SOURCES}, got {source!r}")
    paths = datamodule.cat.bundles.set_index("bundle_asset_id").loc[train_ids, "image_path"]
    crops = detect_garments(cfg, features.detector, [str(p) for p in paths], train_ids)
    directory, crop_features, ids = features.crops(train_ids, crops)
    product_row = datamodule.cat.product_index()
    bundle_row = {bundle: i for i, bundle in enumerate(train_ids)}
    matches = [
        (bundle_row[bundle], product_row[product])
        for bundle, products in datamodule.cat.products_of(train_ids).items()
        for product in products
    ]
    chosen = closest_crops(crop_features, crops.bundle_rows, catalogue, np.asarray(matches))
    product_ids = datamodule.catalogue_ids
    pairs = [(ids[c], product_ids[p]) for c, (_, p) in zip(chosen.tolist(), matches) if c >= 0]
    log.info(
        "train-adapter: %d pseudo pairs from %d crops of %d bundles", len(pairs), len(ids), len(train_ids)
    )
    return directory, pairs


def has_trainable_head(cfg: DictConfig) -> bool:
    module = cfg.adapter.module
    return module.get("query_head") is not None or module.get("catalogue_head") is not None


def fit_head(
    cfg: DictConfig,
    context: RunContext,
    query_dir: Path,
    catalogue_dir: Path,
    pairs: list[tuple[str, str]],
    backbone: BackboneInputs | None = None,
) -> tuple[FeatureAdapterModule, dict[str, float]]:
    """``adapter=``'s module, trained on ``pairs`` when it has a head (``adapter=none``: returned untrained);
    from the cached features, or through ``backbone``'s frozen extractor on its images (same pairs and
    order)."""
    pl.seed_everything(int(cfg.seed), workers=True)
    feature_dim = int(read_manifest(catalogue_dir)["dim"])
    through = {} if backbone is None else {"feature_extractor": backbone.extractor}
    module: FeatureAdapterModule = instantiate(cfg.adapter.module, feature_dim=feature_dim, **through)
    if not has_trainable_head(cfg):
        return module.eval(), {}
    if cfg.adapter.get("head_path"):  # an earlier run's head: only the search after it changes
        load_head(module, Path(cfg.adapter.head_path))
        return module.eval(), {}
    if not pairs:
        # Lightning would run zero steps and exit 0, and the untrained head would be scored as trained.
        raise ValueError(
            f"train-adapter: no training pairs (adapter.pairs={cfg.adapter.pairs}: the training bundles gave "
            "no crop or box for any of their products); nothing to train the head on"
        )
    images = {}
    if backbone is not None:
        images = {"query_images": backbone.query_images, "catalogue_images": backbone.catalogue_images}
    datamodule = instantiate(cfg.adapter.data)(
        query_dir,
        catalogue_dir,
        pairs,
        {},  # no validation inside fit: the bundle-level validation below is the score
        product_sections=None,
        **images,
    )
    output_dir = context.output_dir / "adapter"
    trainer = use_atomic_checkpoints(
        instantiate(
            cfg.trainer,
            default_root_dir=str(output_dir),
            logger=False,
            enable_checkpointing=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[timer := EpochTimer()],
        )
    )
    trainer.fit(module, datamodule=datamodule)
    # The frozen backbone is not part of the head: head.pt loads whichever way it was trained.
    head = {k: v for k, v in module.state_dict().items() if not k.startswith("feature_extractor.")}
    with atomic_path(output_dir / "head.pt") as path:
        torch.save(head, path)
    metrics = {
        "adapter/epochs": float(trainer.current_epoch),
        "adapter/train_pairs": float(len(pairs)),
        "adapter/seconds_per_epoch": float(np.mean(timer.seconds)) if timer.seconds else float("nan"),
    }
    log.info(
        "train-adapter (%s): seconds per epoch %s", cfg.adapter.features, [round(t, 2) for t in timer.seconds]
    )
    loss = trainer.callback_metrics.get("train/loss")
    if loss is not None:
        metrics["adapter/train_loss"] = float(loss)
    return module.eval(), metrics


def train_adapter(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    if cfg.adapter.get("module") is None:
        raise ValueError("train-adapter needs adapter=residual_adapter|projection|none (docs/adapters.md)")
    if str(cfg.adapter.pairs) not in PAIR_SOURCES:
        raise ValueError(f"adapter.pairs must be one of {PAIR_SOURCES}, got {cfg.adapter.pairs!r}")
    if str(cfg.adapter.features) not in FEATURE_SOURCES:
        raise ValueError(f"adapter.features must be one of {FEATURE_SOURCES}, got {cfg.adapter.features!r}")
    if cfg.retrieval.tta:
        raise ValueError("train-adapter caches single-view features: set retrieval.tta=[]")
    pl.seed_everything(int(cfg.seed), workers=True)  # a backbone without pretrained weights: same init
    encoder = frozen_encoder(cfg)
    datamodule = adapter_datamodule(cfg, encoder)
    detector: Detector = instantiate(cfg.detector)
    if isinstance(detector, WholeImageDetector):  # a config choice, not a type error
        raise ValueError(  # noqa: TRY004
            "train-adapter searches garment crops: use detector=zones|yolo|truth"
        )
    features = AdapterFeatures(cfg, encoder, datamodule, detector)
    catalogue_dir, catalogue = features.catalogue()
    metrics: dict[str, float] = {}
    pairs: list[tuple[str, str]] = []
    query_dir = catalogue_dir
    backbone = None
    if has_trainable_head(cfg) and not cfg.adapter.get("head_path"):
        query_dir, pairs = training_pairs(cfg, features, catalogue)
        if cfg.adapter.features == "backbone":
            if len(features.members) > 1:
                raise ValueError("adapter.features=backbone needs one backbone, not an ensemble")
            extractor = FrozenFeatureExtractor(encoder, METHOD)
            backbone = BackboneInputs(extractor, features.images(query_dir), features.images(catalogue_dir))
    module, fit_metrics = fit_head(cfg, context, query_dir, catalogue_dir, pairs, backbone)
    metrics.update(fit_metrics)
    index = EmbeddingIndex(
        apply_head(module, catalogue, "catalogue"), datamodule.catalogue_ids, spec=instantiate(cfg.index.spec)
    )
    val_ids = datamodule.query_set("val").bundle_ids

    def embed_crops(crops: GarmentQueries) -> np.ndarray:
        return apply_head(module, features.crops(val_ids, crops)[1], "query")

    # Real photos: the query head on queries (clothing-small photos, collage bundles), the catalogue head
    # (none for the residual adapter) on the photos as products, over the same frozen backbone features.
    real = real_photo_scores(
        real_photo_settings(cfg),
        PhotoEncoder.with_adapter(encoder, module),
        f"val_{cfg.validate.name}",
        context.output_dir,
    )
    # Validation: only the training split tells product sections (Retriever.search_split).
    retriever = Retriever(cfg, encoder, datamodule, index, crop_embedder=embed_crops)
    if not cfg.adapter.self_train:
        found = retriever.search_split("val")
        return {**metrics, **validation_metrics(cfg, datamodule, found.queries, found.ranked), **real}
    return {**metrics, **self_train_on_validation(cfg, retriever), **real}


def self_train_on_validation(cfg: DictConfig, retriever: Retriever) -> dict[str, float]:
    """The ``self_train:`` passes on the validation bundles with the adapted search of ``retriever``
    (priors from the training split plus the confident validation predictions, never the validation
    matches)."""
    priors = bundle_prior_steps(instantiate(cfg.reranker))
    if not priors:
        raise ValueError("adapter.self_train feeds the bundle priors: use reranker=bundle_priors or similar")
    datamodule = retriever.datamodule
    base = bundle_prior_data(
        cfg, retriever.encoder, datamodule, "val", any(p.needs_embeddings for p in priors)
    )
    queries = datamodule.query_set("val")

    def search(data: BundlePriorData) -> tuple[np.ndarray, np.ndarray]:
        found = retriever.search_split("val", data)
        return found.ranked, found.scores

    ranked, _, pseudo, _ = configured_passes(
        cfg.self_train, search, base, queries.sections, len(datamodule.catalogue_ids)
    )
    assert queries.truth is not None
    metrics = validation_metrics(cfg, datamodule, queries, ranked)
    metrics["self_train_val/pseudo_precision"] = pseudo_precision(pseudo, queries.bundle_ids, queries.truth)
    metrics["self_train/pseudo_pairs"] = float(sum(len(p) for p in pseudo.values()))
    return metrics
