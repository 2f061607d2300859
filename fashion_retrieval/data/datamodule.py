"""LightningDataModule for the challenge format: training bundles with negatives, validation queries and
the catalogue, and the sets an index miner embeds. The catalogue, its split and the evaluation loaders are
:class:`~fashion_retrieval.data.catalogue_data.CatalogueData`'s, which searches use without Lightning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import BatchSampler, DataLoader

from fashion_retrieval.data.augmentation import CATALOGUE_AUGMENTATION, QUERY_AUGMENTATION, train_transform
from fashion_retrieval.data.boxes import Box
from fashion_retrieval.data.catalogue import Catalogue, QuerySet, load_catalogue
from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.data.datasets import BundleDataset, ProductTable, TrainingBundle, collate_bundles
from fashion_retrieval.data.garments import (
    Garment,
    GarmentMatcher,
    garment_items,
    read_box_table,
    visible_garments,
)
from fashion_retrieval.data.samplers import RandomBatchSampler
from fashion_retrieval.data.training_sets import (
    LabelSpace,
    catalogue_training_bundles,
    label_offsets,
    mixed_label_space,
    parse_extra_training_sets,
    reject_extra_training_sets,
)

log = logging.getLogger(__name__)

TrainQueries = Literal["bundles", "garments"]
SamplerFactory = Callable[..., BatchSampler]
"""Called as ``factory(bundle_categories, batch_size=, seed=, drop_last=, rank=, world_size=)`` (one set of
product categories per training bundle); returns a batch sampler of ``(index, epoch)`` keys with
``set_epoch`` (see :mod:`fashion_retrieval.data.samplers`). Hydra: a ``_partial_: true`` config."""


def process_rank(datamodule: pl.LightningDataModule) -> tuple[int, int]:
    """(rank, world size) from the data module's trainer; (0, 1) without one."""
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


class DeferredDataLoader(DataLoader):
    """A DataLoader whose iterator starts at the first ``next()`` instead of at ``iter()``.

    Lightning (2.6, ``FitLoop.setup_data``) calls ``iter()`` on the train loader before ``set_epoch`` and
    before ``on_train_start`` of the first epoch of every ``fit``. With workers, an eager iterator starts
    them and draws its first batches right there: with the sampler's previous epoch (a resumed run would
    replay epoch 0's order) and a dataset copy missing the lists an ``IndexNegativeMiner`` mines at train
    start. Deferred to the first batch, both are current.
    """

    def __iter__(self) -> Iterator:
        return _DeferredIterator(self)


class _DeferredIterator:
    def __init__(self, loader: DataLoader) -> None:
        self._loader = loader
        self._iterator: Iterator | None = None

    def __iter__(self) -> _DeferredIterator:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = DataLoader.__iter__(self._loader)
        return next(self._iterator)

    def __len__(self) -> int:
        return len(self._loader)


@dataclass(frozen=True)
class MiningTargets:
    """What an index miner needs about the training bundles, row ``i`` = ``mining_query_loader()`` item ``i``.

    ``bundle_labels (Q,)`` (keys of :meth:`ChallengeDataModule.set_mined_negatives`); ``positives``: product
    ids of each bundle; ``excluded``: product ids never to mine (its products, plus masked colour variants);
    ``sections (Q,)`` int.
    """

    bundle_labels: list[int]
    positives: list[list[int]]
    excluded: list[list[int]]
    sections: np.ndarray


class ChallengeDataModule(CatalogueData, pl.LightningDataModule):
    """Feeds training bundles (one photo, its products' packshots, extra negatives), and validation queries
    against the catalogue.

    Validation bundles are carved from the training matches (``val_fraction``, seeded), so the same code
    runs on the real challenge data, which ships no validation file. Validation searches the whole
    catalogue, distractors included.

    Training randomness (order, product subsets, negatives, augmentation) is a pure function of
    ``(seed, epoch, bundle)``: a resumed run sees the same batches as an uninterrupted one, for any
    ``num_workers`` (see :mod:`fashion_retrieval.data.samplers`).

    Negatives: ``same_category_negatives`` per bundle drawn from the catalogue (same category as a drawn
    product, same or unknown section); ``mined_negatives`` per bundle from the lists handed to
    :meth:`set_mined_negatives` (top ``mined_pool``), e.g. by
    :class:`fashion_retrieval.callbacks.hard_negative_miner.IndexNegativeMiner`.
    ``mask_same_article``: other colour variants of a bundle's articles are never its negatives (needs the
    synthetic ``product_articles.csv``; without it a warning and no effect).

    ``train_queries``: ``bundles`` (a query is a whole photo with all its products) or ``garments`` (a
    query is one garment's ground-truth box from ``bundle_garment_boxes.csv``, grown by
    ``garment_padding``, at ``crop_size``, with its one product; garments less visible than
    ``min_garment_visibility`` are left out, counted in the log). Validation queries follow the same
    choice, so ``val/recall@15`` of a ``garments`` run is a per-garment recall: compare runs of one mode,
    and bundle-level results with the ``validate`` stage. ``detected_garments`` (a
    :class:`~fashion_retrieval.data.garments.GarmentMatcher`, e.g.
    :class:`~fashion_retrieval.detection.garment_matching.DetectedGarments`) adds garments found another
    way, e.g. a detector's boxes that match a visible garment: detected crops mixed with ground-truth ones.

    ``extra_training_sets``: further challenge-format directories (``{name, data_dir, max_bundles}``,
    :mod:`fashion_retrieval.data.training_sets`) whose training bundles, all of them, train beside the
    primary's, with labels of their own; validation and its catalogue stay the primary's. Same-category
    negatives and ``mask_same_article`` work per set (a negative may come from any set's products);
    garment queries and index-mined negatives search the primary catalogue only and refuse extra sets.

    The sets themselves (query sets, section arrays, garment queries) are the catalogue's
    (:class:`~fashion_retrieval.data.catalogue.Catalogue`, :mod:`fashion_retrieval.data.garments`); the
    split and the evaluation loaders are :class:`~fashion_retrieval.data.catalogue_data.CatalogueData`'s;
    this module adds the training loaders and the mined negatives.
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 12,
        max_products_per_bundle: int | None = 6,
        augment_strength: float = 1.0,
        domain_randomization: float = 0.0,
        max_train_bundles: int | None = None,
        seed: int = 0,
        sampler: SamplerFactory | None = None,
        same_category_negatives: int = 0,
        mined_negatives: int = 0,
        mined_pool: int | None = None,
        mask_same_article: bool = False,
        train_queries: TrainQueries = "bundles",
        min_garment_visibility: float = 0.0,
        detected_garments: GarmentMatcher | None = None,
        extra_training_sets: Sequence[Mapping[str, Any]] = (),
        **catalogue: Any,
    ) -> None:
        # ``catalogue``: CatalogueData's keywords (sizes, crops, split, evaluation loaders, image checks),
        # documented there once; the Lightning hyperparameters record them with the training ones.
        super().__init__(data_dir, **catalogue)
        # The sampler factory is a Hydra partial and the matcher an object: kept out of the checkpoint's
        # hyperparameters so that checkpoints hold plain data and load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["sampler", "detected_garments"], logger=False)
        self.sampler_factory = sampler
        self.detected_garments = detected_garments
        self.mined_negatives: dict[int, list[int]] = {}
        self.mined_epoch: int | None = None  # the epoch whose end produced them (-1: before training)
        self._train_dataset: BundleDataset | None = None
        self._garment_boxes: dict[tuple[str, str], tuple[Box, float]] | None = None
        self._training_bundles: list[TrainingBundle] | None = None
        if train_queries not in ("bundles", "garments"):
            raise ValueError(f"data.train_queries must be 'bundles' or 'garments', got {train_queries!r}")
        self.extra_sets = parse_extra_training_sets(extra_training_sets)
        if train_queries == "garments":
            reject_extra_training_sets(self.extra_sets, "data.train_queries=garments")
        if mined_negatives:
            reject_extra_training_sets(self.extra_sets, "data.mined_negatives (miner=index_mined)")
        self._extra_catalogues: list[tuple[str, Catalogue]] | None = None
        self._label_space: LabelSpace | None = None

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        loaded = self.catalogue is not None
        super().setup(stage)
        if not loaded and self.hparams.mask_same_article and self.cat.articles is None:
            log.warning(
                "data.mask_same_article=true but %s has no product_articles.csv (the real data has none): "
                "colour variants stay negatives",
                self.data_dir,
            )

    # -- sets ------------------------------------------------------------------------------------------
    @property
    def garment_queries(self) -> bool:
        return self.hparams.train_queries == "garments"

    def garment_boxes(self) -> dict[tuple[str, str], tuple[Box, float]]:
        """``(bundle id, product id) -> (box, visible fraction)`` from the synthetic box file (read once)."""
        if self._garment_boxes is None:
            self._garment_boxes = read_box_table(self.data_dir)
        return self._garment_boxes

    def visible_garments(self, bundle_ids: Sequence[str]) -> list[Garment]:
        """``(bundle, product, box)`` of every listed product of ``bundle_ids`` with a box at least
        ``min_garment_visibility`` visible (:func:`~fashion_retrieval.data.garments.visible_garments`)."""
        return visible_garments(
            self.cat, self.garment_boxes(), bundle_ids, self.hparams.min_garment_visibility
        )

    def garment_query_set(self) -> QuerySet:
        """One query per ground-truth garment of the validation bundles (truth: its product)."""
        catalogue = self.cat  # sets the split up
        return catalogue.garment_queries(self.visible_garments(self.val_bundle_ids))

    def validation_queries(self) -> QuerySet:
        """What validation searches with: whole bundles, or their garments (``train_queries``)."""
        return self.garment_query_set() if self.garment_queries else self.query_set("val")

    def training_bundles(self) -> list[TrainingBundle]:
        """The training items in a fixed order: bundles (the first ``max_train_bundles`` if set), or their
        garments with ``train_queries=garments``. Built once: the dataset, the miner's targets and its
        query loader all read them, and garment items may need a detector pass over every photo."""
        if self._training_bundles is None:
            self._training_bundles = self._build_training_bundles()
        return self._training_bundles

    def _build_training_bundles(self) -> list[TrainingBundle]:
        # Every set masks its own articles' colour variants (none for a set without an articles file).
        mask_articles = bool(self.hparams.mask_same_article)
        bundles = catalogue_training_bundles(self.cat, self.train_bundle_ids, mask_articles=mask_articles)
        limit = self.hparams.max_train_bundles
        bundles = bundles[:limit] if limit else bundles
        if self.garment_queries:
            return self._garment_items(bundles)
        extras = self.extra_catalogues()
        offsets = label_offsets(self.cat, [catalogue for _, catalogue in extras])
        for extra, (name, catalogue), (bundle_start, product_start) in zip(self.extra_sets, extras, offsets):
            added = catalogue_training_bundles(
                catalogue,
                catalogue.train_bundle_ids[: extra.max_bundles],
                mask_articles=mask_articles,
                bundle_offset=bundle_start,
                product_offset=product_start,
            )
            log.info(
                "data.extra_training_sets[%s]: %s adds %d training bundle(s), %d (bundle, product) pair(s) "
                "to the primary's %d bundle(s)",
                name,
                extra.data_dir,
                len(added),
                sum(len(b.product_labels) for b in added),
                len(bundles),
            )
            bundles += added
        return bundles

    def extra_catalogues(self) -> list[tuple[str, Catalogue]]:
        """``(name, catalogue)`` of every extra training set, read once with the primary's image checks."""
        if self._extra_catalogues is None:
            self._extra_catalogues = []
            for i, extra in enumerate(self.extra_sets):
                if not extra.data_dir.is_dir():
                    raise FileNotFoundError(
                        f"data.extra_training_sets[{i}].data_dir={extra.data_dir} ({extra.name}): no such "
                        "directory (a collage set: `fashion-retrieval generate-collage paths.data_dir=DIR`)"
                    )
                catalogue = load_catalogue(
                    extra.data_dir,
                    missing_images=self.missing_images,
                    image_check=self.image_check,
                    max_image_pixels=self.max_image_pixels,
                )
                if self.hparams.mask_same_article and catalogue.articles is None:
                    log.warning(
                        "data.mask_same_article=true but data.extra_training_sets[%s] (%s) has no "
                        "product_articles.csv: its colour variants stay negatives",
                        extra.name,
                        extra.data_dir,
                    )
                self._extra_catalogues.append((extra.name, catalogue))
        return self._extra_catalogues

    def label_space(self) -> LabelSpace:
        """Ids, categories, paths and sections of every training label, the primary's then each extra
        set's (:func:`~fashion_retrieval.data.training_sets.mixed_label_space`)."""
        if self._label_space is None:
            sections = self.catalogue_section_array()
            self._label_space = mixed_label_space(self.cat, sections, self.extra_catalogues())
        return self._label_space

    def _garment_items(self, bundles: Sequence[TrainingBundle]) -> list[TrainingBundle]:
        """One item per visible garment of ``bundles`` (plus ``detected_garments``' matches)."""
        bundle_ids = self.cat.bundle_ids
        garments = self.visible_garments(list(dict.fromkeys(bundle_ids[b.bundle_label] for b in bundles)))
        if self.detected_garments is not None:
            garments += self.detected_garments(garments, self.cat.bundle_paths())
        return garment_items(self.cat, bundles, garments)

    def product_table(self) -> ProductTable:
        """Every training product by label (the catalogue's, then each extra set's): image path, category
        code, section (training split, else -1)."""
        space = self.label_space()
        codes = {name: i for i, name in enumerate(sorted(set(space.product_categories)))}
        return ProductTable(
            paths=space.product_paths,
            categories=np.array([codes[c] for c in space.product_categories], dtype=np.int64),
            sections=space.product_sections,
        )

    def bundle_categories(self, bundles: Sequence[TrainingBundle]) -> list[frozenset[str]]:
        """The product categories of each bundle (what :class:`CategoryBalancedBatchSampler` groups by)."""
        category = self.label_space().product_categories
        return [frozenset(category[label] for label in bundle.product_labels) for bundle in bundles]

    def mining_targets(self) -> MiningTargets:
        """Positives, exclusions and sections of the training bundles, in ``mining_query_loader`` order."""
        reject_extra_training_sets(self.extra_sets, "the index miner (callbacks.IndexNegativeMiner)")
        bundles = self.training_bundles()
        return MiningTargets(
            bundle_labels=[b.bundle_label for b in bundles],
            positives=[list(b.product_labels) for b in bundles],
            excluded=[list(dict.fromkeys((*b.product_labels, *b.excluded_labels))) for b in bundles],
            sections=np.array([b.section for b in bundles], dtype=np.int64),
        )

    # -- mined negatives -------------------------------------------------------------------------------
    def set_mined_negatives(self, negatives: Mapping[int, Sequence[int]], epoch: int | None = None) -> None:
        """Hand over mined hard negatives: bundle label -> product ids, hardest first (-1 entries ignored).

        They reach the dataset the train loader holds at once, and its workers when they start, at the next
        epoch's first batch (also when handed over in ``on_train_start``: see :class:`DeferredDataLoader`).
        While mining is on (``mined_negatives > 0``) the train loader does not keep persistent workers:
        a persistent worker keeps the dataset copy it was started with and would never see a new list
        (the price: workers are re-forked each epoch). ``epoch``: the epoch whose end produced them
        (-1 before training), saved in checkpoints for resuming.
        """
        self.mined_negatives = {
            int(bundle): [int(p) for p in ids if int(p) >= 0] for bundle, ids in negatives.items()
        }
        self.mined_epoch = epoch
        if self._train_dataset is not None:
            self._train_dataset.set_mined_negatives(self.mined_negatives)
        if self.mined_negatives and not self.hparams.mined_negatives:
            log.warning("mined negatives received but data.mined_negatives=0: they are not used")

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: the mined negatives, so a resumed run draws from the same lists."""
        return {"mined_negatives": self.mined_negatives, "mined_epoch": self.mined_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "mined_negatives" in state_dict:
            self.set_mined_negatives(state_dict["mined_negatives"], state_dict.get("mined_epoch"))

    # -- loaders ---------------------------------------------------------------------------------------
    def train_dataset(self) -> BundleDataset:
        hp = self.hparams
        if not self.training_bundles():
            # Lightning would run zero steps and exit 0, and the export would index untrained weights.
            raise ValueError(
                f"{self.data_dir}: no training bundles (training matches of {len(self.cat.train_bundle_ids)} "
                f"bundle(s), {len(self.val_bundle_ids)} held out by data.val_fraction={self.val_fraction}, "
                f"data.max_train_bundles={hp.max_train_bundles}, data.train_queries={hp.train_queries}, "
                f"images skipped: {self.cat.skipped or 'none'}); nothing to train on"
            )
        negatives = hp.same_category_negatives or hp.mined_negatives
        dataset = BundleDataset(
            self.training_bundles(),
            train_transform(
                self.training_query_size, QUERY_AUGMENTATION, hp.augment_strength, hp.domain_randomization
            ),
            train_transform(
                self.catalogue_size, CATALOGUE_AUGMENTATION, hp.augment_strength, hp.domain_randomization
            ),
            max_products=hp.max_products_per_bundle,
            query_crop=self.query_crop,
            query_padding=self.garment_padding,
            products=self.product_table() if negatives else None,
            same_category_negatives=hp.same_category_negatives,
            mined_negatives=hp.mined_negatives,
            mined_pool=hp.mined_pool,
            seed=hp.seed,
            max_pixels=self.max_image_pixels,
        )
        dataset.set_mined_negatives(self.mined_negatives)
        return dataset

    def train_dataloader(self) -> DataLoader:
        """Batches of ``batch_size`` bundles with their products and negatives (see :func:`collate_bundles`).

        Items are ``(index, epoch)`` keys from the batch sampler (``sampler``, default
        :class:`RandomBatchSampler`); Lightning calls its ``set_epoch`` at each epoch start.
        """
        hp = self.hparams
        dataset = self._train_dataset = self.train_dataset()
        rank, world_size = process_rank(self)
        factory = self.sampler_factory or RandomBatchSampler
        batch_sampler = factory(
            self.bundle_categories(dataset.bundles),
            batch_size=hp.batch_size,
            seed=hp.seed,
            drop_last=len(dataset) > hp.batch_size,
            rank=rank,
            world_size=world_size,
        )
        return DeferredDataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            # Persistent workers keep a stale dataset copy: mined lists would never reach them.
            persistent_workers=self.num_workers > 0 and not hp.mined_negatives,
            collate_fn=collate_bundles,
        )

    @property
    def training_query_size(self) -> Sequence[int]:
        """``(H, W)`` of training and validation queries: garment crops or whole photos."""
        return self.crop_size if self.garment_queries else self.query_size

    def mining_query_loader(self) -> DataLoader:
        """The training bundle photos with the eval transform, in :meth:`training_bundles` order."""
        bundles = self.training_bundles()
        paths = [b.bundle_path for b in bundles]
        if not self.garment_queries:
            return self._eval_loader(paths, self.query_size, self.query_crop)
        boxes = [b.query_box for b in bundles]
        return self._eval_loader(paths, self.crop_size, boxes=boxes, padding=self.garment_padding)

    def val_dataloader(self) -> list[DataLoader]:
        """Two loaders: validation queries (index 0, :meth:`validation_queries`), the catalogue (index 1)."""
        return [self.query_set_dataloader(self.validation_queries()), self.catalogue_dataloader()]
