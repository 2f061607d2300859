"""The challenge data as a search reads it, without Lightning: the validated catalogue, the training /
validation split of its bundles, the query sets and the evaluation loaders (whole bundle photos, garment
crops, the catalogue's packshots), all at their evaluation sizes.

:class:`CatalogueData` is what a :class:`~fashion_retrieval.search.retriever.Retriever` searches with
(``serve``, ``infer``, ``validate``, ``index``): built from the ``data:`` config by
:meth:`CatalogueData.from_config`, it imports neither Lightning nor albumentations, so a service starts
without them; the loaders import torch when first built, so the ONNX service, which reads no loader for
an upload, starts without it too. :class:`~fashion_retrieval.data.datamodule.ChallengeDataModule` is this
class plus training (batches, negatives, mining) as a Lightning data module.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fashion_retrieval.data.boxes import Box
from fashion_retrieval.data.catalogue import (
    Catalogue,
    ImageCheck,
    MissingImagePolicy,
    QuerySet,
    load_catalogue,
    split_bundles,
)
from fashion_retrieval.data.transforms import eval_transform

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


class CatalogueData:
    """The catalogue of ``data_dir`` (read at :meth:`setup`, or at first use), its bundles split into
    training and validation (``val_fraction`` of the training matches' bundles, seeded by ``split_seed``: the
    challenge ships no validation file), and loaders of evaluation images.

    Sizes are ``(H, W)``: ``query_size`` for whole bundle photos (cut to ``query_crop``, fractions, first),
    ``catalogue_size`` for packshots, ``crop_size`` for garment crops (default: ``catalogue_size``, a crop
    shows one garment) grown by ``garment_padding`` when they come from boxes of a query set.
    ``missing_images``, ``image_check``, ``max_image_pixels``: see
    :func:`~fashion_retrieval.data.catalogue.load_catalogue`. Loaders batch ``eval_batch_size`` images
    with ``num_workers`` processes.
    """

    def __init__(
        self,
        data_dir: str | Path,
        query_size: Sequence[int] = (192, 128),
        catalogue_size: Sequence[int] = (128, 96),
        crop_size: Sequence[int] | None = None,
        query_crop: Sequence[float] | None = None,
        garment_padding: float = 0.05,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        missing_images: MissingImagePolicy = "fail",
        image_check: ImageCheck = "exists",
        max_image_pixels: int | None = None,
    ) -> None:
        super().__init__()  # cooperative: ChallengeDataModule's Lightning base comes next
        self.data_dir = Path(data_dir)
        self.query_size = tuple(query_size)
        self.catalogue_size = tuple(catalogue_size)
        self.crop_size = tuple(crop_size or catalogue_size)
        self.query_crop = None if query_crop is None else tuple(query_crop)
        self.garment_padding = garment_padding
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.missing_images: MissingImagePolicy = missing_images
        self.image_check: ImageCheck = image_check
        self.max_image_pixels = max_image_pixels
        self.catalogue: Catalogue | None = None
        self.train_bundle_ids: list[str] = []
        self.val_bundle_ids: list[str] = []

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> CatalogueData:
        """The catalogue side of a ``data:`` config of the challenge format (plain values): the keys this
        class takes; the training keys of the Lightning data module (batches, sampler, negatives) are not
        read and nothing is built from the config."""
        if "data_dir" not in data:
            raise ValueError(
                "the data config has no data_dir: searching needs the challenge format (data=challenge), "
                f"not {data.get('_target_', 'this dataset')}"
            )
        taken = inspect.signature(cls.__init__).parameters
        return cls(**{key: value for key, value in data.items() if key in taken and key != "self"})

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the catalogue and split its bundles (once)."""
        if self.catalogue is not None:
            return
        self.catalogue = load_catalogue(
            self.data_dir,
            missing_images=self.missing_images,
            image_check=self.image_check,
            max_image_pixels=self.max_image_pixels,
        )
        self.train_bundle_ids, self.val_bundle_ids = split_bundles(
            self.catalogue.train_bundle_ids, self.val_fraction, self.split_seed
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
    def catalogue_ids(self) -> list[str]:
        """The catalogue's product ids (:attr:`Catalogue.product_ids`)."""
        return self.cat.product_ids

    @property
    def catalogue_paths(self) -> list[str]:
        """The catalogue's image files, in :attr:`catalogue_ids` order."""
        return self.cat.product_paths

    def catalogue_sections(self) -> dict[str, int]:
        """Product sections known without peeking at validation truth (every training bundle but the
        validation ones, with or without a photo)."""
        return self.cat.product_sections(exclude=self.val_bundle_ids)

    def catalogue_section_array(self) -> np.ndarray:
        """``(G,)`` int section of every catalogue product, ``UNKNOWN_SECTION`` (-1) where unknown, without
        the validation bundles' matches (:meth:`Catalogue.section_array`)."""
        return self.cat.section_array(exclude=self.val_bundle_ids)

    def query_set(self, split: str) -> QuerySet:
        """``split`` is ``val`` (truth known) or ``test`` (truth hidden)."""
        catalogue = self.cat  # sets the split up
        bundle_ids = {"val": self.val_bundle_ids, "test": catalogue.searchable_test_bundle_ids}[split]
        return catalogue.bundle_queries(bundle_ids, with_truth=split == "val")

    # -- loaders ---------------------------------------------------------------------------------------
    def _eval_loader(
        self,
        paths: Sequence[str],
        size: Sequence[int],
        crop: Sequence[float] | None = None,
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
    ) -> DataLoader:
        # Imported here: see the module docstring (torch).
        from torch.utils.data import DataLoader

        from fashion_retrieval.data.datasets import ImageDataset

        dataset = ImageDataset(paths, eval_transform(size), crop, boxes, padding, self.max_image_pixels)
        return DataLoader(
            dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers
        )

    def query_dataloader(self, split: str) -> DataLoader:
        """The ``split`` bundle photos, whole, at the query size."""
        return self.query_set_dataloader(self.query_set(split))

    def query_set_dataloader(self, queries: QuerySet) -> DataLoader:
        """The photos of ``queries`` in order: whole at the query size, or their boxes at the crop size."""
        if queries.boxes is None:
            return self._eval_loader(queries.image_paths, self.query_size, self.query_crop)
        return self._eval_loader(
            queries.image_paths, self.crop_size, boxes=queries.boxes, padding=self.garment_padding
        )

    def crop_dataloader(self, paths: Sequence[str], boxes: Sequence[Box | None]) -> DataLoader:
        """Regions of photos (detected garments; ``None``: the whole photo) at :attr:`crop_size`, in order."""
        return self._eval_loader(paths, self.crop_size, boxes=boxes)

    def catalogue_dataloader(self) -> DataLoader:
        return self._eval_loader(self.catalogue_paths, self.catalogue_size)
