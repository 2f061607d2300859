"""LightningDataModule for the challenge format: training pairs, validation queries and the gallery."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from fashion_retrieval.data.catalogue import (
    Catalogue,
    ImageCheck,
    MissingImagePolicy,
    load_catalogue,
    split_bundles,
)
from fashion_retrieval.data.datasets import BundleDataset, ImageDataset, TrainingBundle, collate_bundles
from fashion_retrieval.data.transforms import (
    GALLERY_AUGMENTATION,
    QUERY_AUGMENTATION,
    eval_transform,
    train_transform,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuerySet:
    """Queries for retrieval: bundle ids, image paths, sections and (when known) truth as gallery indices."""

    bundle_ids: list[str]
    image_paths: list[str]
    sections: list[int]
    truth: list[list[int]] | None


class ChallengeDataModule(pl.LightningDataModule):
    """Feeds training bundles (one photo, its products' packshots), and query/gallery sets for validation.

    Validation bundles are carved from the training matches (``val_fraction``, seeded), so the same code
    runs on the real challenge data, which ships no validation file. The gallery is the whole catalogue,
    distractors included.
    """

    def __init__(
        self,
        data_dir: str,
        query_size: Sequence[int] = (192, 128),
        gallery_size: Sequence[int] = (128, 96),
        batch_size: int = 12,
        max_products_per_bundle: int | None = 6,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment_strength: float = 1.0,
        missing_images: MissingImagePolicy = "fail",
        image_check: ImageCheck = "exists",
        max_train_bundles: int | None = None,
        query_crop: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.catalogue: Catalogue | None = None
        self.train_bundle_ids: list[str] = []
        self.val_bundle_ids: list[str] = []

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.catalogue is not None:
            return
        hp = self.hparams
        self.catalogue = load_catalogue(
            self.data_dir, missing_images=hp.missing_images, image_check=hp.image_check
        )
        self.train_bundle_ids, self.val_bundle_ids = split_bundles(
            self.catalogue.train_bundle_ids, hp.val_fraction, hp.split_seed
        )
        log.info(
            "%s: %d products, %d train bundles, %d validation bundles, %d test bundles",
            self.data_dir,
            len(self.catalogue.products),
            len(self.train_bundle_ids),
            len(self.val_bundle_ids),
            len(self.catalogue.test_bundle_ids),
        )

    @property
    def cat(self) -> Catalogue:
        if self.catalogue is None:
            self.setup()
        assert self.catalogue is not None
        return self.catalogue

    # -- sets ------------------------------------------------------------------------------------------
    @property
    def gallery_ids(self) -> list[str]:
        return list(self.cat.products["product_asset_id"])

    def gallery_sections(self) -> dict[str, int]:
        """Product sections known without peeking at validation truth (training split only)."""
        return self.cat.product_sections(self.train_bundle_ids)

    def query_set(self, split: str) -> QuerySet:
        """``split`` is ``val`` (truth known) or ``test`` (truth hidden)."""
        catalogue = self.cat
        bundle_ids = {"val": self.val_bundle_ids, "test": catalogue.test_bundle_ids}[split]
        rows = catalogue.bundles.set_index("bundle_asset_id").loc[bundle_ids]
        truth = None
        if split == "val":
            index = catalogue.product_index()
            products_of = catalogue.products_of(bundle_ids)
            truth = [[index[p] for p in products_of[b]] for b in bundle_ids]
        return QuerySet(
            bundle_ids=list(bundle_ids),
            image_paths=[str(p) for p in rows["image_path"]],
            sections=[int(s) for s in rows["bundle_id_section"]],
            truth=truth,
        )

    def training_bundles(self) -> list[TrainingBundle]:
        catalogue = self.cat
        bundle_label = {b: i for i, b in enumerate(catalogue.bundles["bundle_asset_id"])}
        product_label = catalogue.product_index()
        bundle_paths = dict(zip(catalogue.bundles["bundle_asset_id"], catalogue.bundles["image_path"]))
        product_paths = dict(zip(catalogue.products["product_asset_id"], catalogue.products["image_path"]))
        bundles = [
            TrainingBundle(
                bundle_path=str(bundle_paths[b]),
                product_paths=tuple(str(product_paths[p]) for p in products),
                bundle_label=bundle_label[b],
                product_labels=tuple(product_label[p] for p in products),
            )
            for b, products in catalogue.products_of(self.train_bundle_ids).items()
        ]
        limit = self.hparams.max_train_bundles
        return bundles[:limit] if limit else bundles

    # -- loaders ---------------------------------------------------------------------------------------
    def _eval_loader(
        self, paths: Sequence[str], size: Sequence[int], crop: Sequence[float] | None = None
    ) -> DataLoader:
        hp = self.hparams
        dataset = ImageDataset(paths, eval_transform(size), crop)
        return DataLoader(dataset, batch_size=hp.eval_batch_size, shuffle=False, num_workers=hp.num_workers)

    def train_dataloader(self) -> DataLoader:
        """Batches of ``batch_size`` bundles with their products (see :func:`collate_bundles`)."""
        hp = self.hparams
        dataset = BundleDataset(
            self.training_bundles(),
            train_transform(hp.query_size, QUERY_AUGMENTATION, hp.augment_strength),
            train_transform(hp.gallery_size, GALLERY_AUGMENTATION, hp.augment_strength),
            max_products=hp.max_products_per_bundle,
            query_crop=hp.query_crop,
        )
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=True,
            drop_last=len(dataset) > hp.batch_size,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            collate_fn=collate_bundles,
        )

    def query_dataloader(self, split: str) -> DataLoader:
        return self._eval_loader(
            self.query_set(split).image_paths, self.hparams.query_size, self.hparams.query_crop
        )

    def gallery_dataloader(self) -> DataLoader:
        return self._eval_loader([str(p) for p in self.cat.products["image_path"]], self.hparams.gallery_size)

    def val_dataloader(self) -> list[DataLoader]:
        """Two loaders: validation queries (index 0) and the gallery (index 1)."""
        return [self.query_dataloader("val"), self.gallery_dataloader()]
